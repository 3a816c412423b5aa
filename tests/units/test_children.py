"""A child's process from the outside: what it is started with, its output's tail, the slots
its requests wait for (supervision/line.py), what it left running, the system's refusals."""

from __future__ import annotations

import asyncio
import errno
import io
import sys
from pathlib import Path

import pytest

from local_lambdas import (
    executables,
    manifest,
)
from local_lambdas.output import Printer
from local_lambdas.supervision import explain, launch
from local_lambdas.supervision.line import Line
from local_lambdas.supervision.output_tail import OutputTail
from local_lambdas.supervision.pool import Pool
from local_lambdas.supervision.states import State
from tests.helpers import eventually, process_model


def test_a_windows_command_line_too_long_is_said() -> None:
    """CreateProcess takes a command line of 32,766 characters at most ("The filename or
    extension is too long"), whatever Linux would take."""
    fits, over = ["-c", "x" * 32_000], ["-c", "x" * 33_000]
    assert executables.too_large(fits, [], "python", windows=True) == []
    assert executables.too_large(over, [], "python", windows=True) == [(
        "", 0, "the command line comes to 33,010 characters, and Windows takes at most "
        "32,766; write the largest <arg> to a file and pass its name",
    )]  # fmt: skip


def test_a_start_the_system_refused_for_the_limit_on_processes_says_so() -> None:
    refused = BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
    said = executables.not_started(Path.cwd(), None, refused)
    assert said.startswith("the system refused a new process: "), said
    assert said.endswith(" limit on processes and threads is reached; raise it, or run fewer")


def test_an_output_tail_tells_from_its_current_runs_lines_only() -> None:
    printer = Printer(color=False, file=io.StringIO())
    shown: list[tuple[str, str, str]] = []
    printer.tap = lambda name, stream, text, color: shown.append((name, stream, text))
    tail = OutputTail(printer, "api", keep=3)
    tail("stderr", [b"Error: first run failed"])
    assert shown == [("api", "stderr", "Error: first run failed")]  # shown as it came
    tail.new_run()
    assert tail.this_run() == [] and tail.telling() == ""  # (the earlier run's line)
    tail("stdout", [b"one", b"two"])
    tail("stderr", [b"three", b"Error: boom", b"\tat main"])
    assert list(tail.lines) == ["three", "Error: boom", "\tat main"]  # the last `keep` lines
    assert tail.this_run() == ["three", "Error: boom", "\tat main"]
    assert tail.telling() == "Error: boom"
    tail("stdout", [b"x" * 65536])  # a line that never ended, in its 64 KiB pieces
    assert len(tail.lines[-1]) == 1000  # kept to tell from, not whole: the console had it


@pytest.mark.parametrize(("commands", "says"), [
    ({7: "node server.js"}, "it left pid 7 (node server.js) running"),
    ({7: ""}, "it left pid 7 running"),  # gone before its command was read
    ({1: "a", 2: "", 3: "c", 4: "d", 5: "e"}, "it left pid 1 (a), pid 2, pid 3 (c) and 2 more "
     "running"),
    ({7: "x" * 200}, f"it left pid 7 ({'x' * 120}) running"),
])  # fmt: skip
def test_what_a_child_left_running(commands: dict[int, str], says: str) -> None:
    told = explain.left_running(commands, 0)
    assert told.startswith(says + ", stopped with it: keep the server in the foreground")
    # After a crash, what is left was the server's own (its workers): no advice.
    assert (
        explain.left_running(commands, 1)
        == explain.left_running(commands, -9)
        == (says + ", stopped with it")
    )


async def _wait(line: Line[str], due: float) -> str | None:
    """Wait in `line` as Pool.acquire does."""
    turn = line.join(due)
    try:
        return await turn
    except asyncio.CancelledError:
        line.leave(turn)
        raise


async def test_the_line_hands_slots_in_order_and_wakes_each_at_its_time() -> None:
    """line.Line: a released slot goes to the first still waiting; a waiter whose time is
    up wakes alone, with none; one cancelled after it was handed a slot gives it back; a
    change wakes all, with none."""
    loop = asyncio.get_running_loop()
    given_back: list[str] = []
    line: Line[str] = Line(loop, given_back.append)
    far = loop.time() + 60
    waiters = [asyncio.create_task(_wait(line, far)) for _ in range(3)]
    # Its own time, soon: nobody hands it a slot (and the others are in line by then).
    assert await asyncio.wait_for(_wait(line, loop.time() + 0.05), 5) is None
    assert not any(w.done() for w in waiters)
    assert line.pass_turn("a")
    assert await asyncio.wait_for(waiters[0], 5) == "a"
    assert not waiters[1].done() and not waiters[2].done()
    assert line.pass_turn("b")
    waiters[1].cancel()  # handed a slot, then cancelled before it ran: the slot goes back
    with pytest.raises(asyncio.CancelledError):
        await waiters[1]
    assert given_back == ["b"] and not waiters[2].done()
    assert line.pass_turn("c")
    assert await asyncio.wait_for(waiters[2], 5) == "c"
    assert not line.pass_turn("d")  # nobody waits: the caller frees it
    last = [asyncio.create_task(_wait(line, far)) for _ in range(2)]
    await asyncio.wait_for(_wait(line, loop.time() + 0.05), 5)  # they are in line by then
    assert line
    line.wake_all()
    assert await asyncio.wait_for(asyncio.gather(*last), 5) == [None, None]
    assert not line


async def test_a_released_slot_goes_to_the_request_waiting_not_to_a_newcomer(
    tmp_path: Path,
) -> None:
    """Pool: with its one slot taken and a request waiting, the slot given back goes to that
    request; one arriving at that moment waits its turn (it used to take the slot, and the
    woken one went back to the end of the line: starved, under load, past clients' time)."""
    path = tmp_path / "manifest.xml"
    path.write_text(
        f"<manifest><process><id>api</id><executable>{sys.executable}</executable>"
        "<route>/api/*</route><communication_mode>pipe-keepalive</communication_mode>"
        "<concurrency>1</concurrency></process></manifest>"
    )
    process = manifest.load(path, socket_dir=tmp_path).processes[0]
    pool = Pool(process, Printer(color=False), launch.SocketNames(tmp_path))
    child = pool._add(1)  # not started: made READY by hand
    child.state = State.READY
    child.link.connect(str(tmp_path / "api"), lambda pid: False)
    assert pool.try_acquire() is child
    waiting = asyncio.create_task(pool.acquire())
    assert await eventually(lambda: pool.waiting == 1)
    pool.release(child)
    assert pool.try_acquire() is None  # the newcomer: no slot
    assert await asyncio.wait_for(waiting, 5) is child
    assert (child.in_flight, child.requests) == (1, 2)
    pool.release(child)
    assert child.in_flight == 0 and pool.try_acquire() is child  # nobody waits: it is free


@pytest.mark.parametrize(("mode", "pipe", "token", "ours"), [
    ("pipe", "/tmp/ll-test-none/api", "", {"PIPE_ADDRESS": "/tmp/ll-test-none/api",
                                           "PIPE_FRAMING": "oneshot"}),
    ("pipe-keepalive", "/tmp/ll-test-none/api", "t0k", {"PIPE_FRAMING": "lines",
                                                         "LOCAL_LAMBDAS_TOKEN": "t0k"}),
    ("http", None, "", {"HTTP_ADDRESS": None, "PORT": None}),
])  # fmt: skip
def test_what_a_child_is_started_with(
    mode: str, pipe: str | None, token: str, ours: dict[str, str | None]
) -> None:
    """launch.prepare: docs/protocol.md's environment for each mode, a new mark each time."""
    first = launch.prepare(process_model(mode), name="api#2", index=2, pipe=pipe, run_mark="run",
                           run_env={"LOCAL_LAMBDAS_TOKEN": token} if token else {})  # fmt: skip
    second = launch.prepare(process_model(mode), name="api#2", index=2, pipe=pipe, run_mark="run",
                            run_env={"LOCAL_LAMBDAS_TOKEN": token} if token else {})  # fmt: skip
    env = first.env
    assert (env["LOCAL_LAMBDAS_ID"], env["LOCAL_LAMBDAS_INSTANCE"]) == ("api#2", "2")
    assert first.mark.startswith("run.") and first.mark != second.mark
    assert ("LOCAL_LAMBDAS_TOKEN" in env) == bool(token)
    for name, value in ours.items():
        assert name in env and (value is None or env[name] == value)
    if pipe is None:
        assert first.address == env["HTTP_ADDRESS"] == f"127.0.0.1:{env['PORT']}"
    else:
        assert first.address == pipe and "PORT" not in env

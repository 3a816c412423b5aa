"""Supervision under load: crashes, instances, recycling, queueing and reloads drop nothing."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from local_lambdas import _compat, manifest
from local_lambdas._compat import adoption
from local_lambdas.supervision.states import State
from tests.helpers import (
    CHILDREN,
    PYTHON,
    UVLOOP,
    Load,
    Running,
    WriteManifest,
    alive,
    behave_after,
    cli,
    compiles_again,
    elf_program,
    eventually,
    fixed_port,
    gone,
    load,
    process_xml,
    running,
)

MODES = ["pipe", "pipe-keepalive", "http"]


async def some(result: Load, count: int) -> None:
    """Let the load run until `count` more requests have completed (bounded)."""
    target = result.total + count
    assert await eventually(lambda: result.total >= target, 20), result


@pytest.mark.parametrize("mode", MODES)
async def test_sigkilled_child_loses_no_request(
    write_manifest: WriteManifest, socket_dir: Path, mode: str
) -> None:
    path = write_manifest(process_xml("svc", "/api/*", mode=mode))
    async with running(path, socket_dir) as run:
        child = run.child("svc")
        async with load(run, "/api/x") as result:
            await some(result, 50)
            first = child.pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            assert await run.pool("svc").wait_for(lambda: child.generation == 2, 10)
            await some(result, 50)
            second = child.pid
    assert result.failures == []
    assert set(result.pids) == {first, second}


async def test_crash_looping_child_goes_fatal_with_reason(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    crasher = tmp_path / "crash.py"
    crasher.write_text("import sys\nprint('no DATABASE_URL', file=sys.stderr)\nsys.exit(4)\n")
    path = write_manifest(
        process_xml("good", "/good/*"),
        f"<process><id>bad</id><executable>python3</executable><arg>{crasher}</arg>"
        "<route>/bad/*</route><start_retries>2</start_retries></process>",
    )
    async with running(path, socket_dir, wait=False) as run:
        pool = run.pool("bad")
        assert await pool.wait_for(lambda: pool.instances[0].state.value == "FATAL", 10)
        async with run.http.get(run.url + "/bad/x") as reply:
            assert reply.status == 503
            assert reply.headers["Retry-After"] == "1"
            error = (await reply.json())["error"]
        assert "FATAL" in error and "exited with code 4" in error
        # What the child printed may hold secrets: the log and /_/status (loopback) have
        # it, a client's error body never does.
        assert "DATABASE_URL" not in error
        async with run.http.get(run.url + "/_/status") as reply:
            instance = (await reply.json())["processes"]["bad"]["instances"][0]
        assert instance["last_output"][-1] == "no DATABASE_URL"
        assert run.child("bad").restarts == 2


async def test_instances_share_the_load_least_busy_first(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("svc", "/api/*", extra="<instances>2</instances>"))
    async with running(path, socket_dir) as run:
        one, two = run.pool("svc").instances
        assert {one.name, two.name} == {"svc#1", "svc#2"}
        assert one.pipe != two.pipe
        # Keep one instance busy with a slow request: the next ones go to the other.
        slow = asyncio.ensure_future(run.http.get(run.url + "/api/slow"))
        assert await eventually(lambda: one.in_flight + two.in_flight == 1)
        busy = one if one.in_flight else two
        idle = two if busy is one else one
        for _ in range(3):
            async with run.http.get(run.url + "/api/x") as reply:
                assert json.loads(await reply.read())["pid"] == idle.pid
        async with await slow as reply:
            assert json.loads(await reply.read())["pid"] == busy.pid
        async with load(run, "/api/x") as result:
            await some(result, 100)
        pids = {one.pid, two.pid}
    assert set(result.pids) == pids


@pytest.mark.parametrize(("mode", "fault"), [("pipe-keepalive", "hang"), ("http", "hang"),
                                             ("pipe", "garbage")])  # fmt: skip
async def test_a_failing_instance_is_passed_over_while_another_answers(
    write_manifest: WriteManifest, socket_dir: Path, mode: str, fault: str
) -> None:
    """An instance stopped in its tracks (SIGSTOP: a deadlock, a breakpoint) lets one request
    time out, one that answers nonsense fails one; the next ones go to the other instance,
    as nginx's fail_timeout does, rather than every other one failing too. Once the time is
    up it is tried again."""
    extra = "<instances>2</instances><timeout>1s</timeout>"
    path = write_manifest(process_xml("svc", "/api/*", mode=mode, extra=extra))
    failed = 504 if fault == "hang" else 502
    target = "/api/x" if fault == "hang" else "/api/garbage2"
    async with running(path, socket_dir) as run:
        pool = run.pool("svc")
        bad, good = sorted(pool.instances, key=lambda instance: instance.index, reverse=True)
        assert bad.pid is not None
        if fault == "hang":
            os.kill(bad.pid, signal.SIGSTOP)
        try:
            statuses, pids = [], set()
            for _ in range(8):
                async with run.http.get(run.url + target) as reply:
                    statuses.append(reply.status)
                    if reply.status == 200:
                        pids.add(json.loads(await reply.read())["pid"])
            assert statuses.count(failed) == 1, statuses  # without it: four of eight
            assert pids == {good.pid}
            async with run.http.get(run.url + "/_/status") as reply:
                said = (await reply.json())["processes"]["svc"]["instances"]
            left = {instance["name"]: instance["passed_over_s"] for instance in said}
            assert left[good.name] is None and 0 < left[bad.name] <= 10, left
            pool.pass_over_seconds = 0.0  # the time is up: it gets its turn again
            bad.passed_over_until = 0.001
            async with run.http.get(run.url + target) as reply:
                first = reply.status
            async with run.http.get(run.url + target) as reply:
                assert sorted([first, reply.status]) == [200, failed]
        finally:
            if fault == "hang":
                os.kill(bad.pid, signal.SIGCONT)


async def test_a_request_waiting_in_line_is_not_handed_to_an_instance_passed_over(
    write_manifest: WriteManifest, socket_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Both instances busy (<concurrency>1), a request waits in line; the slot of the one
    passed over (its request timed out) goes free rather than to the waiting request, which
    the other instance takes once it is done, as does a new request: while the other takes
    requests, busy or not, the one passed over gets none (under load, a hung instance got
    one request a slot each time its slots freed). With every other instance passed over
    too, it still takes them."""
    extra = "<instances>2</instances><concurrency>1</concurrency>"
    path = write_manifest(process_xml("svc", "/api/*", extra=extra))
    async with running(path, socket_dir) as run:
        pool = run.pool("svc")
        hung, other = pool.try_acquire(), pool.try_acquire()
        assert hung is not None and other is not None and hung is not other
        waiting = asyncio.ensure_future(pool.acquire())
        assert await eventually(lambda: pool.waiting == 1)
        for _ in range(2):  # said once
            pool.pass_over(hung, "did not answer within its <timeout>")
        said = [r.message for r in caplog.records if "new requests go to" in r.message]
        assert said == [f"{hung.name}: did not answer within its <timeout>; new requests go "
                        "to the other instances for 10s"], said  # fmt: skip
        pool.release(hung)  # without the fix, the waiting request gets the hung one
        assert hung.in_flight == 0 and not waiting.done()
        assert pool.try_acquire() is None  # the other one is busy: wait for it, not the hung
        pool.release(other)
        assert await waiting is other
        # Every other instance passed over too: the line is served by what there is.
        pool.pass_over(other, "did not answer within its <timeout>")
        assert pool.try_acquire() is hung
        waiting = asyncio.ensure_future(pool.acquire())
        assert await eventually(lambda: pool.waiting == 1)
        pool.release(hung)
        assert await waiting is hung
        pool.release(hung)
        pool.release(other)
        assert hung.in_flight == other.in_flight == 0


async def test_a_stopped_child_ends_on_its_sigterm(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A child stopped (SIGSTOP; Ctrl+Z in a shell of its own) is sent SIGCONT after its
    SIGTERM, as systemd does: it ends on the SIGTERM, not on the SIGKILL after <stop_timeout>."""
    path = write_manifest(process_xml("svc", "/api/*", extra="<stop_timeout>3s</stop_timeout>"))
    async with running(path, socket_dir) as run:
        old = run.child("svc").link.proc
        assert old is not None
        os.kill(old.pid, signal.SIGSTOP)
        assert await run.supervisor.restart("svc")
        await asyncio.wait_for(asyncio.shield(old.exited), 10)
        assert old.returncode == -signal.SIGTERM  # without SIGCONT: -SIGKILL, 3 s later


_COUNTS_SIGTERMS = """
import http.server, os, signal, sys, threading, time
count = 0
def on_term(number, frame):
    global count
    count += 1
signal.signal(signal.SIGTERM, on_term)
address = ("127.0.0.1", int(os.environ["PORT"]))
server = http.server.HTTPServer(address, http.server.BaseHTTPRequestHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
while not count:
    time.sleep(0.01)
time.sleep(0.5)  # for a second one to come
with open(sys.argv[1], "a") as said:
    said.write(f"{count}\\n")
"""


@pytest.mark.parametrize("wrapped", [False, True], ids=["alone", "under-sh"])
async def test_each_process_of_a_child_gets_one_sigterm(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path, wrapped: bool
) -> None:
    """A stop sends SIGTERM to the child's group, and to its marked descendants outside it,
    each process once: Go servers, Node.js ones and local-lambdas itself take a second
    SIGTERM as "stop now" and skip their graceful stop. Under a shell that dies on its
    SIGTERM, the server still has its grace (it was SIGKILLed as the shell exited)."""
    script, counts = tmp_path / "counts.py", tmp_path / "counts.txt"
    script.write_text(_COUNTS_SIGTERMS)
    command = f"{PYTHON} -S {script} {counts}"
    program = (
        f"<executable>sh</executable><arg>-c</arg><arg>{command}; exit $?</arg>"
        if wrapped
        else f"<executable>{PYTHON}</executable><arg>-S</arg><arg>{script}</arg><arg>{counts}</arg>"
    )
    path = write_manifest(
        f"<process><id>svc</id>{program}<route>/api/*</route>"
        "<communication_mode>passthrough</communication_mode></process>"
    )
    async with running(path, socket_dir) as run:
        old = run.child("svc").link.proc
        assert old is not None
        assert await run.supervisor.restart("svc")
        await asyncio.wait_for(asyncio.shield(old.exited), 10)
    assert counts.read_text().split() == ["1", "1"]  # the restarted one, then its replacement


_BEATEN_TO_ITS_PORT = """
import http.server, os, sys, time
runs, told, go = sys.argv[1:]
with open(runs, "a") as file:
    file.write("x")
if os.path.getsize(runs) == 2:  # the replacement's first start: its port, then a wait
    with open(told + ".part", "w") as file:
        file.write(os.environ["PORT"])
    os.replace(told + ".part", told)
    while not os.path.exists(go):
        time.sleep(0.01)
address = ("127.0.0.1", int(os.environ["PORT"]))
http.server.HTTPServer(address, http.server.BaseHTTPRequestHandler).serve_forever()
"""


async def test_a_free_port_another_program_takes_first_is_no_failed_start(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """The free port the proxy hands a child may be bound by any other program before the
    child binds it ("address already in use"): that start is made again at once on another
    port, not counted as the child's failure, so that a restart's replacement, which gets
    one start, still takes over."""
    script, runs = tmp_path / "beaten.py", tmp_path / "runs"
    told, go = tmp_path / "port", tmp_path / "go"
    script.write_text(_BEATEN_TO_ITS_PORT)
    path = write_manifest(
        f"<process><id>svc</id><executable>{PYTHON}</executable><arg>-S</arg>"
        f"<arg>{script}</arg><arg>{runs}</arg><arg>{told}</arg><arg>{go}</arg>"
        "<route>/api/*</route><communication_mode>passthrough</communication_mode></process>"
    )
    async with running(path, socket_dir) as run:
        restart = asyncio.ensure_future(run.supervisor.restart("svc"))
        assert await eventually(told.exists, 10)
        with socket.socket() as other:  # another program, on the port the child was given
            other.bind(("127.0.0.1", int(told.read_text())))
            other.listen()
            go.touch()
            assert await asyncio.wait_for(restart, 20), run.supervisor.failed_replacements
        assert runs.read_text() == "xxx"  # at launch; beaten to its port; on another port
        assert run.child("svc").restarts == 0 and run.child("svc").state is State.READY


_IGNORES_SIGTERM = """
import http.server, os, signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)
address = ("127.0.0.1", int(os.environ["PORT"]))
http.server.HTTPServer(address, http.server.BaseHTTPRequestHandler).serve_forever()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX's")
@pytest.mark.parametrize("ignores", [True, False], ids=["ignores-sigterm", "ends-on-it"])
async def test_a_child_killed_at_its_stop_timeout_is_said_to_be(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, ignores: bool,
) -> None:  # fmt: skip
    """A child still running at the end of its <stop_timeout> is SIGKILLed, and the log says
    so, with the setting to raise: otherwise a stop that took the whole grace is a mystery.
    One that ends on its SIGTERM is not said to be killed."""
    script = tmp_path / "stubborn.py"
    script.write_text(
        _IGNORES_SIGTERM if ignores else _IGNORES_SIGTERM.replace("SIG_IGN", "SIG_DFL")
    )
    path = write_manifest(
        f"<process><id>svc</id><executable>{PYTHON}</executable><arg>-S</arg><arg>{script}</arg>"
        "<route>/api/*</route><communication_mode>passthrough</communication_mode>"
        "<stop_timeout>0.3s</stop_timeout></process>"
    )
    caplog.set_level(logging.INFO, logger="local_lambdas")
    async with running(path, socket_dir) as run:
        old = run.child("svc").link.proc
        assert old is not None
        assert await run.supervisor.restart("svc")
        await asyncio.wait_for(asyncio.shield(old.exited), 10)
        assert old.returncode == (-signal.SIGKILL if ignores else -signal.SIGTERM)
        said = [r.getMessage() for r in caplog.records if "SIGKILL" in r.getMessage()]
        expected = "svc: still running 0.3s after its SIGTERM (<stop_timeout>); killed with SIGKILL"
        assert said == ([expected] if ignores else [])


async def test_a_killed_proxys_watchdog_sends_each_process_one_sigterm(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """The watchdog of a SIGKILLed proxy SIGTERMs the children's groups and the marked
    processes outside them: each process once, as a clean stop does. (The child itself, a
    shell here, has had SIGKILL, the parent-death signal: its server is what is left.)"""
    script, counts = tmp_path / "counts.py", tmp_path / "counts.txt"
    script.write_text(_COUNTS_SIGTERMS)
    command = f"{PYTHON} -S {script} {counts}; exit $?"
    path = write_manifest(
        f"<process><id>svc</id><executable>sh</executable><arg>-c</arg><arg>{command}</arg>"
        "<route>/api/*</route><communication_mode>passthrough</communication_mode></process>"
    )
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        await run.expect(r"svc: ready in")
        run.proc.kill()  # SIGKILL: only the watchdog is left to stop the server
        await run.proc.wait()
        assert await eventually(lambda: counts.exists() and bool(counts.read_text()), 10)
    assert counts.read_text().split() == ["1"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adoption is Linux's")
async def test_a_child_stopped_while_it_starts_is_let_go_of(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A child stopped before it ever listened is let go of as one that ran: its pid no
    longer counted as one the proxy started (reused, a stranger's daemon would have been
    taken for it) nor its group watched (the watchdog would kill a reused one's)."""
    path = write_manifest(process_xml("slow", "/slow/*", script="slow_start.py"))
    async with running(path, socket_dir, wait=False) as run:
        child = run.child("slow")
        assert await eventually(lambda: child.pid is not None)
        pid = child.pid
        assert pid in adoption._ours
    assert pid not in adoption._ours


async def test_max_requests_rotates_pids_without_errors(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("svc", "/api/*", extra="<max_requests>25</max_requests>"))
    async with running(path, socket_dir) as run:
        async with load(run, "/api/x", method="POST") as result:
            # An instance serves on past its limit until its replacement is ready, so count
            # rotations rather than requests per pid.
            assert await eventually(lambda: len(result.pids) >= 4, 30), result.pids
    assert result.failures == []
    served = list(result.pids.values())  # in the order the pids first answered
    assert all(count >= 25 for count in served[:-1]), served  # none retired before its limit


async def test_a_fixed_port_is_handed_on_in_place(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A process with a fixed <port> has room for one server: a restart, a reload and
    recycling each stop the running one before its replacement starts, and the requests
    that come meanwhile wait for the replacement instead of failing."""
    port = fixed_port()
    extra = f"<port>{port}</port><max_requests>30</max_requests>"
    path = write_manifest(process_xml("svc", "/api/*", mode="http", extra=extra))
    async with running(path, socket_dir) as run:
        first = run.child("svc").pid
        async with load(run, "/api/x") as result:
            await some(result, 10)
            assert await run.supervisor.restart("svc")
            restarted = run.child("svc").pid
            await some(result, 10)
            changed = extra + '<env name="V">2</env>'  # (not its routes alone: kept then)
            write_manifest(process_xml("svc", ["/api/*", "/v2/*"], mode="http", extra=changed))
            await run.started.reload(True, [])
            reloaded = run.child("svc").pid
            await some(result, 50)  # past <max_requests>: recycled at least once
        async with run.http.get(run.url + "/v2/x") as reply:
            assert reply.status == 200
    assert result.failures == []
    assert len({first, restarted, reloaded}) == 3
    assert len(result.pids) >= 4, result.pids


async def test_a_fixed_port_process_whose_build_fails_at_a_restart_serves_on(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """Replaced in its place, a fixed-<port> process is built before the running one
    stops: a <build> that fails leaves it serving, as any other process's running one,
    rather than leaving its routes without a server until the next edit."""
    build = f"<build>test ! -f {tmp_path / 'BROKEN'}</build>"
    extra = f"<port>{fixed_port()}</port>{build}"
    path = write_manifest(process_xml("svc", "/api/*", mode="http", extra=extra))
    async with running(path, socket_dir) as run:
        first = run.child("svc").pid
        (tmp_path / "BROKEN").write_text("")
        async with load(run, "/api/x") as result:
            await some(result, 10)
            assert not await run.supervisor.restart("svc")
            await some(result, 10)
        assert "its <build> failed" in run.supervisor.failed_replacements["svc"]
        assert result.failures == [] and set(result.pids) == {first}, result.pids
        assert run.pool("svc").blocked is None and run.child("svc").state is State.READY
        (tmp_path / "BROKEN").unlink()
        assert await run.supervisor.restart("svc")
        assert run.child("svc").pid != first


@pytest.mark.parametrize(
    "when", ["as the old one stops", "as the replacement starts", "after the stop"]
)
async def test_a_stop_during_a_restart_starts_nothing_after_it(
    write_manifest: WriteManifest,
    socket_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    when: str,
) -> None:
    """Ctrl+C while a restart (--watch, `local-lambdas restart`) replaces a fixed-port
    process, or a restart asked once it stopped: the replacement is stopped too and
    nothing starts once the stop began; the restart ends (False) rather than waiting for a
    replacement that will never be ready."""
    caplog.set_level(logging.INFO, logger="local_lambdas")
    # Each start listens once the test opens this FIFO: the first does, a replacement never
    # (ready within a poll of `starting`, it once ended the restart before the stop).
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    path = write_manifest(process_xml("svc", "/api/*", mode="http", script="gated.py",
                                      args=(str(gate),),
                                      extra=f"<port>{fixed_port()}</port>"))  # fmt: skip
    let_through = asyncio.ensure_future(asyncio.to_thread(os.open, gate, os.O_WRONLY))
    async with running(path, socket_dir) as run:
        os.close(await let_through)
        before = run.supervisor.pools["svc"]
        replacement: list[int] = []

        def starting() -> bool:
            pool = run.supervisor.pools["svc"]
            procs = [c.link.proc for c in pool.instances if pool is not before]
            replacement[:] = [proc.pid for proc in procs if proc is not None]
            return bool(replacement)

        said = len(caplog.records)
        if when == "after the stop":  # (a change seen as the proxy stops, say)
            await run.supervisor.stop()
        restart = asyncio.ensure_future(run.supervisor.restart("svc"))
        if when == "as the old one stops":
            await asyncio.sleep(0)  # the restart begins (one turn of the loop), no more
        elif when == "as the replacement starts":
            assert await eventually(starting)
            said = len(caplog.records)
        if when != "after the stop":
            await run.supervisor.stop()
        assert await asyncio.wait_for(restart, 5) is False
        assert run.supervisor.children == []
        after = [r.getMessage() for r in caplog.records[said:]]
        assert not [m for m in after if "starting" in m or "restarting" in m], after
        assert all(r.levelno < logging.WARNING for r in caplog.records[said:]), after
        for pid in replacement:
            assert await gone(pid)


async def test_a_stop_during_a_restart_leaves_no_process_and_no_socket(
    write_manifest: WriteManifest, socket_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl+C while a restart's replacement starts beside the running process (a file
    --watch saw change): the stop's first step (new requests refused) ends the restart,
    and the stop that follows stops the replacement with the rest. (It was left to the
    run's last sweep: 'svc: was killed by SIGKILL; restarting', its socket left in
    --socket-dir.)"""
    caplog.set_level(logging.INFO, logger="local_lambdas")
    path = write_manifest(process_xml("svc", "/api/*"))
    async with running(path, socket_dir, own_socket_dir=False) as run:
        restart = asyncio.ensure_future(run.supervisor.restart("svc"))
        assert await eventually(
            lambda: sum("svc: starting" in r.getMessage() for r in caplog.records) >= 2
        )
        await run.started.drain()  # as the stop begins: then the children's own stop
        assert await asyncio.wait_for(restart, 5) is False
        said = len(caplog.records)
    after = [r.getMessage() for r in caplog.records[said:]]
    assert all(r.levelno < logging.WARNING for r in caplog.records[said:]), after
    assert not [m for m in after if "restarting" in m], after
    assert _left_in(socket_dir) == []


def _left_in(folder: Path) -> list[str]:
    """What is in `folder`; nothing if it is gone (a run removes the folders it made)."""
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


async def test_processes_that_swap_fixed_ports_are_both_replaced(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """Each wants the port the other holds: both stop first, then both start."""
    ports = fixed_port(), fixed_port()

    def both(first: int, second: int) -> Path:
        return write_manifest(*(
            process_xml(name, f"/{name}/*", mode="http", extra=f"<port>{port}</port>")
            for name, port in (("a", first), ("b", second))
        ))  # fmt: skip

    path = both(*ports)
    async with running(path, socket_dir) as run:
        both(*reversed(ports))
        await run.started.reload(True, [])
        for name, port in (("a", ports[1]), ("b", ports[0])):
            assert run.child(name).address == f"http://127.0.0.1:{port}"
            async with run.http.get(f"{run.url}/{name}/x") as reply:
                assert reply.status == 200


async def test_a_restart_while_an_instance_drains_for_recycling_stops_it_too(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """An instance past <max_requests> is taken out of service and drains its requests; a
    restart (or reload, or stop) of the process in the meantime stops it as well, once its
    requests are answered, rather than leaving it running, out of every list."""
    path = write_manifest(process_xml("svc", "/api/*", extra="<max_requests>2</max_requests>"))
    async with running(path, socket_dir) as run:
        pool, old = run.pool("svc"), run.child("svc")
        slow = asyncio.ensure_future(run.http.get(run.url + "/api/slow"))  # 1 s
        assert await eventually(lambda: old.in_flight == 1)
        async with run.http.get(run.url + "/api/x") as reply:  # its second: recycled
            assert reply.status == 200
        assert await eventually(lambda: old not in pool.instances)  # draining the slow one
        assert old.in_flight == 1
        pid = old.pid
        assert await run.supervisor.restart("svc")
        async with await slow as reply:
            assert reply.status == 200
        assert pid is not None and await gone(pid)
        assert old.pid is None  # (not shown once gone)


async def test_a_request_that_ends_while_its_process_is_replaced_starts_nothing(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """The request that reaches <max_requests> ends while a restart drains the process: no
    replacement is started for a process that is being stopped (it ran on, in no list)."""
    path = write_manifest(process_xml("svc", "/api/*", extra="<max_requests>2</max_requests>"))
    async with running(path, socket_dir) as run:
        before, old = run.pool("svc"), run.child("svc")
        async with run.http.get(run.url + "/api/x") as reply:  # its first
            assert reply.status == 200
        slow = asyncio.ensure_future(run.http.get(run.url + "/api/slow"))  # its second, 1 s
        assert await eventually(lambda: old.in_flight == 1)
        pid = old.pid
        assert await run.supervisor.restart("svc")
        async with await slow as reply:
            assert reply.status == 200
        assert pid is not None and await gone(pid)
        assert before.instances == []


async def test_a_restart_once_the_working_dir_is_gone_says_so(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """The <working_dir> removed while the process runs (a branch switched, a clean build):
    its restart's answer says so, not "cannot run python3: No such file or directory", nor
    the running one's state; the running one serves on."""
    work = tmp_path / "work"
    work.mkdir()
    extra = f"<working_dir>{work}</working_dir><start_retries>1</start_retries>"
    path = write_manifest(process_xml("svc", "/api/*", extra=extra))
    async with running(path, socket_dir) as run:
        work.rmdir()
        async with run.http.post(run.url + "/_/processes/svc/restart") as reply:
            assert reply.status == 503
            said = (await reply.json())["error"]
        # (Its first start failed: the replacement is stopped, not restarted meanwhile.)
        assert said.startswith("its replacement did not become ready (its start failed: "), said
        assert "restarting" not in said, said
        assert f'its <working_dir> "{work}" is not a directory (any more)' in said, said
        async with run.http.get(run.url + "/api/x") as reply:
            assert reply.status == 200


@pytest.mark.skipif(not _compat.IS_LINUX, reason="names the holder from /proc")
async def test_a_fixed_port_another_program_listens_on_is_said_to_be_taken(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        extra = f"<port>{port}</port><start_retries>1</start_retries>"
        path = write_manifest(process_xml("svc", "/api/*", mode="http", extra=extra))
        async with running(path, socket_dir, wait=False) as run:
            pool = run.pool("svc")
            assert await pool.wait_for(lambda: pool.state.value == "FATAL", 10)
            assert (f"could not be started: its <port> {port} is in use: pid {os.getpid()} ("
                    in pool.why_not_ready())  # fmt: skip


@pytest.mark.parametrize(
    ("bound", "named"),
    [
        ("<queue_timeout>300ms</queue_timeout>", "<concurrency>"),
        ("<max_queue>0</max_queue>", "<max_queue>"),
    ],
)
async def test_past_the_queue_bound_is_503_with_retry_after(
    write_manifest: WriteManifest, socket_dir: Path, bound: str, named: str
) -> None:
    # One slot, taken by a slow request: the next waits past its bound, or may not wait.
    path = write_manifest(
        process_xml("svc", "/api/*", extra="<concurrency>1</concurrency>" + bound)
    )
    async with running(path, socket_dir) as run:
        slow = asyncio.ensure_future(run.http.get(run.url + "/api/slow"))
        assert await eventually(lambda: run.child("svc").in_flight == 1)
        async with run.http.get(run.url + "/api/x") as reply:
            assert reply.status == 503
            assert reply.headers["Retry-After"] == "1"
            assert named in (await reply.json())["error"]
        async with await slow as reply:
            assert reply.status == 200


async def test_waiting_requests_are_served_in_the_order_they_came(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """One slot, taken: each request that comes waits in line and gets the slot in turn.
    The first holds it until the four are in line (a 1 s request once ended first, loaded)."""
    path = write_manifest(process_xml("svc", "/api/*", extra="<concurrency>1</concurrency>"))
    async with running(path, socket_dir) as run:
        pool = run.pool("svc")
        done: list[int] = []

        async def get(n: int, path: str = "x") -> None:
            async with run.http.get(f"{run.url}/api/{path}") as reply:
                assert reply.status == 200
            done.append(n)

        gate = tmp_path / "gate"
        tasks = [asyncio.ensure_future(get(0, f"gate?until={gate}"))]
        assert await eventually(lambda: run.child("svc").in_flight == 1)
        for n in range(1, 5):
            tasks.append(asyncio.ensure_future(get(n)))
            assert await eventually(functools.partial(lambda n: pool.waiting == n, n))
        gate.touch()
        await asyncio.gather(*tasks)
        assert done == [0, 1, 2, 3, 4]


async def test_requests_wait_for_a_starting_child(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("svc", "/api/*"))
    async with running(path, socket_dir, wait=False) as run:
        # Sent at once, while the child starts: held until it is ready, not refused.
        async with run.http.get(run.url + "/api/x") as reply:
            assert reply.status == 200


@pytest.mark.parametrize("what", ["routes", "env"])
async def test_reload_under_load_changes_routes_without_errors(
    write_manifest: WriteManifest, socket_dir: Path, what: str
) -> None:
    """A reload under load loses no request: a process whose routes alone changed runs on
    (nginx's reload leaves its upstreams alone), one whose environment changed is replaced
    beside the running one."""
    path = write_manifest(process_xml("a", "/a/*"), process_xml("b", "/b/*"))
    async with running(path, socket_dir) as run:
        kept = run.child("a").pid
        old_b = run.child("b").pid
        async with load(run, "/a/x") as on_a, load(run, "/b/x") as on_b:
            await some(on_b, 30)
            extra = '<env name="V">2</env>' if what == "env" else ""
            write_manifest(process_xml("a", "/a/*"),
                           process_xml("b", ["/b/*", "/c/*"], extra=extra))  # fmt: skip
            await run.started.reload(True, [])
            await some(on_b, 30)
        async with run.http.get(run.url + "/c/x") as reply:
            assert reply.status == 200
    assert on_a.failures == [] and on_b.failures == []
    assert set(on_a.pids) == {kept}
    if what == "env":
        assert old_b in on_b.pids and len(on_b.pids) == 2
    else:
        assert set(on_b.pids) == {old_b}


async def test_a_reload_gives_a_running_process_its_new_routes_and_limits(
    write_manifest: WriteManifest, socket_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """<route>, <timeout>, <methods>, <max_body_size> changed alone: the process runs on,
    and its requests are routed and bounded as the new manifest says from the swap on."""
    caplog.set_level(logging.INFO, "local_lambdas.supervisor")
    path = write_manifest(process_xml("b", "/b/*"))
    async with running(path, socket_dir) as run:
        pid = run.child("b").pid
        async with run.http.get(run.url + "/b/slow") as reply:  # (1 s)
            assert reply.status == 200
        # A <timeout> a busy machine's plain request keeps within (0.3 s was not, once, on a
        # CI run of six workers on two cores), met by a child that never answers.
        limits = "<timeout>1.5s</timeout><methods>GET</methods><max_body_size>4</max_body_size>"
        write_manifest(process_xml("b", "/c/*", extra=limits))
        await run.started.reload(True, [])
        assert run.child("b").pid == pid and run.child("b").restarts == 0
        async with run.http.get(run.url + "/b/x") as reply:
            assert reply.status == 404
        async with run.http.get(run.url + "/c/x") as reply:
            assert reply.status == 200
        async with run.http.get(run.url + "/c/hang") as reply:
            assert reply.status == 504
            assert "within 1.5s" in (await reply.json())["error"]
        async with run.http.post(run.url + "/c/x") as reply:
            assert reply.status == 405
        async with run.http.get(run.url + "/c/x", data=b"12345") as reply:
            assert reply.status == 413
    said = "reload: b: <max_body_size>, <methods>, <route>, <timeout> changed; its process runs on"
    assert said in caplog.text


async def _across_a_reload(
    run: Running, target: str, write_manifest: WriteManifest, replacement: str
) -> tuple[int, str | None, str]:
    """GET `target` as it waits for process d (not started: gated.py), then a reload gives
    its route to `replacement`: the answer's status, Retry-After and text."""

    async def get() -> tuple[int, str | None, str]:
        async with run.http.get(run.url + target) as reply:
            return reply.status, reply.headers.get("Retry-After"), await reply.text()

    waiting = asyncio.create_task(get())
    assert await eventually(lambda: run.pool("d").waiting == 1)
    write_manifest(replacement)
    await run.started.reload(True, [])
    return await asyncio.wait_for(waiting, 15)


@pytest.mark.parametrize(("mode", "script"), [("http", "behave.py"),
                                             ("passthrough", "web_child.py")])  # fmt: skip
async def test_a_request_waiting_as_a_reload_gives_its_route_away_goes_on_if_it_can(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path, mode: str, script: str
) -> None:
    """A request waiting for a process that a reload replaces goes on to the process that
    takes its route: one of the same kind (an envelope mode for another) serves it; a
    pass-through server, for a request read as an envelope's, cannot, and was sent it all
    the same, failing 502 "e stopped" as if the new process had died. It is 503, saying why
    and to send it again."""
    gate = tmp_path / "gate"  # d listens once the test opens this FIFO's other end: never
    os.mkfifo(gate)
    path = write_manifest(process_xml("d", "/y/*", script="gated.py", args=(str(gate),)))
    async with running(path, socket_dir, wait=False) as run:
        replacement = process_xml("e", "/y/*", mode=mode, script=script)
        status, retry_after, text = await _across_a_reload(run, "/y/echo", write_manifest,
                                                           replacement)  # fmt: skip
    body = json.loads(text)
    if mode == "http":
        assert status == 200 and body["uri"] == "/y/echo", body
    else:
        assert (status, retry_after) == (503, "1"), body
        assert body["error"] == (
            "d was replaced by a reload as this request waited; e, a pass-through server, "
            "takes its route now: send it again"
        )


@pytest.mark.parametrize("prefix", ["/y", ""])
async def test_a_request_a_reload_reroutes_goes_on_only_if_cut_for_the_same_prefix(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path, prefix: str
) -> None:
    """A pass-through request's target is cut for its process's <strip_prefix> before it
    waits: one waiting as a reload gives its route to a process with another prefix would
    reach that child cut for the old one (`/echo` where it expects `/y/echo`). It is 503,
    saying so; with the same prefix it goes on."""
    gate = tmp_path / "gate"  # d listens once the test opens this FIFO's other end: never
    os.mkfifo(gate)
    strip = "<strip_prefix>/y</strip_prefix>"
    path = write_manifest(process_xml("d", "/y/*", mode="passthrough", script="gated.py",
                                      args=(str(gate), "--web"), extra=strip))  # fmt: skip
    async with running(path, socket_dir, wait=False) as run:
        extra = f"<strip_prefix>{prefix}</strip_prefix>" if prefix else ""
        replacement = process_xml("e", "/y/*", mode="passthrough", script="web_child.py",
                                  extra=extra)  # fmt: skip
        status, _, text = await _across_a_reload(run, "/y/echo", write_manifest, replacement)
    body = json.loads(text)
    if prefix:
        assert status == 200 and body["path"] == "/echo", body
    else:
        assert status == 503 and body["error"] == (
            "d was replaced by a reload as this request waited; e takes its route now, with "
            "another <strip_prefix>: send it again"
        ), body


@pytest.mark.parametrize("fast_lane", [True, False], ids=["fast-lane", "aiohttp"])
async def test_a_request_a_reload_reroutes_has_the_new_processes_timeout(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path, fast_lane: bool
) -> None:
    """A pass-through request that waited for a process a reload replaced goes on to the
    new one under the new one's <timeout>, as an envelope request does: it was held to the
    old process's (a slow answer cut off at the 1 s the reload had just raised)."""
    gate = tmp_path / "gate"  # d listens once the test opens this FIFO's other end: never
    os.mkfifo(gate)
    strip = "<strip_prefix>/y</strip_prefix>"
    path = write_manifest(process_xml("d", "/y/*", mode="passthrough", script="gated.py",
                                      args=(str(gate), "--web"),
                                      extra=strip + "<timeout>1s</timeout>"))  # fmt: skip
    async with running(path, socket_dir, wait=False, fast_lane=fast_lane) as run:
        replacement = process_xml("e", "/y/*", mode="passthrough", script="web_child.py",
                                  extra=strip + "<timeout>10s</timeout>")  # fmt: skip
        status, _, text = await _across_a_reload(run, "/y/slow", write_manifest, replacement)
        assert (status, text) == (200, "late\n")  # (/slow answers after 2 s)


async def test_a_reload_does_not_wait_for_the_one_before_it_to_stop_what_it_replaced(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """A replaced process drains and stops once its reload is over, but a reload held its
    lock until then: a second one (an edit saved again, a `local-lambdas restart`) waited
    up to the first one's <stop_timeout> for a child slow to stop (or its <timeout> for a
    long poll), its new routes 404 meanwhile. It goes ahead now; the slow one keeps its
    grace."""
    stubborn = behave_after(
        tmp_path / "stubborn.py", "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    )
    path = write_manifest(
        f"<process><id>s</id><executable>{PYTHON}</executable><arg>{stubborn}</arg>"
        "<route>/s/*</route><stop_timeout>30s</stop_timeout></process>"
    )
    async with running(path, socket_dir) as run:
        slow = run.child("s").pid
        assert slow is not None
        write_manifest(process_xml("a", "/a/*"))  # s goes, and takes 30 s to
        first = asyncio.create_task(run.started.reload(True, []))
        assert await eventually(lambda: run.supervisor.route("/s/x") is None)  # (retiring)
        write_manifest(process_xml("a", "/a/*"), process_xml("b", "/b/*"))
        await asyncio.wait_for(run.started.reload(True, []), 20)
        async with run.http.get(run.url + "/b/x") as reply:
            assert reply.status == 200
        assert not first.done() and alive(slow)  # (still in its grace)
        os.kill(slow, signal.SIGKILL)
        await asyncio.wait_for(first, 10)
    assert not run.supervisor.retiring


async def test_reload_with_errors_keeps_the_running_manifest(
    write_manifest: WriteManifest, socket_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_manifest(process_xml("a", "/a/*"))
    async with running(path, socket_dir) as run:
        pid = run.child("a").pid
        write_manifest(process_xml("a", "a/*") + "<bogus/>")
        await run.started.reload(True, [])
        async with run.http.get(run.url + "/a/x") as reply:
            assert json.loads(await reply.read())["pid"] == pid
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any('must start with "/"' in e for e in errors)
    assert any("unknown element <bogus>" in e for e in errors)
    assert any("still running the previous one" in e for e in errors)


async def test_reload_restarts_a_fatal_process(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    flag = tmp_path / "broken"
    flag.touch()
    script = tmp_path / "maybe.py"
    script.write_text(
        "import os, runpy, sys\n"
        f"if os.path.exists({str(flag)!r}): sys.exit(2)\n"
        f"runpy.run_path({str(Path(__file__).parent / 'children' / 'behave.py')!r}, "
        "run_name='__main__')\n"
    )
    path = write_manifest(
        f"<process><id>m</id><executable>python3</executable><arg>{script}</arg>"
        "<route>/m/*</route><start_retries>1</start_retries></process>"
    )
    async with running(path, socket_dir, wait=False) as run:
        pool = run.pool("m")
        assert await pool.wait_for(lambda: pool.instances[0].state.value == "FATAL", 10)
        flag.unlink()
        await run.started.reload(True, [])  # the manifest is unchanged; FATAL is reason enough
        async with run.http.get(run.url + "/m/x") as reply:
            assert reply.status == 200


async def test_a_process_a_reload_adds_that_crashes_answers_503_saying_why(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """A process added to a running manifest (as with --watch) that crashes as it starts
    was left out of the routes: its route said "no route matches" (404), and only the log
    said why. It is added as at start-up: 503 saying why, then served once fixed."""
    flag = tmp_path / "broken"
    flag.touch()
    script = tmp_path / "maybe.py"
    script.write_text(
        "import os, runpy, sys\n"
        f"if os.path.exists({str(flag)!r}): sys.exit('a typo in maybe.py')\n"
        f"runpy.run_path({str(CHILDREN / 'behave.py')!r}, run_name='__main__')\n"
    )
    added = (
        f"<process><id>m</id><executable>{PYTHON}</executable><arg>{script}</arg>"
        "<route>/m/*</route><start_retries>1</start_retries></process>"
    )
    path = write_manifest(process_xml("a", "/a/*"))
    async with running(path, socket_dir) as run:
        write_manifest(process_xml("a", "/a/*"), added)
        await run.started.reload(True, [])
        async with run.http.get(run.url + "/m/x") as reply:
            assert reply.status == 503
            said = (await reply.json())["error"]
        assert said.startswith("FATAL: gave up after 2 failed starts") and "code 1" in said, said
        flag.unlink()
        await run.started.reload(True, [])  # (as an edit with --watch restarts it)
        async with run.http.get(run.url + "/m/x") as reply:
            assert reply.status == 200


@pytest.mark.skipif(not _compat.IS_LINUX, reason="work is measured from /proc")
async def test_a_replacement_that_compiles_as_it_starts_is_waited_for(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """`cargo run` after an edit compiles before it listens: at start-up that work does not
    count against <startup_timeout>, but a reload or a restart gave the replacement its
    <startup_timeout> and a second, then stopped it, the running one serving on: with
    --watch, an edit to a compiled program never took effect. Its start is judged as any
    start is."""
    path = write_manifest(compiles_again(tmp_path))
    async with running(path, socket_dir) as run:
        first = run.child("svc").pid
        assert await run.supervisor.restart("svc"), run.supervisor.failed_replacements
        assert run.child("svc").pid != first
        async with run.http.get(run.url + "/api/x") as reply:
            assert json.loads(await reply.read())["pid"] == run.child("svc").pid


@pytest.mark.skipif(not _compat.IS_LINUX, reason="work is measured from /proc")
async def test_recycling_waits_for_a_replacement_that_loads_as_it_starts(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """Past <max_requests>, the replacement of a process that loads for longer than its
    <startup_timeout> (a JVM) was given up on ("its replacement did not start"), so it was
    never recycled. Its start is judged as any start is."""
    path = write_manifest(compiles_again(tmp_path, "<max_requests>2</max_requests>"))
    async with running(path, socket_dir) as run:
        first = run.child("svc").pid
        for _ in range(2):
            async with run.http.get(run.url + "/api/x") as reply:
                assert json.loads(await reply.read())["pid"] == first
        assert await eventually(lambda: run.child("svc").pid != first, 10)
        async with run.http.get(run.url + "/api/x") as reply:
            assert json.loads(await reply.read())["pid"] != first


async def test_watch_restarts_a_process_when_its_files_change(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    workdir, elsewhere = tmp_path / "svc", tmp_path / "other"
    workdir.mkdir()
    elsewhere.mkdir()
    path = write_manifest(
        process_xml("svc", "/api/*", extra=f"<working_dir>{workdir}</working_dir>"),
        # Not the default, the test's working directory, this checkout: other tests write
        # there (test_polyglot builds its C child), and --watch restarted it for them.
        process_xml("other", "/other/*", extra=f"<working_dir>{elsewhere}</working_dir>"),
    )
    loaded = manifest.load(path, socket_dir=socket_dir)
    async with running(path, socket_dir, watch=True) as run:
        old = run.pool("svc")
        other = run.child("other").pid
        async with load(run, "/api/x") as result:
            await some(result, 20)
            (workdir / "handler.py").write_text("# changed\n")
            assert await eventually(lambda: run.pool("svc") is not old, 20)
            await some(result, 20)
        assert run.child("other").pid == other
    assert result.failures == []
    assert len(result.pids) == 2
    assert loaded.processes[0].working_dir == workdir


async def test_requests_arriving_while_stopping_get_503(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("svc", "/api/*"))
    async with running(path, socket_dir) as run:
        slow = asyncio.ensure_future(run.http.get(run.url + "/api/slow"))
        assert await eventually(lambda: run.child("svc").in_flight == 1)
        await run.started.drain()  # what a stop runs first
        async with run.http.get(run.url + "/api/x") as reply:
            assert reply.status == 503
            assert reply.headers["Retry-After"] == "1"
            assert "shutting down" in (await reply.json())["error"]
        async with await slow as reply:
            assert reply.status == 200  # what was in flight finishes


def _script_child(write_manifest: WriteManifest, folder: Path) -> tuple[Path, Path]:
    """A shell script in `folder` that runs behave.py, and a manifest of it as process svc
    on /api/* (one retry of its start): (the script, the manifest)."""
    script = folder / "child.sh"
    script.write_bytes(f"#!/bin/sh\nexec {PYTHON} -S {CHILDREN / 'behave.py'}\n".encode())
    script.chmod(0o755)
    path = write_manifest(
        f"<process><id>svc</id><executable>{script}</executable><route>/api/*</route>"
        "<start_retries>1</start_retries></process>"
    )
    return script, path


@pytest.mark.skipif(sys.platform == "win32", reason="no #! lines on Windows")
async def test_a_script_saved_with_crlf_after_the_start_is_named_at_its_restart(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """A checkout that turns a child's script to Windows line endings while it runs: the
    restart's failure says so, not the kernel's bare "No such file or directory"."""
    script, path = _script_child(write_manifest, tmp_path)
    async with running(path, socket_dir) as run:
        child = run.child("svc")
        script.write_bytes(script.read_bytes().replace(b"\n", b"\r\n"))
        os.kill(child.pid or 0, signal.SIGKILL)
        assert await run.pool("svc").wait_for(lambda: child.state.value == "FATAL", 10)
        assert "cannot run" in child.reason and "has Windows line endings" in child.reason


@pytest.mark.skipif(sys.platform != "linux", reason="ELF programs are Linux's")
@pytest.mark.parametrize("loop", ["asyncio", UVLOOP])
async def test_a_program_rebuilt_for_another_processor_is_named_at_its_restart(
    write_manifest: WriteManifest, tmp_path: Path, loop: str
) -> None:
    """A child's program rebuilt for the wrong processor while it runs (GOARCH=riscv64):
    its restart says so, under asyncio (whose exec fails, ENOEXEC) and under uvloop (whose
    exec hands the file to the shell, leaving "ELF: not found" and exit 127 to read)."""
    program, path = _script_child(write_manifest, tmp_path)
    async with cli(str(path), "--bind", "127.0.0.1:0", "--event-loop", loop) as run:
        pid = int((await run.expect(r"svc: ready .*\(pid (\d+),")).group(1))
        program.write_bytes(elf_program(243))  # RISC-V
        os.kill(pid, signal.SIGKILL)
        said = (await run.expect(r"svc: FATAL: .*")).group(0)
        assert "cannot run" in said and "is a program for RISC-V processors" in said, said

"""Children as they are in the wild (Linux): servers that listen on any address, wrappers that
leave descendants holding the output, daemons that leave the process group, dev servers that
ignore $PORT, another program at a child's address, output floods, and the run's token."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from local_lambdas import _compat, orphans, sockdiag
from local_lambdas._compat import adoption, listeners, processes
from tests.helpers import (
    CHILDREN,
    NEEDS_NODE,
    PYTHON,
    Cli,
    Running,
    WriteManifest,
    alive,
    behave_after,
    cli,
    eventually,
    fixed_port,
    gone,
    node_server_xml,
    process_xml,
    processes_running,
    running,
    serves_with_its_input_held,
)

pytestmark = pytest.mark.skipif(not _compat.IS_LINUX, reason="Linux process tables and signals")
WILD = CHILDREN / "wild.py"


def wild(pid: str, route: str, *args: str, mode: str = "passthrough", extra: str = "") -> str:
    return process_xml(pid, route, script="wild.py", args=args, mode=mode, extra=extra)


async def daemon_named(run: Running, name: str, command: str) -> int:
    """The pid of the daemon that child `name` left running as it exited 0, which its exit's
    reason names, the command line matching `command` (a pattern), with the fix."""
    child = run.child(name)
    assert await run.pool(name).wait_for(lambda: child.state.value == "EXITED", 10)
    said = re.match(
        rf"exited with code 0; it left pid (\d+) \({command}[^)]*\) running, stopped with it: "
        r"keep the server in the foreground",
        child.reason,
    )
    assert said, child.reason
    return int(said[1])


def adopted_zombies(group: int | None = None) -> list[int]:
    """This process's children that have exited and wait to be reaped (/proc/N/stat), in
    process group `group` if given."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_bytes().rpartition(b")")[2].split()
        except OSError:
            continue
        ours = fields and fields[0] == b"Z" and int(fields[1]) == os.getpid()
        if ours and (group is None or int(fields[2]) == group):
            found.append(int(entry.name))
    return found


@NEEDS_NODE
async def test_servers_that_listen_on_any_address_are_ready(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(node_server_xml("node", "/node/*"), wild("v6", "/v6/*", "ipv6-loopback"))
    async with running(path, socket_dir) as run:
        for route, process in (("/node/x", "node"), ("/v6/x", "v6")):
            async with run.http.get(run.url + route) as reply:
                assert reply.status == 200, route
                assert json.loads(await reply.text())["pid"] == run.child(process).pid
        assert run.child("v6").address.startswith("http://[::1]:")


async def test_a_server_that_stops_when_its_input_ends_serves_on(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """esbuild's --serve, Tailwind's --watch, a .NET program held up by Console.ReadLine()
    stop when their standard input ends: a child's input is held open, as a terminal no one
    types into (a <task>'s is not: tests/test_start_order.py; Windows: test_windows.py; the
    real esbuild: test_frameworks.py)."""
    await serves_with_its_input_held(write_manifest, socket_dir, "pipe")


@NEEDS_NODE
@pytest.mark.parametrize("mode", ["pipe", "pipe-keepalive"])
async def test_a_web_server_on_the_pipe_is_sent_to_passthrough(
    write_manifest: WriteManifest, socket_dir: Path, mode: str
) -> None:
    """A web server that listens at $PIPE_ADDRESS (gunicorn --bind unix:, Node's
    listen(path)) answers the envelope with an HTTP 400: the 502 names its version and
    status, and the mode it wants."""
    path = write_manifest(node_server_xml("node", "/node/*", mode=mode))
    async with running(path, socket_dir) as run:
        async with run.http.get(run.url + "/node/x") as reply:
            assert reply.status == 502
            error = (await reply.json())["error"]
        assert error == (
            "the child answered in HTTP (HTTP/1.1 400), not with a response "
            "object: a web server goes behind <communication_mode>passthrough"
            "</communication_mode>, on $PORT"
        )


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
async def test_npm_start_without_a_start_script_says_so(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """npm that cannot start the script at all: its own error is the line that says why,
    not the bare "npm error" its account ends with."""
    (tmp_path / "package.json").write_text('{"name": "x", "version": "1.0.0"}')
    command = f"<executable>npm</executable><arg>start</arg><working_dir>{tmp_path}</working_dir>"
    await _given_up_on(command, write_manifest, socket_dir)
    assert 'its last output: npm error Missing script: "start"' in caplog.text


async def _given_up_on(command: str, write_manifest: WriteManifest, socket_dir: Path) -> None:
    """Run a pass-through process of `command` (its <executable>, <arg>s...) that fails at
    its first start, until it is given up on (FATAL)."""
    path = write_manifest(
        f"<process><id>web</id>{command}<route>/*</route>"
        "<communication_mode>passthrough</communication_mode>"
        "<start_retries>0</start_retries></process>"
    )
    async with running(path, socket_dir, wait=False) as run:
        pool = run.pool("web")
        assert await pool.wait_for(lambda: pool.instances[0].state.value == "FATAL", 30)


@NEEDS_NODE
async def test_a_node_server_whose_port_is_taken_is_told_by_its_error_line(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Node.js's crash on a taken port (the port of the proxy, written into the server) is
    26 lines: its error, ten stack frames, the error's fields and its version. The reason
    quotes the error, not the "}" that closes its fields."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = tmp_path / "fixed.js"
        server.write_text(f'require("http").createServer((q, s) => s.end()).listen({port});\n')
        command = f"<executable>node</executable><arg>{server}</arg>"
        await _given_up_on(command, write_manifest, socket_dir)
    assert "its last output: Error: listen EADDRINUSE: address already in use " in caplog.text


async def test_an_exit_is_seen_though_a_descendant_holds_the_output(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    mark = f"{3000 + secrets.randbelow(500)}.{secrets.randbelow(10**6)}"
    wrapped = (
        "<process><id>wrapped</id><executable>sh</executable><arg>-c</arg>"
        f"<arg>sleep {mark} &amp; exec {PYTHON} {CHILDREN / 'behave.py'}</arg>"
        "<route>/w/*</route></process>"
    )
    path = write_manifest(wrapped)
    async with running(path, socket_dir) as run:
        child = run.child("wrapped")
        first = child.pid
        assert first is not None and processes_running(mark)
        os.kill(first, signal.SIGKILL)
        # Seen at once and restarted, though the sleep held stdout and stderr open.
        assert await run.pool("wrapped").wait_for(
            lambda: child.generation == 2 and child.pid != first, 5
        )
        async with run.http.get(run.url + "/w/pid") as reply:
            assert reply.status == 200
            assert int(await reply.text()) == child.pid
        # The first start's background job went with it, and was reaped (the proxy adopted
        # it when its parent died); the second's is running.
        assert len(processes_running(mark)) == 1
        assert await eventually(lambda: not adopted_zombies(first))
        second = child.pid
        stopping = asyncio.get_running_loop().time()
    # The stop does not wait out its grace (5 s) for a background job that has exited.
    assert asyncio.get_running_loop().time() - stopping < 2.5
    assert not processes_running(mark) and not adopted_zombies(second)


def test_a_proxy_that_is_its_containers_first_process_starts_its_children(
    write_manifest: WriteManifest,
) -> None:
    """In a container the proxy is process 1 (export's command, `docker run` without
    --init), and so its children's parent is 1: each of them once took that for the sign
    that the proxy had died before it could be told, and exited, code 1, not a word said.
    Run here in a PID namespace of its own, as an engine runs it."""
    unshare = shutil.which("unshare")
    made = unshare and subprocess.run([unshare, "-fp", "--mount-proc", "true"],
                                      capture_output=True, timeout=30)  # fmt: skip
    if not made or made.returncode != 0:
        pytest.skip("cannot make a PID namespace here (unshare -fp needs root)")
    assert unshare is not None
    path = write_manifest(process_xml("pipe", "/p/*"), process_xml("web", "/w/*", mode="http"))
    call = ("import os, urllib.request as u; print(*(u.urlopen(os.environ['LOCAL_LAMBDAS_URL']"
            " + r).status for r in ('/p/x', '/w/x')), os.getppid())")  # fmt: skip
    ran = subprocess.run(
        [unshare, "-fp", "--mount-proc", PYTHON, "-m", "local_lambdas", "run", str(path), "--",
         PYTHON, "-c", call],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "200 200 1\n" in ran.stdout  # both answered; the command's parent: process 1


async def test_a_setsid_descendant_does_not_outlive_a_stop(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    mark = f"{3500 + secrets.randbelow(500)}.{secrets.randbelow(10**6)}"
    path = write_manifest(wild("daemonic", "/d/*", "daemon", mark, mode="pipe"))
    async with running(path, socket_dir) as run:
        assert await eventually(lambda: bool(processes_running(mark)))
        (escaped,) = processes_running(mark)
        assert os.getsid(escaped) != os.getsid(run.child("daemonic").pid or 0)
    assert await eventually(lambda: not processes_running(mark))


async def test_a_stop_looks_below_the_proxy_only(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy is the subreaper of its children's trees, so what carries a child's mark or
    is in its process group is below it: a stop reads those processes, not every process on
    the machine (with 670 processes running, stopping 150 children took 7.5 s of CPU),
    through the whole of a grace (a process ignoring its SIGTERM, polled until it is killed).
    The setsid descendant is found all the same."""
    read: set[int] = set()
    scans: list[int] = []
    environ, scandir = orphans._environ, os.scandir

    def reading(pid: int) -> bytes | None:
        read.add(pid)
        return environ(pid)

    def scanning(path: str) -> Iterator[os.DirEntry[str]]:
        scans.extend([1] if path == "/proc" else [])
        return scandir(path)

    mark = f"{3500 + secrets.randbelow(500)}.{secrets.randbelow(10**6)}"
    # It ends on its SIGTERM; the shell it started, in its group, outlives it to the end.
    prelude = "import subprocess\nsubprocess.Popen(['sh', '-c', 'trap \"\" TERM; sleep 30'])\n"
    stubborn = behave_after(tmp_path / "stubborn.py", prelude)
    path = write_manifest(
        wild("daemonic", "/d/*", "daemon", mark, mode="pipe"),
        f"<process><id>s</id><executable>{PYTHON}</executable><arg>{stubborn}</arg>"
        "<route>/s/*</route><stop_timeout>300ms</stop_timeout></process>",
    )
    async with running(path, socket_dir) as run:
        assert await eventually(lambda: bool(processes_running(mark)))
        (escaped,) = processes_running(mark)
        slow = run.child("s").pid
        monkeypatch.setattr(orphans, "_environ", reading)
        monkeypatch.setattr(os, "scandir", scanning)
    monkeypatch.undo()  # what the stop read, not what this test reads (pathlib's scandir)
    assert await eventually(lambda: not processes_running(mark))
    assert slow is not None and not alive(slow) and not processes.group_alive(slow)
    outside = {1, os.getppid()}  # init, and the process that started this one
    assert escaped in read and not read & outside, read & outside
    assert not scans, f"{len(scans)} scans of every process"


async def test_descendants_started_while_their_parent_is_killed_are_killed_too(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A wrapper that exits leaving a daemon that keeps starting processes in sessions of
    their own: one started between the scan that finds the daemon and the daemon's SIGKILL
    is found by the next scan, not left running."""
    mark = f"{30 + secrets.randbelow(10)}.{secrets.randbelow(10**6)}"  # seconds a sleep lasts
    path = write_manifest(wild("forker", "/f/*", "forking", mark,
                               extra="<restart>on-failure</restart>"))  # fmt: skip
    async with running(path, socket_dir, wait=False) as run:
        child = run.child("forker")
        assert await run.pool("forker").wait_for(lambda: child.state.value == "EXITED", 10)
        assert "running, stopped with it" in child.reason, child.reason
        assert processes_running(mark) == []


async def test_a_setsid_descendant_does_not_outlive_a_killed_proxy(
    write_manifest: WriteManifest,
) -> None:
    mark = f"{4000 + secrets.randbelow(500)}.{secrets.randbelow(10**6)}"
    path = write_manifest(wild("daemonic", "/d/*", "daemon", mark, mode="pipe"))
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        await run.expect(r"daemonic: ready in")
        assert await eventually(lambda: bool(processes_running(mark)))
        run.proc.kill()  # SIGKILL: only the watchdog is left to clean up
        await run.proc.wait()
        assert await eventually(lambda: not processes_running(mark), timeout=10)


async def test_helpers_with_no_environment_do_not_outlive_a_killed_proxy(
    write_manifest: WriteManifest,
) -> None:
    """A child's helpers started with a cleared environment in sessions of their own, one
    still the child's own, one a double fork's (adopted by the proxy): neither a mark nor
    the child's group finds them, yet a SIGKILLed proxy's watchdog stops both."""
    mark = f"{6000 + secrets.randbelow(500)}.{secrets.randbelow(10**6)}"
    path = write_manifest(wild("helped", "/h/*", "helpers", mark, mode="pipe"))
    async with cli(str(path), "--bind", "127.0.0.1:0", "--verbose") as run:
        await run.expect(r"helped: ready in")
        assert await eventually(lambda: len(processes_running(mark)) == 2)
        # Each told to the watchdog (the proxy looks every 2 s: on a loaded machine the two
        # may be told in two looks).
        told = r"pid {}, below the proxy with no mark, is the watchdog's too"
        first = (await run.expect(told.format(r"(\d+)"))).group(1)
        await run.expect(told.format(rf"(?!{first},)\d+"))
        run.proc.kill()  # SIGKILL: only the watchdog is left to clean up
        await run.proc.wait()
        assert await eventually(lambda: not processes_running(mark), timeout=10)


async def test_a_killed_proxys_sockets_in_a_shared_folder_are_removed(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """With --socket-dir (the earlier tool's /tmp layout), a SIGKILLed proxy's children's
    sockets are removed by its watchdog, as its own folder is without it; a file another
    run has put at such a path since is left alone."""
    shared = tmp_path / "shared"
    path = write_manifest(process_xml("a", "/a/*", mode="pipe-keepalive"), process_xml("b", "/b/*"))
    async with cli(str(path), "--bind", "127.0.0.1:0", "--socket-dir", str(shared)) as run:
        await run.expect(r"a: ready in")
        await run.expect(r"b: ready in")
        assert sorted(p.name for p in shared.iterdir()) == ["a", "b"]
        (shared / "b").unlink()  # another run's, at the same path
        (shared / "b").write_text("another run's")
        run.proc.kill()  # SIGKILL: only the watchdog is left to clean up
        await run.proc.wait()
        assert await eventually(lambda: not (shared / "a").exists(), timeout=10)
    assert (shared / "b").read_text() == "another run's"


async def test_a_clean_stop_leaves_what_the_watchdog_was_told_of_to_the_proxy(
    write_manifest: WriteManifest, socket_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The watchdog kills what it was told of only if the proxy dies: after a clean stop
    (which stopped the run's own), it leaves alone what it cannot tell from a daemon the
    proxy adopted. Run in-process (by a test, an embedder), that is a process of the
    embedder's own, with no mark in a session of its own: it outlives the proxy."""
    caplog.set_level(logging.DEBUG, logger="local_lambdas.orphan_watchdog")
    mark = f"{6500 + secrets.randbelow(500)}.{secrets.randbelow(10**6)}"
    own = await asyncio.create_subprocess_exec("/bin/sleep", "60", env={},
                                               start_new_session=True)  # fmt: skip
    # Started in an earlier clock tick than the child (start times are in ticks, 10 ms): one
    # started in the same tick would count as the child's (adoption.adopted).
    tick = os.sysconf("SC_CLK_TCK")
    started = orphans.started_at(own.pid) or 0
    assert await eventually(lambda: time.clock_gettime(time.CLOCK_BOOTTIME) * tick > started + 1)
    try:
        async with running(write_manifest(wild("helped", "/h/*", "helpers", mark, mode="pipe")),
                           socket_dir) as run:  # fmt: skip
            helpers = await eventually(lambda: len(processes_running(mark)) == 2)
            assert helpers
            told = re.compile(r"pid (\d+), below the proxy with no mark")

            def told_of() -> set[int]:
                return {int(m[1]) for r in caplog.records if (m := told.match(r.getMessage()))}

            assert await eventually(lambda: told_of() >= {own.pid, *processes_running(mark)}, 10)
            assert run.child("helped").pid not in told_of()  # (marked)
            watchdog = run.supervisor._watchdog
            assert watchdog is not None and watchdog._proc is not None
        assert await eventually(lambda: not processes_running(mark))
        assert own.returncode is None and alive(own.pid)  # the embedder's own, still running
        # The watchdog, gone, is no longer counted as one the run started: its pid, reused
        # later by a daemon, would have been taken for one (and the daemon left running).
        assert watchdog._proc.pid not in adoption._ours
    finally:
        own.kill()
        await own.wait()


async def test_a_listener_another_program_opens_for_the_child_is_not_the_childs(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """`docker run -p ${PORT}:80 image`: the child asks a program that is not its descendant
    (dockerd, whose docker-proxy listens) to listen on its $PORT. That listener is not taken
    for the child's, as another local user's would not be (a listener counts only in the
    child's process tree): never ready, and the reason says another program listens."""
    control = Path(f"/tmp/lld-{secrets.token_hex(4)}.sock")  # (short: a socket's path)
    daemon = await asyncio.create_subprocess_exec(
        PYTHON, "-S", str(WILD), "listens-for", str(control), start_new_session=True
    )  # fmt: skip
    try:
        assert await eventually(control.exists)
        extra = "<startup_timeout>1s</startup_timeout><start_retries>1</start_retries>"
        path = write_manifest(wild("dockerish", "/d/*", "asks", str(control), extra=extra))
        async with running(path, socket_dir, wait=False) as run:
            pool, child = run.pool("dockerish"), run.child("dockerish")
            assert await pool.wait_for(lambda: pool.state.value == "FATAL", 10)
            assert child.generation == 0  # never taken for ready
            assert "another program listens on http://127.0.0.1:" in pool.why_not_ready()
    finally:
        daemon.kill()
        await daemon.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(control)


async def test_a_child_that_compiles_before_it_listens_is_waited_for(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """`cargo run`, `go run .`: a compiler works, silently, for longer than <startup_timeout>
    before the server listens. Working (a tenth of a core or more, its descendants' CPU
    counted) is not waiting: it is not stopped as stuck, while one that idles as long is."""
    compile_ = (
        f"{PYTHON} -S -c 'import time\nt = time.time()\nwhile time.time() - t &lt; 3.5: pass'"
    )
    serve = f"{PYTHON} -S {CHILDREN / 'behave.py'}"
    extra = "<startup_timeout>2s</startup_timeout><start_retries>0</start_retries>"
    path = write_manifest(
        f"<process><id>built</id><executable>sh</executable><arg>-c</arg>"
        f"<arg>{compile_} &amp;&amp; exec {serve}</arg><route>/b/*</route>{extra}</process>",
        f"<process><id>idle</id><executable>sh</executable><arg>-c</arg>"
        f"<arg>sleep 3.5 &amp;&amp; exec {serve}</arg><route>/i/*</route>{extra}</process>",
    )
    async with running(path, socket_dir, wait=False) as run:
        built, idle = run.pool("built"), run.pool("idle")
        assert await built.wait_for(lambda: built.state.value == "READY", 15), built.why_not_ready()
        assert run.child("built").restarts == 0 and (run.child("built").ready_seconds or 0) > 3
        # Given up on at 2 s; its stop, under load, may still be under way.
        assert await idle.wait_for(lambda: idle.state.value == "FATAL", 10), idle.state
        assert "not ready within 2s (<startup_timeout>)" in idle.why_not_ready()


def one_start_of_a_second(pid: str, script: str, extra: str = "") -> str:
    """A <process> running `script` (`python -S -c`), given one start of one second."""
    return (
        f"<process><id>{pid}</id><executable>{PYTHON}</executable><arg>-S</arg><arg>-c</arg>"
        f"<arg>{escape(script)}</arg><route>/{pid}/*</route><startup_timeout>1s"
        f"</startup_timeout><start_retries>0</start_retries>{extra}</process>"
    )


async def test_a_child_stopped_for_not_listening_is_told_by_what_it_said_before(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A child that waits instead of serving (nodemon's "app crashed - waiting for file
    changes", under concurrently) is stopped at its <startup_timeout>; the line quoted is the
    last it said before that stop, not what the stop made it print on its way out."""
    script = (
        "import signal, sys, time\n"
        "def bye(*_):\n"
        "    print('[api] nodemon server.js exited with code SIGTERM', flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('[api] [nodemon] app crashed - waiting for file changes', flush=True)\n"
        "time.sleep(60)"
    )
    path = write_manifest(one_start_of_a_second("stuck", script))
    async with running(path, socket_dir, wait=False) as run:
        pool = run.pool("stuck")
        assert await pool.wait_for(lambda: pool.state.value == "FATAL", 15), pool.state
        said = pool.why_not_ready(said=True)
    assert said.endswith(
        "; its last output: [api] [nodemon] app crashed - waiting for file changes"
    ), said


async def test_a_child_waiting_on_a_prompt_is_shown_and_told_by_it(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A prompt ends no line ("Seed it now? [y/N] "): it is shown once the child has
    written nothing more for a moment, as a terminal shows it, and so is the line that says
    why the child never listened."""
    script = (
        "import sys\n"
        "sys.stdout.write('The database is empty. Seed it now? [y/N] ')\n"
        "sys.stdout.flush()\n"
        "sys.stdin.readline()"  # (the proxy holds a child's input open, unwritten)
    )
    path = write_manifest(one_start_of_a_second("asks", script))
    async with running(path, socket_dir, wait=False) as run:
        pool = run.pool("asks")
        asked = "The database is empty. Seed it now? [y/N]"
        lines = run.child("asks").output.lines
        assert await eventually(lambda: any(line.strip() == asked for line in lines), 10)
        assert pool.state.value == "STARTING"  # shown while it waits, not once it ended
        assert await pool.wait_for(lambda: pool.state.value == "FATAL", 15), pool.state
        said = pool.why_not_ready(said=True)
    assert said.endswith(f"; its last output: {asked}"), said


async def test_a_child_of_a_project_not_installed_is_told_to_install_it(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """`npm run dev` in a fresh clone ("sh: 1: vite: not found", exit 127): the reason names
    the missing install and the command that makes it."""
    project = tmp_path / "web"
    project.mkdir()
    (project / "package.json").write_text('{"devDependencies": {"vite": "^5.0.0"}}')
    (project / "pnpm-lock.yaml").write_text("lockfileVersion: '9.0'\n")
    script = "import sys\nprint('sh: 1: vite: not found', flush=True)\nsys.exit(127)"
    path = write_manifest(
        one_start_of_a_second(
            "web",
            script,
            f"<working_dir>{project}</working_dir>"
            "<communication_mode>passthrough</communication_mode>",
        )
    )
    async with running(path, socket_dir, wait=False) as run:
        pool = run.pool("web")
        assert await pool.wait_for(lambda: pool.state.value == "FATAL", 15), pool.state
        said = pool.why_not_ready(said=True)
    assert (
        "exited with code 127; its package.json names dependencies that are not installed "
        f"(no node_modules): run pnpm install in {project}, or give it <build>pnpm "
        "install</build>; its last output: sh: 1: vite: not found"
    ) in said, said


async def test_a_python_child_outside_its_projects_virtualenv_is_told_so(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """A Flask app whose packages are in its project's .venv, run by the python3 that PATH
    finds (local-lambdas from pipx, a shell where the venv was not activated): "No module
    named 'flask'". The reason names the virtual environment and the executable to give."""
    project = tmp_path / "api"
    project.mkdir()
    made = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "venv", "--without-pip", str(project / ".venv")
    )
    assert await made.wait() == 0
    script = "import flask_that_is_not_installed"
    path = write_manifest(
        one_start_of_a_second("api", script, f"<working_dir>{project}</working_dir>")
    )
    async with running(path, socket_dir, wait=False) as run:
        pool = run.pool("api")
        assert await pool.wait_for(lambda: pool.state.value == "FATAL", 15), pool.state
        said = pool.why_not_ready(said=True)
        told = pool.why_not_ready()  # (as a client is told: the child's output is not in it)
    own = project / ".venv" / "bin" / Path(PYTHON).name
    fix = (
        f"it does not run in the virtual environment {project / '.venv'}, which may hold what "
        f"it imports: give <executable>{own}</executable>, or start local-lambdas with it "
        "activated"
    )
    assert f"exited with code 1; {fix}; its last output: ModuleNotFoundError" in said, said
    assert told.endswith(fix), told


async def test_a_prompt_shown_as_it_waits_is_not_followed_by_an_empty_line(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """A line shown before its end (a prompt, a progress bar's last state) is ended by what
    comes next, as in a terminal: no empty line is shown for that end."""
    go = tmp_path / "go"
    script = (
        "import os, sys, time\n"
        "sys.stdout.write('\\rSeed it now? [y/N] ')\n"
        "sys.stdout.flush()\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
        "sys.stdout.write('\\r\\nseeded\\n')\n"
        "sys.stdout.flush()\n"
        "sys.stdin.readline()"
    )
    path = write_manifest(
        f"<process><id>asks</id><executable>{PYTHON}</executable><arg>-S</arg><arg>-c</arg>"
        f"<arg>{escape(script)}</arg><route>/a/*</route><startup_timeout>60s</startup_timeout>"
        "</process>"
    )
    async with running(path, socket_dir, wait=False) as run:
        lines = run.child("asks").output.lines
        assert await eventually(lambda: any("Seed it now?" in line for line in lines), 10)
        go.touch()
        assert await eventually(lambda: any("seeded" in line for line in lines), 10)
        shown = [line.strip() for line in lines]
    assert shown[-2:] == ["Seed it now? [y/N]", "seeded"], shown


async def test_a_wrapper_that_backgrounds_its_server_and_exits_is_told_so(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """`server & exit 0` looks like a server that ended: what it left running is stopped
    with it, and the exit's reason names it and the fix."""
    mark = f"{4500 + secrets.randbelow(500)}.{secrets.randbelow(10**6)}"
    daemonizing = (
        "<process><id>bg</id><executable>sh</executable><arg>-c</arg>"
        f"<arg>setsid {PYTHON} -S {WILD} daemon {mark} &amp; exit 0</arg>"
        "<route>/bg/*</route><restart>on-failure</restart></process>"
    )
    async with running(write_manifest(daemonizing), socket_dir, wait=False) as run:
        child = run.child("bg")
        assert await run.pool("bg").wait_for(lambda: child.state.value == "EXITED", 10)
        assert re.match(
            r"exited with code 0; it left pid \d+ \(.+\) running, stopped with it: keep the "
            r"server in the foreground \(no '&', setsid or daemon mode",
            child.reason,
        )
        assert not processes_running(mark)


async def test_a_daemon_that_clears_its_environment_is_found_and_stopped(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """nginx without `daemon off;`, or redis-server --daemonize yes: the server forks itself
    off into a session of its own, with workers, clears its environment (so no mark finds
    it), and the process started exits 0. What the proxy adopted since is taken to be the
    child's: named in the exit's reason, with the fix, and stopped with its workers."""
    mark = f"{5000 + secrets.randbelow(500)}.{secrets.randbelow(10**6)}"
    path = write_manifest(
        wild("nginxish", "/n/*", "clears-env-daemon", mark, extra="<restart>on-failure</restart>")
    )
    async with running(path, socket_dir, wait=False) as run:
        daemon = await daemon_named(run, "nginxish", r".+clears-env-daemon")
        assert await eventually(lambda: not processes_running(mark))
        # Its group, itself and its worker, reaped.
        assert await eventually(lambda: not adopted_zombies(daemon))


@pytest.mark.skipif(
    shutil.which("nginx") is None,
    reason="nginx is not on PATH (apt-get install nginx; Debian puts it in /usr/sbin)",
)
async def test_nginx_in_its_daemon_mode_is_named_and_stopped(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """Real nginx without `daemon off;`: its first process forks the master off and exits
    within a millisecond, before the proxy had read when it started, and what it forked off
    was then not found: restarted with no word of it, the master left running after the
    proxy stopped."""
    port = fixed_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}/body; "
        f"proxy_temp_path {tmp_path}/proxy; fastcgi_temp_path {tmp_path}/fcgi; "
        f"uwsgi_temp_path {tmp_path}/uwsgi; scgi_temp_path {tmp_path}/scgi;\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 ok; }} }} }}\n"
    )
    path = write_manifest(
        "<process><id>ng</id><executable>nginx</executable>"
        f"<arg>-e</arg><arg>{tmp_path}/error.log</arg><arg>-p</arg><arg>{tmp_path}</arg>"
        f"<arg>-c</arg><arg>{conf}</arg><route>/*</route><port>{port}</port>"
        "<communication_mode>passthrough</communication_mode><restart>on-failure</restart>"
        "</process>"
    )
    try:
        async with running(path, socket_dir, wait=False) as run:
            # (Its title, or its command line if read before nginx set its title.)
            master = await daemon_named(run, "ng", r"(?:nginx: master process|\S*nginx -e)")
        assert await gone(master)
    finally:  # what a failure left behind
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((tmp_path / "nginx.pid").read_text()), signal.SIGKILL)


async def test_what_a_child_orphans_as_it_runs_is_reaped_as_it_runs(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """A child that leaves short-lived processes behind as it runs (a script's `(cmd &)`, a
    wrapper's job, a browser's crash handler): the proxy, their subreaper, reaps each as it
    exits. They stayed zombies for the rest of the run (65 in 7 s from a loop of them),
    counted against the user's process limit."""
    done = tmp_path / "orphaned"
    script = f"for i in $(seq 20); do (sleep 0.01 &amp;); done; touch {done}; exec sleep 60"
    path = write_manifest(
        "<process><id>orph</id><executable>sh</executable><arg>-c</arg>"
        f"<arg>{script}</arg><route>/o/*</route></process>"
    )
    async with running(path, socket_dir, wait=False) as run:
        assert await eventually(done.exists)
        group = run.child("orph").pid  # (its own group: the orphans are in it)
        assert await eventually(lambda: not adopted_zombies(group)), adopted_zombies(group)


@pytest.mark.skipif(not _compat.IS_LINUX, reason="adoption finds daemons in /proc")
async def test_a_process_still_starting_is_never_taken_for_a_siblings_stray() -> None:
    """A stopping child takes the unmarked processes adopted since it started for daemons it
    left (adoption.adopted). asyncio hands over a new process that may still be inside its
    execve, its environment, so its mark, not yet readable: a sibling stopping then killed
    it and reaped it, and a reload's new process "exited with code 255" (seen under -n 12).
    Now what began since a start under way, showing no environment, is left out until the
    start has its process; what began before it, or shows an environment without the mark
    (a daemon's), is still found. (Here the test's own processes, unmarked in sessions of
    their own, stand for each: the window inside an execve cannot be held open.)"""
    since = processes.ticks_now()
    spawn = ("/bin/sleep", "60")
    before = await asyncio.create_subprocess_exec(*spawn, env={}, start_new_session=True)
    began = orphans.started_at(before.pid) or 0
    assert await eventually(lambda: (processes.ticks_now() or 0) > began)  # a later tick
    started: list[asyncio.subprocess.Process] = [before]
    try:
        with adoption.starting(processes.ticks_now()):
            for env in ({}, {"TZ": "UTC"}):  # as one looks inside its execve; a daemon
                started.append(
                    await asyncio.create_subprocess_exec(*spawn, env=env, start_new_session=True)
                )
            # The daemon's environment readable, as a daemon's is once its exec is over (on a
            # busy machine it may not be yet as asyncio hands the process over).
            daemon = Path(f"/proc/{started[2].pid}/environ")
            assert await eventually(lambda: daemon.read_bytes() != b"")
            assert sorted(adoption.adopted(since)) == sorted([before.pid, started[2].pid])
        # Its start over (unmarked and never `started`: taken for a stray, as it should be).
        assert sorted(adoption.adopted(since)) == sorted(p.pid for p in started)
    finally:
        for proc in started:
            proc.kill()
            await proc.wait()


def test_the_kernel_tells_who_listens_as_the_tables_do(tmp_path: Path) -> None:
    """Readiness asks the kernel over netlink (sockdiag) what the /proc tables would say,
    listeners alone: IPv4 and IPv6, wildcard and loopback, Unix paths; an accepted
    connection on the same port, or a Unix socket bound but not listening, is none. And
    where a process listens (held_listeners), as a child's not-ready reason names it."""
    with contextlib.ExitStack() as opened:

        def listening(family: int, address: tuple[str, int]) -> socket.socket:
            sock = opened.enter_context(socket.socket(family))
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen()
            return sock

        v4 = listening(socket.AF_INET, ("127.0.0.1", 0))
        port = v4.getsockname()[1]
        also = [listening(socket.AF_INET6, ("::1", port)), listening(socket.AF_INET6, ("::", 0))]
        client = opened.enter_context(socket.create_connection(("127.0.0.1", port)))
        accepted = opened.enter_context(v4.accept()[0])
        assert client and accepted

        def on_port(
            every: list[tuple[str, int, int]] | None, at: int
        ) -> list[tuple[str, int]] | None:
            return None if every is None else sorted((h, i) for h, p, i in every if p == at)

        for sock in (v4, *also):
            at = sock.getsockname()[1]
            told = on_port(sockdiag.every_tcp_listener(), at)
            assert told is not None and told == on_port(listeners._tcp_table_listeners(), at)
        assert on_port(sockdiag.every_tcp_listener(), port) == sorted(
            [("0100007F", os.fstat(v4.fileno()).st_ino),
             ("0" * 24 + "01000000", os.fstat(also[0].fileno()).st_ino)]
        )  # fmt: skip
        unix = opened.enter_context(socket.socket(socket.AF_UNIX))
        unix.bind(str(tmp_path / "listens"))
        unix.listen()
        opened.enter_context(socket.socket(socket.AF_UNIX)).bind(str(tmp_path / "bound"))
        for name, expected in (("listens", [os.fstat(unix.fileno()).st_ino]), ("bound", [])):
            path = os.fsencode(tmp_path / name)
            for named in (sockdiag.every_unix_listener(), listeners._unix_table_listeners()):
                assert [inode for at, inode in named or [] if at == path] == expected
        # Where this process listens, as the reason for a child that is not ready says it.
        held = listeners.held_listeners([os.getpid()])
        v6_any = also[1].getsockname()[1]
        assert {f"127.0.0.1:{port}", f"[::1]:{port}", f"[::]:{v6_any}",
                str(tmp_path / "listens")} <= set(held)  # fmt: skip
        assert str(tmp_path / "bound") not in held


@pytest.mark.parametrize("mode", ["passthrough", "pipe"])
async def test_a_server_on_another_port_is_told_about_it(
    write_manifest: WriteManifest, socket_dir: Path, mode: str
) -> None:
    """A dev server that ignores $PORT, or a web server put in a pipe mode: the reason says
    where the kernel finds it listening, and what to change."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        other = probe.getsockname()[1]
    extra = "<startup_timeout>1s</startup_timeout><start_retries>1</start_retries>"
    path = write_manifest(wild("dev", "/dev/*", "other-port", str(other), mode=mode, extra=extra))
    async with running(path, socket_dir, wait=False) as run:
        pool = run.pool("dev")
        assert await pool.wait_for(lambda: pool.instances[0].state.value == "FATAL", 20)
        reason = pool.instances[0].reason
        assert reason.startswith("gave up after 2 failed starts in a row (<start_retries>: 1): ")
        assert "<startup_timeout>" in reason
        if mode == "pipe":
            assert f"it listens on 127.0.0.1:{other} instead: " in reason
            assert "<communication_mode>passthrough</communication_mode>" in reason
        else:  # as it printed it, and the kernel says it listens there
            assert f"it printed port {other}, which is not its $PORT" in reason
            assert f"<port>{other}</port>" in reason
        # Stopped with SIGTERM first, as any stop: the child said so.
        assert "got SIGTERM" in pool.instances[0].output.lines


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's tables of listeners: Linux")
@pytest.mark.parametrize("mode", ["passthrough", "pipe"])
async def test_a_server_surely_elsewhere_is_told_about_while_it_starts(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, mode: str,
) -> None:  # fmt: skip
    """A dev server at the port it printed, or a pipe child at a socket of its pipe's name in
    a folder written into it (the earlier tool's /tmp/<pipe_name>), will not move: said with
    the fix while it is still waited for, not only at its <startup_timeout> (10 s, then again
    at each restart)."""
    if mode == "pipe":
        where = str(tmp_path / "dev")  # the pipe's name (its id), in another folder
        says = f"it listens on {where} instead: a pipe child listens at $PIPE_ADDRESS, or run "
        says += f"the proxy with --socket-dir {tmp_path} to put it there"
        child = wild("dev", "/dev/*", "fixed-socket", where, mode=mode)
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            where = str(probe.getsockname()[1])
        says = f"it printed port {where}, which is not its $PORT"
        child = wild("dev", "/dev/*", "other-port", where, mode=mode)
    caplog.set_level(logging.WARNING, logger="local_lambdas")
    async with running(write_manifest(child), socket_dir, wait=False) as run:
        assert await eventually(lambda: says in caplog.text, 8), caplog.text
        assert run.child("dev").state.value == "STARTING"  # (its <startup_timeout>: 10 s)
        assert "nothing listens on " in caplog.text


async def test_a_server_that_stops_listening_while_it_runs_is_waited_for(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """A dev server reloading itself (Django's runserver, nodemon) closes its port while its
    process runs on: a request then, a POST too (it never reached the server), waits for it
    to listen again, and is answered; meanwhile /_/ready says why, with no restart."""
    flag = tmp_path / "listen-again"
    path = write_manifest(wild("dev", "/dev/*", "reloading", str(flag)))
    async with running(path, socket_dir) as run:
        pool, child = run.pool("dev"), run.child("dev")
        async with run.http.get(run.url + "/dev/reload") as reply:
            assert reply.status == 200
        assert await eventually(lambda: "reloading" in child.output.lines)  # (output: polled)
        post = asyncio.create_task(run.http.post(run.url + "/dev/echo", data=b"kept"))
        assert await pool.wait_for(lambda: child.state.value == "STARTING", 10)
        async with run.http.get(run.url + "/_/ready") as reply:
            assert reply.status == 503
            reason = (await reply.json())["not_ready"]["dev"]
        assert reason.startswith(f"STARTING: its process (pid {child.pid}) runs but stopped ")
        assert reason.endswith(f"listening on http://{child.link.address}; waiting for it to "
                               "listen again; its last output: reloading")  # fmt: skip
        assert not post.done()
        flag.touch()
        async with await post as reply:
            assert (reply.status, await reply.read()) == (200, b"kept")
        assert (child.state.value, child.generation, child.restarts) == ("READY", 2, 0)
        # Again, with a body that streams as it comes (chunked, over 1 MiB: aiohttp's side).
        async with run.http.get(run.url + "/dev/reload") as reply:
            assert reply.status == 200
        assert await eventually(lambda: list(child.output.lines).count("reloading") == 2)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b"x" * 512 * 1024

        post = asyncio.create_task(run.http.post(run.url + "/dev/echo", data=chunks()))
        assert await pool.wait_for(lambda: child.state.value == "STARTING", 10)
        flag.touch()
        async with await post as reply:
            assert (reply.status, len(await reply.read())) == (200, 2 << 20)
        assert (child.generation, child.restarts) == (3, 0)


async def test_a_pipe_whose_socket_file_was_removed_says_so_and_the_way_out(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A child listens on, but its socket file was removed (a temp cleaner, a script's
    `rm -rf` of the folder): no new connection can reach it there, so a request's 502 says
    what happened and how to have the child listen anew, not only the kernel's 'No such
    file' (kept-alive connections serve on while they last). The restart works even with
    the whole folder gone: it is made again, private as at the start."""
    path = write_manifest(process_xml("svc", "/svc/*"))
    async with running(path, socket_dir) as run:
        async with run.http.get(run.url + "/svc/a") as reply:
            assert reply.status == 200
        shutil.rmtree(socket_dir)
        async with run.http.get(run.url + "/svc/b", headers={"Connection": "close"}) as reply:
            assert reply.status == 502
            error = (await reply.json())["error"]
        async with run.http.post(run.url + "/_/processes/svc/restart") as reply:
            assert reply.status == 200, await reply.text()
        async with run.http.get(run.url + "/svc/c") as reply:
            assert reply.status == 200
        assert os.stat(socket_dir).st_mode & 0o777 == 0o700
    assert error == (
        f"cannot connect to {socket_dir / 'svc'}: its socket file is gone (removed while the "
        "child ran: it listens where nothing can reach it); `local-lambdas restart svc` "
        "starts it anew"
    )


async def test_a_server_not_listening_past_the_queue_timeout_is_answered_at_once(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """A reloader waiting for a broken file's fix may not listen for minutes: once it has not
    for longer than <queue_timeout>, a request gets its 503 at once, not after waiting."""
    extra = "<queue_timeout>0.5s</queue_timeout>"
    path = write_manifest(wild("dev", "/dev/*", "reloading", str(tmp_path / "flag"), extra=extra))
    async with running(path, socket_dir) as run:
        child = run.child("dev")
        async with run.http.get(run.url + "/dev/reload") as reply:
            assert reply.status == 200
        assert await eventually(lambda: "reloading" in child.output.lines)
        errors = []
        for _ in range(2):  # the first finds it out, and waits; the second comes after
            async with run.http.get(run.url + "/dev/x") as reply:
                errors.append((reply.status, (await reply.json())["error"]))
        assert child.state.value == "STARTING" and child.restarts == 0
    (first_status, first), (second_status, second) = errors
    assert first_status == second_status == 503
    assert first.endswith("waiting for it to listen again; waited 0.5s (<queue_timeout>)")
    assert second.endswith("waiting for it to listen again"), second


async def test_another_programs_listener_is_not_the_child(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        extra = f"<port>{port}</port><startup_timeout>0.5s</startup_timeout>"
        path = write_manifest(wild("late", "/late/*", "sleep", extra=extra))
        async with running(path, socket_dir, wait=False) as run:
            child = run.child("late")
            assert await run.pool("late").wait_for(lambda: child.restarts >= 1, 10)
            assert child.generation == 0  # never taken for ready
            async with run.http.get(run.url + "/_/status") as reply:
                status = (await reply.json())["processes"]["late"]
            # Named before the child starts: the child is never run on a port it cannot have.
            reason = status["instances"][0]["reason"]
            assert f"its <port> {port} is in use: pid {os.getpid()} (" in reason


@pytest.mark.skipif(os.geteuid() != 0, reason="makes a socket another user's: needs root")
async def test_a_socket_path_of_another_user_is_refused(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    shared = Path("/tmp") / f"llt-shared-{secrets.token_hex(3)}"
    shared.mkdir()
    try:
        theirs = socket.socket(socket.AF_UNIX)
        theirs.bind(str(shared / "svc_pipe"))
        theirs.listen()
        os.chown(shared / "svc_pipe", 65534, 65534)  # nobody's, as another user's would be
        extra = "<pipe_name>svc_pipe</pipe_name><start_retries>1</start_retries>"
        path = write_manifest(process_xml("svc", "/api/*", extra=extra))
        async with running(path, shared, wait=False, own_socket_dir=False) as run:
            pool = run.pool("svc")
            assert await pool.wait_for(lambda: pool.instances[0].state.value == "FATAL", 10)
            async with run.http.get(run.url + "/_/status") as reply:
                status = (await reply.json())["processes"]["svc"]["instances"][0]
            assert "belongs to another user (uid 65534)" in status["reason"]
        assert (shared / "svc_pipe").is_socket()  # left to its owner
        theirs.close()
    finally:
        shutil.rmtree(shared, ignore_errors=True)


async def test_a_second_proxy_on_the_same_socket_dir_takes_nothing_from_the_first(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """--socket-dir shared by two runs (the earlier tool's /tmp layout, a proxy left in
    another terminal): the second finds the first's child listening at the path and says
    so; it never removes that socket, at its start or at its stop, so the first's requests
    keep reaching the first's child."""
    shared = tmp_path / "shared"
    path = write_manifest(process_xml("svc", "/api/*", extra="<start_retries>1</start_retries>"))
    async with running(path, shared, own_socket_dir=False) as first:
        pid = first.child("svc").pid
        async with running(path, shared, wait=False, own_socket_dir=False) as second:
            pool = second.pool("svc")
            assert await pool.wait_for(lambda: pool.instances[0].state.value == "FATAL", 10)
            reason = pool.instances[0].reason
            assert f"{shared / 'svc'} is in use: pid {pid} (" in reason, reason
            assert "another local-lambdas with the same --socket-dir?" in reason
        async with first.http.get(first.url + "/api/x") as reply:
            assert reply.status == 200 and (await reply.json())["pid"] == pid


async def test_a_flooding_child_loses_lines_not_the_proxy(write_manifest: WriteManifest) -> None:
    path = write_manifest(wild("flood", "/flood/*", "flood"), process_xml("quiet", "/quiet/*"))
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        await run.expect(r"quiet: ready in")
        # From here nobody reads the proxy's output: its pipe fills, as a stuck terminal's
        # would. Requests to the quiet route are answered all the same.
        import aiohttp

        async with aiohttp.ClientSession() as http:

            async def dropping() -> bool:
                async with http.get(url + "/quiet/x") as reply:
                    assert reply.status == 200
                async with http.get(url + "/_/status") as reply:
                    status = await reply.json()
                return bool(status["processes"]["flood"]["instances"][0]["output_dropped"])

            assert await eventually(dropping)
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    assert any("lines dropped: flood printed faster than they could be shown" in line
               for line in run.lines)  # fmt: skip


async def test_every_request_carries_the_runs_token(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(
        process_xml("pipe", "/pipe/*"),
        process_xml("helper", "/helper/*", script="helper_child.py"),
    )
    async with running(path, socket_dir) as run:
        token = run.supervisor.token
        async with run.http.get(run.url + "/pipe/x") as reply:
            seen = await reply.json()
        assert seen["token"] == token and len(token) >= 24
        # A program that is not the proxy, at the helper child's socket, is refused.
        reader, writer = await asyncio.open_unix_connection(run.child("helper").pipe)
        request = {"method": "GET", "uri": "/helper/x", "headers": [], "body": ""}
        writer.write(json.dumps(request).encode())
        writer.write_eof()
        answer = json.loads(await reader.read())
        writer.close()
        assert answer["status"] == 403
        assert base64.b64decode(answer["body"]) == b"not from local-lambdas\n"
        async with run.http.get(run.url + "/helper/x") as reply:
            assert reply.status == 201


def test_the_helper_refuses_without_the_token_only_when_one_is_set() -> None:
    from local_lambdas import child

    def handler(request: child.Request) -> child.Response:
        return child.Response(200, {}, b"ok")

    raw = json.dumps({"method": "GET", "uri": "/", "headers": [], "body": ""}).encode()
    saved = os.environ.pop("LOCAL_LAMBDAS_TOKEN", None)
    try:
        assert json.loads(child._answer(handler, raw))["status"] == 200
        os.environ["LOCAL_LAMBDAS_TOKEN"] = "s3cret"
        assert json.loads(child._answer(handler, raw))["status"] == 403
        signed = json.dumps({"method": "GET", "uri": "/", "token": "s3cret"}).encode()
        assert json.loads(child._answer(handler, signed))["status"] == 200
    finally:
        os.environ.pop("LOCAL_LAMBDAS_TOKEN", None)
        if saved is not None:
            os.environ["LOCAL_LAMBDAS_TOKEN"] = saved
    assert sys.modules["local_lambdas.child"] is child


_LIMITS = """
import asyncio, resource, sys
from local_lambdas._compat import limits, processes
SHOW = "import resource; print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
limits.raise_open_files_limit()
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
async def child():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SHOW,
        stdout=asyncio.subprocess.PIPE, **processes.spawn_options())
    print((await proc.communicate())[0].decode().strip())
asyncio.run(child())
"""


@pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_NOFILE)[1] <= 256, reason="a hard limit of 256 or less"
)
def test_the_open_files_limit_is_raised_for_the_proxy_and_kept_for_its_children() -> None:
    """A soft limit of 256 (1024 on many desktops) would refuse clients past it; the proxy
    raises it to the hard limit, and its children start with the one they would have had."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    raised = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    done = subprocess.run([PYTHON, "-c", _LIMITS], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(raised), "256"]


@pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_NOFILE)[1] <= 256, reason="a hard limit of 256 or less"
)
def test_the_command_run_starts_keeps_its_open_files_limit(write_manifest: WriteManifest) -> None:
    """`local-lambdas run ... -- CMD`: CMD is the user's, started with the limit it would have
    had, not the proxy's raised one."""
    path = write_manifest(process_xml("api", "/api/*"))
    show = "import resource; print('limit', resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit("
        "resource.RLIMIT_NOFILE)[1]))\n"
        "from local_lambdas.cli import main\n"
        f"sys.exit(main(['run', {str(path)!r}, '--bind', '127.0.0.1:0', '-q', '--', "
        f"{PYTHON!r}, '-c', {show!r}]))"
    )
    done = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "limit 256" in done.stdout, done.stdout


async def test_a_start_out_of_open_files_says_so(write_manifest: WriteManifest) -> None:
    """A proxy at its limit on open files (a hard limit it cannot raise: each child takes
    three, each client one) cannot start one more child: uvloop said "Unknown error -1" of
    it. The start says the limit and the fix; the children it could start serve on, and
    all stop with it."""
    mark = f"{40 + secrets.randbelow(20)}.{secrets.randbelow(10**6)}"  # (seconds: a sleep's)
    workers = "".join(
        f"<process><id>w{n}</id><executable>sleep</executable><arg>{mark}</arg>"
        "<communication_mode>none</communication_mode></process>"
        for n in range(24)
    )
    path = write_manifest(workers)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    async with cli(str(path), "--bind", "127.0.0.1:0", preexec=limited) as run:
        said = await run.expect(r"w\d+: cannot run sleep: (.*); restarting in")
        assert re.fullmatch(
            r"out of open files: the proxy holds \d+ of its limit of 64 \(three a child, one "
            r"a client\); raise the limit \(ulimit -n, a container's nofile\)",
            said.group(1),
        ), said.group(1)
        # Those it could start (each is the proxy's fork until its exec: under load, for a while).
        assert await eventually(lambda: bool(processes_running(mark)))
        run.proc.send_signal(signal.SIGTERM)
        await run.finish()
    assert await eventually(lambda: not processes_running(mark))


@pytest.mark.parametrize("fast_lane", [True, False], ids=["fast-lane", "aiohttp"])
async def test_a_child_that_never_accepts_is_504_at_its_timeout(
    write_manifest: WriteManifest, socket_dir: Path, fast_lane: bool
) -> None:
    """A pass-through child stopped at a breakpoint: once its backlog is full, a connect
    waits for the kernel's retries (two minutes); <timeout> bounds it, as it bounds the
    wait for the answer."""
    path = write_manifest(wild("stuck", "/s/*", "stuck", extra="<timeout>1s</timeout>"))
    async with running(path, socket_dir, fast_lane=fast_lane) as run:

        async def get() -> int:
            async with run.http.get(run.url + "/s/x") as reply:
                return reply.status

        async with _compat.timeout(10):
            statuses = await asyncio.gather(*(get() for _ in range(8)))
        assert statuses == [504] * 8


def test_the_watchdog_counts_a_zombie_group_as_gone() -> None:
    """A killed child stays a zombie until init reaps it, which some inits do lazily (this
    machine's, a VM's, a container's): the watchdog must not wait its grace period for it."""
    running = subprocess.Popen(["sleep", "30"], start_new_session=True)
    ended = subprocess.Popen(["true"], start_new_session=True)
    try:
        os.waitid(os.P_PID, ended.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
        assert orphans.group_running(running.pid) and not orphans.group_running(ended.pid)
    finally:
        running.kill()
        running.wait()
        ended.wait()
    assert not orphans.group_running(running.pid)


@pytest.mark.skipif(not _compat.IS_LINUX, reason="reads /proc")
def test_what_a_child_left_running_is_named_by_its_command_zombies_apart() -> None:
    """What an exit's reason lists as left running (processes.command_lines): each process
    with its command line; one that has exited (a zombie) or is gone runs no longer."""
    running = subprocess.Popen(["sleep", "30"])
    ended = subprocess.Popen(["true"])
    # Quoted in one-line messages: the arguments' line breaks and escapes are spaces there.
    script = subprocess.Popen([sys.executable, "-c", "import time\n\x1b[2J\ttime.sleep(30)"])
    try:
        os.waitid(os.P_PID, ended.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
        found = asyncio.run(processes.command_lines([running.pid, ended.pid, 2**22 + 1]))
        assert found == {running.pid: "sleep 30"}
        lines = asyncio.run(processes.command_lines([script.pid]))
        assert lines == {script.pid: f"{sys.executable} -c import time [2J time.sleep(30)"}
    finally:
        for process in (running, script):
            process.kill()
            process.wait()
        ended.wait()


@pytest.mark.skipif(shutil.which("perl") is None, reason="perl is not installed")
async def test_a_child_with_wrapped_base64_and_number_headers_is_understood(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """Perl's encode_base64 wraps its lines unless told not to, and JSON encoders write a
    length as a number: what a first try sends is answered, not a 502."""
    path = write_manifest(
        f"<process><id>perl</id><executable>perl</executable>"
        f"<arg>{CHILDREN / 'perl_as_found.pl'}</arg><route>/perl/*</route></process>"
    )
    body = bytes(range(256)) * 2
    async with running(path, socket_dir) as run:
        async with run.http.post(run.url + "/perl/x", data=body) as reply:
            assert reply.status == 200, await reply.text()
            assert await reply.read() == body * 3  # 2,048 base64 characters in 27 lines
            assert reply.headers["X-Length"] == str(len(body) * 3)


async def test_nearing_the_open_files_limit_is_said(write_manifest: WriteManifest) -> None:
    """Past its limit of open files uvloop closes new clients unanswered and says nothing:
    the proxy says, once, when the limit comes near (here a limit of 100)."""
    path = write_manifest(process_xml("svc", "/api/*"))
    command = f"ulimit -n 100; exec {PYTHON} -m local_lambdas {path} --bind 127.0.0.1:0"
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    run = Cli(proc)
    clients: list[socket.socket] = []
    try:
        url = (await run.expect(r"listening on http://(\S+)")).group(1)
        host, port = url.rsplit(":", 1)
        await run.expect(r"svc: ready in")
        while len(clients) < 95:
            clients.append(socket.create_connection((host, int(port)), timeout=5))
        said = await run.expect(r"(\d+) of the 100 files this process may open are open")
        assert 90 <= int(said.group(1)) <= 100
        assert "past the limit new clients are closed unanswered or wait; raise it" in run.lines[-1]
    finally:
        for client in clients:
            client.close()
        proc.kill()
        await proc.wait()

"""The whole program as users run it: start, serve, stop on a signal, leave nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from local_lambdas import _compat, orphans
from local_lambdas.config import Settings
from local_lambdas.lifecycle import started
from local_lambdas.manifest import load
from local_lambdas.orphans import SPAWN_MARK
from local_lambdas.output import Printer
from tests import helpers
from tests.helpers import (
    CHILDREN,
    NEEDS_UVLOOP,
    PYTHON,
    UVLOOP,
    WAIT,
    WriteManifest,
    alive,
    cli,
    eventually,
    fixed_port,
    gone,
    loaded_by,
    process_xml,
    processes_running,
    run_main,
    running,
    worker_xml,
)


def wrapped_manifest(write_manifest: WriteManifest, pid_file: Path) -> Path:
    """A shell wrapper whose own child serves /w/*, and a plain http child on /p/*."""
    return write_manifest(
        process_xml(
            "wrapped",
            "/w/*",
            script="wrapper.sh",
            extra=f'<env name="GRANDCHILD_PID_FILE">{pid_file}</env>',
        ).replace(
            f"<executable>{sys.executable}</executable><arg>{CHILDREN / 'wrapper.sh'}</arg>",
            f"<executable>{CHILDREN / 'wrapper.sh'}</executable>",
        ),
        process_xml("plain", "/p/*", mode="http"),
    )


async def test_a_line_never_said_fails_with_what_the_run_said(
    write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `cli` helper's failures show the proxy's output: a line that never comes was a
    bare TimeoutError, the lines read dropped."""
    path = write_manifest(process_xml("api", "/api/*", mode="pipe-keepalive"))
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        await run.expect(r"^serving on ")
        monkeypatch.setattr(helpers, "WAIT", 1)  # (once it serves: the rest is quiet)
        with pytest.raises(AssertionError) as failed:
            await run.expect(r"a line no run says")
        assert "no 'a line no run says' within 1 s; it said:" in str(failed.value)
        assert "listening on http://127.0.0.1:" in str(failed.value)
        monkeypatch.setattr(helpers, "WAIT", WAIT)
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfds on this system")
async def test_children_take_no_thread_each_under_asyncio(write_manifest: WriteManifest) -> None:
    """On Python 3.10 and 3.11 asyncio waits for each child's exit in a thread of its own:
    threads that a limit on processes counts (ulimit -u, a container's pids.max), refused
    once it is reached, after the child has started, which then ran unwatched. A pidfd
    each tells of their exits, as Python 3.12's asyncio does by itself."""
    path = write_manifest(*(worker_xml(f"w{n}", "-c", "import time; time.sleep(60)")
                            for n in range(8)))  # fmt: skip
    async with cli(str(path), "--bind", "127.0.0.1:0", "--event-loop", "asyncio") as run:
        for _ in range(8):
            await run.expect(r"w\d: ready in")
        threads = len(os.listdir(f"/proc/{run.proc.pid}/task"))
        assert threads < 8, threads
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0


@pytest.mark.parametrize("loop", ["asyncio", UVLOOP])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_stop_leaves_nothing_behind(
    write_manifest: WriteManifest, tmp_path: Path, sig: signal.Signals, loop: str
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    path = wrapped_manifest(write_manifest, pid_file)
    async with cli(str(path), "--bind", "127.0.0.1:0", "--event-loop", loop) as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        socket_dir = Path(
            (await run.expect(r"wrapped: ready .*pid (\d+), (\S+)\)")).group(2)
        ).parent
        plain_pid = int((await run.expect(r"plain: ready .*\(pid (\d+),")).group(1))
        wrapper_pid = int((await run.expect(r"wrapped: ready .*\(pid (\d+),")).group(1))
        async with aiohttp.ClientSession() as http, http.get(url + "/w/x") as reply:
            assert reply.status == 200
            grandchild = int(pid_file.read_text())
            assert (await reply.json())["pid"] == grandchild
        assert oct(socket_dir.stat().st_mode & 0o777) == "0o700"
        run.proc.send_signal(sig)
        assert await run.finish() == 0, "\n".join(run.lines)
    assert run.lines[-1].endswith("stopped")
    for pid in (plain_pid, wrapper_pid, grandchild):
        assert await gone(pid), pid
    assert not socket_dir.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="no socket directory for named pipes")
async def test_a_socket_dir_made_for_the_run_goes_with_it(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """--socket-dir: the sockets go at the stop, and the folders the run made for them
    (when nothing else was put in them); a folder that was there stays."""
    path = write_manifest(process_xml("svc", "/api/*"))
    made, there = tmp_path / "made here" / "ü", tmp_path / "there"
    there.mkdir()
    for directory in (made, there):
        async with running(path, directory, own_socket_dir=False) as run:
            async with run.http.get(run.url + "/api/x") as reply:
                assert reply.status == 200
            assert [p.name for p in directory.iterdir()] == ["svc"]
    assert not (tmp_path / "made here").exists()
    assert there.is_dir() and not any(there.iterdir())


@pytest.mark.skipif(sys.platform == "win32", reason="no socket directory for named pipes")
async def test_a_long_temp_dir_does_not_make_socket_paths_too_long(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """A $TMPDIR too long to hold a socket path (macOS's /var/folders/xx/.../T/, a CI
    runner's) is passed over for /tmp: the run starts, not refused for a path it chose."""
    path = write_manifest(process_xml("svc", "/api/*"))
    long_temp = tmp_path / ("t" * (110 - len(os.fsencode(tmp_path))))
    long_temp.mkdir()
    call = "import os, urllib.request as u; u.urlopen(os.environ['LOCAL_LAMBDAS_URL'] + '/api/x')"
    added = {"TMPDIR": str(long_temp), "XDG_RUNTIME_DIR": ""}
    async with cli("run", str(path), "--", sys.executable, "-c", call, env=added) as run:
        assert await run.finish() == 0, "\n".join(run.lines)
    said = "ready once it listens on /tmp/local-lambdas-"
    assert any(said in line for line in run.lines), run.lines


@NEEDS_UVLOOP
@pytest.mark.parametrize("lane", [(), ("--no-fast-lane",)], ids=["fast-lane", "aiohttp"])
async def test_every_mode_serves_on_uvloop(
    write_manifest: WriteManifest, lane: tuple[str, ...]
) -> None:
    envelope = ("pipe", "pipe-keepalive", "http")
    path = write_manifest(
        *(process_xml(mode, f"/{mode}/*", mode=mode) for mode in envelope),
        process_xml("web", ["/echo/*", "/forever"], mode="passthrough", script="web_child.py"),
    )
    async with cli(str(path), "--bind", "127.0.0.1:0", "--event-loop", "uvloop", *lane) as run:
        url = (await run.expect(r"listening on (http://\S+) \(event loop: uvloop\)")).group(1)
        pids = {}
        for pid in (*envelope, "web"):
            pids[pid] = int((await run.expect(rf"{pid}: ready .*\(pid (\d+),")).group(1))
        async with aiohttp.ClientSession() as http:
            for prefix in (*envelope, "echo"):
                for _ in range(3):  # keep-alive connections are reused
                    async with http.post(f"{url}/{prefix}/x", data=b"payload") as reply:
                        assert reply.status == 200, (prefix, await reply.text())
            # A pass-through child killed mid-download ends the client's read with an error
            # at once (under uvloop it once left the client waiting for ever).
            with pytest.raises(aiohttp.ClientPayloadError):
                async with _compat.timeout(10), http.get(f"{url}/forever") as reply:
                    assert reply.status == 200
                    await reply.content.readline()
                    os.kill(pids["web"], signal.SIGKILL)
                    async for _ in reply.content:
                        pass
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0, "\n".join(run.lines)


def test_uvloop_asked_for_but_missing_is_a_usage_error(write_manifest: WriteManifest) -> None:
    path = write_manifest(process_xml("svc", "/api/*"))
    # A Python on which `import uvloop` fails, as on a machine without it.
    program = (
        "import sys; sys.modules['uvloop'] = None; from local_lambdas.cli import main; "
        f"sys.exit(main(['check', '--boot', '--event-loop', 'uvloop', {str(path)!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 2
    assert "uvloop is not installed; pip install 'local-lambdas[fast]'" in done.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="Windows reads its certificate stores too")
@pytest.mark.parametrize("told", [None, "/etc/ssl/certs/ca-certificates.crt"])
def test_aiohttps_own_tls_contexts_read_no_ca_bundle_and_the_environment_is_put_back(
    told: str | None,
) -> None:
    """The proxy imports aiohttp with SSL_CERT_FILE pointing at nothing, so that the two
    client contexts aiohttp builds as it is imported do not read the system's CA bundle (a
    tenth of the proxy's start); the variable is as it was afterwards (what children
    inherit), and a context made since reads the bundle as before."""
    program = (
        "import os, ssl, sys; before = ssl.create_default_context().cert_store_stats(); "
        "from local_lambdas.lifecycle import _import_aiohttp; _import_aiohttp(); "
        "import aiohttp.connector as c; "
        "print(c._SSL_CONTEXT_VERIFIED.cert_store_stats()['x509'], "
        "ssl.create_default_context().cert_store_stats() == before, "
        "os.environ.get('SSL_CERT_FILE'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
    if told is not None:
        env["SSL_CERT_FILE"] = told
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          env=env, check=True)  # fmt: skip
    assert done.stdout.split() == ["0", "True", str(told)], done.stdout + done.stderr


_UVLOOP_TABLE = """
import asyncio, gc, socket, sys, weakref
from local_lambdas.uvloop_import import import_uvloop
before = (weakref.WeakValueDictionary, asyncio.isfuture)
import_uvloop()
import uvloop
print("restored", (weakref.WeakValueDictionary, asyncio.isfuture) == before)
interpreted = set()

def seen(frame, event, arg):
    if event == "call" and frame.f_code.co_filename.endswith(("weakref.py", "futures.py")):
        interpreted.add(frame.f_code.co_name)

async def main():
    loop = asyncio.get_running_loop()
    mine, theirs = socket.socketpair()
    lost = loop.create_future()

    class Watched(asyncio.Protocol):
        def connection_lost(self, exc):
            lost.set_result(None)

    sys.setprofile(seen)
    transport, _ = await loop.create_unix_connection(Watched, sock=mine)
    sys.setprofile(None)
    print("interpreted", sorted(interpreted))
    fd = transport.get_extra_info("socket").fileno()
    try:
        loop.add_reader(fd, print)
    except RuntimeError as refused:
        print("refused", "is used by transport" in str(refused))
    gone = weakref.ref(transport)
    transport.close()
    await lost
    del transport
    gc.collect()
    print("freed", gone() is None)
    again = socket.socket(socket.AF_UNIX)
    print("reused", again.fileno() == fd)
    loop.add_reader(again.fileno(), print)
    loop.remove_reader(again.fileno())

uvloop.run(main())
"""


def test_uvloops_table_of_transports_is_cheap_and_still_guards_their_descriptors() -> None:
    """The proxy imports uvloop with a table of transports of its own (uvloop_import.py): a
    connection runs none of weakref.py's or asyncio's futures' interpreted code, the
    stdlib is as it was after the import, uvloop still refuses add_reader on a live
    transport's descriptor, the table keeps no transport alive, and a descriptor's number
    used again is free."""
    pytest.importorskip("uvloop")
    done = subprocess.run([sys.executable, "-c", _UVLOOP_TABLE], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.splitlines() == [
        "restored True", "interpreted []", "refused True", "freed True", "reused True",
    ], done.stdout + done.stderr  # fmt: skip


def test_uvloop_is_imported_before_any_thread_of_the_run_starts(
    write_manifest: WriteManifest,
) -> None:
    """Its cheaper table of transports is swapped in only while no other thread runs: the
    printer's thread, started by the first line said (here --no-timeouts' warning), came
    first, and a run said a line before it lost the table."""
    pytest.importorskip("uvloop")
    path = write_manifest(process_xml("svc", "/api/*"))
    program = (
        "import sys, threading; from local_lambdas import cli; seen = []; real = cli._event_loop\n"
        "def spy(choice):\n    seen.append(threading.active_count()); return real(choice)\n"
        "cli._event_loop = spy\n"
        f"code = cli.main(['check', '--boot', '--no-timeouts', {str(path)!r}])\n"
        "print('threads', seen, code)"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.stdout.splitlines()[-1:] == ["threads [1] 0"], done.stdout + done.stderr


def _command_lines(parent: int) -> list[bytes]:
    """Linux: the command lines of `parent`'s children."""
    return [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in orphans.children(parent)]


async def test_sigkilled_proxy_leaves_no_child_nor_grandchild(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    path = wrapped_manifest(write_manifest, pid_file)
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        found = await run.expect(r"wrapped: ready .*\(pid (\d+), (\S+)\)")
        wrapper_pid, socket_dir = int(found.group(1)), Path(found.group(2)).parent
        plain_pid = int((await run.expect(r"plain: ready .*\(pid (\d+),")).group(1))
        async with aiohttp.ClientSession() as http, http.get(url + "/w/x") as reply:
            assert reply.status == 200
        grandchild = int(pid_file.read_text())
        if sys.platform.startswith("linux"):  # `pkill -9 -f local-lambdas` misses the watchdog
            watchdogs = [line for line in _command_lines(run.proc.pid) if b"import orphans" in line]
            assert len(watchdogs) == 1 and b"local-lambdas" not in watchdogs[0], watchdogs
        run.proc.kill()
        await run.proc.wait()
    for pid in (plain_pid, wrapper_pid, grandchild):
        assert await gone(pid), pid
    assert await eventually(lambda: not socket_dir.exists())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="command lines in /proc")
@pytest.mark.parametrize("made_as", ["--symlinks", "--copies"])
async def test_pkill_aimed_at_a_pipx_install_leaves_the_watchdog_to_stop_the_rest(
    write_manifest: WriteManifest, tmp_path: Path, made_as: str
) -> None:
    """pipx installs into .../venvs/local-lambdas/, so the proxy's interpreter (and its
    package) have the name in their paths, and `pkill -9 -f local-lambdas`, a CI job's
    teardown, kills every process whose command line holds it. The watchdog's holds neither
    path, whether the environment links to its interpreter or holds a copy of it: it
    outlives the proxy and stops the grandchild no parent-death signal reaches."""
    venv = tmp_path / "pipx" / "venvs" / "local-lambdas"  # (the package: this checkout's)
    made = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", made_as,
        str(venv),
    )  # fmt: skip
    assert await made.wait() == 0
    pid_file = tmp_path / "grandchild.pid"
    path = wrapped_manifest(write_manifest, pid_file)
    python = str(venv / "bin" / "python")
    async with cli(str(path), "--bind", "127.0.0.1:0", python=python) as run:
        wrapper = int((await run.expect(r"wrapped: ready .*\(pid (\d+),")).group(1))
        plain = int((await run.expect(r"plain: ready .*\(pid (\d+),")).group(1))
        assert await eventually(lambda: pid_file.exists() and pid_file.read_text() != "")
        grandchild = int(pid_file.read_text())
        # What `pkill -9 -f local-lambdas` finds of this run: the proxy alone.
        ours = {run.proc.pid, *orphans.children(run.proc.pid)}
        named = [pid for pid in processes_running("local-lambdas") if pid in ours]
        assert named == [run.proc.pid], _command_lines(run.proc.pid)
        run.proc.kill()
        await run.proc.wait()
    for pid in (plain, wrapper, grandchild):
        assert await gone(pid), pid


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="marks are read in /proc")
async def test_a_sigkilled_run_leaves_neither_its_command_nor_what_that_started(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """`local-lambdas run` killed with SIGKILL (a CI job's timeout): the command it ran, and
    a process that command started in a session of its own, stop with the children."""
    path = write_manifest(process_xml("svc", "/api/*"))
    pid_file = tmp_path / "started.pid"
    command = (
        "import os, subprocess, time; "
        "p = subprocess.Popen(['sleep', '300'], start_new_session=True); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); "
        "print(f'pid={os.getpid()}', flush=True); time.sleep(300)"
    )
    async with cli("run", str(path), "--", sys.executable, "-c", command) as run:
        child = int((await run.expect(r"svc: ready .*\(pid (\d+),")).group(1))
        command_pid = int((await run.expect(r"^pid=(\d+)$")).group(1))
        started_pid = int(pid_file.read_text())
        run.proc.kill()
        # (Not wait(): it also waits for the proxy's output, which the command shares.)
        assert await eventually(lambda: run.proc.returncode is not None)
        for pid in (child, command_pid, started_pid):
            assert await gone(pid), pid
        await run.finish()  # the end of its output, shared with the command and the watchdog


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="marks are read in /proc")
def test_a_marked_process_is_found_even_in_the_middle_of_an_exec(tmp_path: Path) -> None:
    """Every kill of a child's leftovers finds them by the mark in their environment, which
    an exec hides for a moment (a wrapper's `setsid server &` was missed so, and left
    running, as the wrapper exited). A process that execs again and again is found by every
    look."""
    chain, enough = tmp_path / "chain.sh", tmp_path / "enough"
    # Execs itself until told it has been looked at enough (on a loaded machine a fixed
    # number of execs could end before many looks were taken).
    chain.write_text('[ -e "$1" ] && exec sleep 30\nexec sh "$0" "$1"\n')
    mark = f"{os.getpid()}.{secrets.token_hex(4)}."
    proc = subprocess.Popen(["sh", str(chain), enough], env={**os.environ, SPAWN_MARK: mark})
    missed = 0
    try:
        for _ in range(30):
            missed += proc.pid not in orphans.marked(mark)
        enough.touch()
    finally:
        proc.kill()
        proc.wait()
    assert missed == 0, missed


def test_what_starts_the_children_does_not_load_aiohttp() -> None:
    """A run starts its children first, and loads aiohttp's side (front.py, most of the
    proxy's import time) on a thread while they start: what comes before may not import it."""
    code = "import local_lambdas.cli, local_lambdas.commands.serve, local_lambdas.manifest"
    code += ", local_lambdas.commands.run, local_lambdas.run_signals"
    assert loaded_by(code, ("aiohttp", "local_lambdas.front")) == []


async def test_a_request_while_the_proxy_starts_waits_for_its_child(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """The proxy listens while its children start: a request that comes before its child is
    ready waits for it, and /_/ready says 503 until every child is ready."""
    gate = tmp_path / "gate"  # the child listens once the test opens this FIFO's other end
    os.mkfifo(gate)
    path = write_manifest(process_xml("svc", "/api/*", script="gated.py", args=(str(gate),)))
    settings = Settings(port=0, socket_dir=socket_dir, shutdown_timeout=5)
    async with (
        started(load(path, socket_dir=socket_dir), settings, Printer(color=False)) as run,
        aiohttp.ClientSession() as http,
    ):

        async def get(path: str) -> tuple[int, Any]:
            async with http.get(run.url + path) as reply:
                return reply.status, await reply.json()

        status, body = await get("/_/ready")
        pipe = socket_dir / "svc"  # what it waits for, said
        assert (status, body) == (503, {"ready": False, "not_ready": {
            "svc": f"STARTING: starting; ready once it listens on {pipe}"}}), body  # fmt: skip
        waiting = asyncio.create_task(get("/api/early"))

        async def queued() -> bool:  # the proxy holds the request, waiting for its child
            status = (await get("/_/status"))[1]
            return bool(status["processes"]["svc"]["queue"] == 1)

        assert await eventually(queued)
        assert not waiting.done()
        os.close(await asyncio.to_thread(os.open, gate, os.O_WRONLY))
        status, body = await waiting
        assert status == 200 and body["uri"] == "/api/early"
        assert (await get("/_/ready"))[0] == 200


async def test_sighup_reloads_the_manifest(write_manifest: WriteManifest) -> None:
    path = write_manifest(process_xml("a", "/a/*"))
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        await run.expect(r"a: ready")
        write_manifest(process_xml("a", "/a/*"), process_xml("c", "/c/*"))
        run.proc.send_signal(signal.SIGHUP)
        await run.expect(r"reloaded: 1 started, 1 kept, 0 stopped")
        async with aiohttp.ClientSession() as http, http.get(url + "/c/x") as reply:
            assert reply.status == 200
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0


async def test_in_flight_requests_finish_during_stop(write_manifest: WriteManifest) -> None:
    path = write_manifest(process_xml("svc", "/api/*"))
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        await run.expect(r"svc: ready")
        async with aiohttp.ClientSession() as http:
            pending = asyncio.ensure_future(http.get(url + "/api/slow"))
            await run.expect(r"svc +\| slow request received")
            run.proc.send_signal(signal.SIGTERM)
            reply = await pending
            assert reply.status == 200
            reply.release()
        assert await run.finish() == 0
        assert any("stopping: finishing requests in flight" in line for line in run.lines)


async def test_port_in_use_is_one_clear_line(write_manifest: WriteManifest, tmp_path: Path) -> None:
    """A port in use ends the run with one line that says so, before a <task> has run or a
    child has started (the port listens first; the children start after it)."""
    ran = tmp_path / "migrated"
    task = (f"<task><id>migrate</id><executable>{PYTHON}</executable><arg>-c</arg>"
            f"<arg>open({str(ran)!r}, 'w')</arg></task>")  # fmt: skip
    path = write_manifest(task, process_xml("svc", "/api/*"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with cli(str(path), env={"BIND_ADDRESS": f"127.0.0.1:{port}"}) as run:
            assert await run.finish() == 1
    said = [line for line in run.lines
            if f"cannot listen on 127.0.0.1:{port}: address already in use" in line]  # fmt: skip
    assert said and "; choose another with --port PORT or --bind HOST:PORT" in said[0], run.lines
    if _compat.IS_LINUX:  # who holds it, where that can be told (most often an earlier run)
        assert f"address already in use: pid {os.getpid()} (" in said[0]
    assert not any("Traceback" in line for line in run.lines)
    assert not any("svc: starting" in line for line in run.lines) and not ran.exists()


@pytest.mark.parametrize(("flags", "says"), [
    (["--client-header-timeout", "0"],
     "argument --client-header-timeout: '0' is not a time above 0; write e.g. 60, 30s or 500ms"),
    (["--client-body-timeout", "2m", "--shutdown-timeout", "-1"],
     "argument --shutdown-timeout: '-1' is not a time above 0"),
    (["--send-timeout", "soon"], "argument --send-timeout: 'soon' is not a time"),
    (["--keepalive-timeout", "0"], "argument --keepalive-timeout: '0' is not a time above 0"),
    (["--only", " , "], "--only ' , ' names no process; give ids, e.g. --only api,web"),
    (["--admin-prefix", "/x"], "--admin-prefix '/x' must be a path that begins and ends "
     'with "/", like /_/ or /admin/: write "/x/"'),
    (["--child-url", "localhost:3000"], "argument --child-url: 'localhost:3000' is not an "
     "http:// or https:// URL with a host (and no query), e.g. http://api.local:3000"),
    (["--child-url", "http://api:99999"], "'http://api:99999' is not an http:// or https://"),
    (["--watch-include", "*.go"], "--watch-include goes with --watch: add --watch"),
    (["--watch-ignore", "*.log"], "--watch-ignore goes with --watch: add --watch"),
    (["--inspect-secrets", "--no-inspector"], "--inspect-secrets shows what the inspector "
     "keeps: drop --no-inspector"),
    (["--env-file", "a.env", "--no-env-file"],
     "argument --no-env-file: not allowed with argument --env-file"),
])  # fmt: skip
def test_a_flag_given_wrong_is_one_clear_line(
    write_manifest: WriteManifest, flags: list[str], says: str
) -> None:
    ran = run_main(str(write_manifest(process_xml("svc", "/api/*"))), *flags)
    assert ran.returncode == 2 and says in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize(("argv", "value"), [
    (["run", "--ready-timeout", "-5"], "-5"),
    (["check", "--boot", "--ready-timeout", "nan"], "nan"),
])  # fmt: skip
def test_a_ready_timeout_given_wrong_is_one_clear_line(
    write_manifest: WriteManifest, argv: list[str], value: str
) -> None:
    """`run` and `check --boot` take their --ready-timeout as the other time-outs are taken
    (30s, 2m; test_observability runs with one): not a negative, NaN or infinite one."""
    path = str(write_manifest(process_xml("svc", "/api/*")))
    ran = run_main(*argv, path, *(["--", "true"] if argv[0] == "run" else []))
    says = f"argument --ready-timeout: '{value}' is not a time above 0; write e.g. 60, 30s"
    assert ran.returncode == 2 and says in ran.stderr, ran.stderr


async def test_a_bind_to_a_name_that_does_not_resolve_is_one_clear_line(
    write_manifest: WriteManifest,
) -> None:
    path = write_manifest(process_xml("svc", "/api/*"))
    async with cli(str(path), "--bind", "no-such-host.invalid:0") as run:
        assert await run.finish() == 1
    says = "cannot listen on no-such-host.invalid:0: no-such-host.invalid is not a name of this"
    assert any(says in line for line in run.lines), run.lines
    assert not any("Traceback" in line for line in run.lines), run.lines


@pytest.mark.skipif(
    shutil.which("setpriv") is None or os.geteuid() != 0,
    reason="needs root and util-linux's setpriv to take away low ports",
)
def test_a_port_the_user_may_not_take_is_said_to_be_privileged(
    write_manifest: WriteManifest,
) -> None:
    """Linux keeps ports below 1024 for root (CAP_NET_BIND_SERVICE, here taken away)."""
    path = write_manifest(process_xml("svc", "/api/*"))
    ran = subprocess.run(
        ["setpriv", "--bounding-set=-net_bind_service", sys.executable, "-m", "local_lambdas",
         str(path), "--port", "81"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    says = ("cannot listen on 127.0.0.1:81: permission denied (ports below 1024 are for root "
            "here); choose another with --port PORT")  # fmt: skip
    assert ran.returncode == 1 and says in ran.stdout + ran.stderr, ran.stdout + ran.stderr


async def test_port_is_the_short_way_to_choose_where_to_listen(
    write_manifest: WriteManifest,
) -> None:
    """`-p PORT` as dev servers take it, on the host of --bind or $BIND_ADDRESS; a number
    that is no port is a usage error."""
    path = write_manifest(process_xml("svc", "/api/*"))
    port = fixed_port()
    async with cli(str(path), "-p", str(port), env={"BIND_ADDRESS": "127.0.0.1:9"}) as run:
        await run.expect(rf"listening on http://127\.0\.0\.1:{port}\b")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    async with cli(str(path), "--port", "70000") as run:
        assert await run.finish() == 2
    assert any("--port: '70000' is not a port (0-65535)" in line for line in run.lines), run.lines


@pytest.mark.skipif(_compat.IS_WINDOWS, reason="closes descriptors as a POSIX shell does")
@pytest.mark.parametrize("closed", ["<&- >&- 2>&-", ">&-"], ids=["all", "stdout"])
async def test_a_proxy_started_with_its_standard_streams_closed_runs_its_children(
    write_manifest: WriteManifest, closed: str
) -> None:
    """`local-lambdas ... <&- >&- 2>&-`, as a script or a service manager may start it: on
    uvloop every child was killed by SIGABRT before it ran (libuv asserts that a descriptor
    it closes in the new process is none of 0-2), so every route was a 503 for good; and
    the output thread failed on the closed stream (a traceback on stderr, when open)."""
    path = write_manifest(process_xml("svc", "/api/*", mode="pipe-keepalive"))
    port = fixed_port()
    command = f"exec {sys.executable} -m local_lambdas {path} --bind 127.0.0.1:{port} {closed}"
    proc = await asyncio.create_subprocess_exec("sh", "-c", command, stderr=asyncio.subprocess.PIPE)
    try:

        async def answered() -> bool:
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.get(f"http://127.0.0.1:{port}/api/x") as reply:
                        return reply.status == 200
            except aiohttp.ClientConnectionError:
                return False

        assert await eventually(answered, timeout=15)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, said = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0
    assert said == b"", said.decode()


def _signals_blocked_and_sigchld_ignored() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)


@pytest.mark.skipif(_compat.IS_WINDOWS, reason="POSIX signals")
async def test_a_proxy_started_with_signals_blocked_stops_and_reads_its_childrens_exits(
    write_manifest: WriteManifest,
) -> None:
    """A program that starts the proxy with signals blocked (a mask is inherited across
    exec): SIGTERM did nothing, only SIGKILL stopped it. With SIGCHLD ignored the kernel
    reaped the children itself, and the standard library's loop told every exit as code
    255 ("Unknown child process pid")."""
    path = write_manifest(
        "<process><id>crash</id><executable>sh</executable><arg>-c</arg><arg>exit 3</arg>"
        "<route>/c/*</route><communication_mode>passthrough</communication_mode></process>"
    )
    async with cli(str(path), "--bind", "127.0.0.1:0", "--event-loop", "asyncio",
                   preexec=_signals_blocked_and_sigchld_ignored) as run:  # fmt: skip
        await run.expect(r"crash: exited with code 3;")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    assert not any("Unknown child process" in line for line in run.lines), run.lines


@pytest.mark.skipif(not _compat.IS_LINUX, reason="the child lists /proc/self/fd")
async def test_descriptors_the_proxy_inherits_are_not_passed_on_to_its_children(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """A descriptor the proxy was started with (a shell's `3>file`, a runner's pipe) reached
    every child on uvloop (libuv's spawn passes each inheritable one; the standard library's
    loop closes them), holding the starter's pipe open as long as any child ran."""
    lister = tmp_path / "fds.sh"
    lister.write_text('for f in /proc/$$/fd/*; do printf "%s " "${f##*/}"; done; echo\n'
                      "exec sleep 30\n")  # fmt: skip
    path = write_manifest(
        f"<process><id>fds</id><executable>sh</executable><arg>{lister}</arg>"
        "<route>/c/*</route><communication_mode>passthrough</communication_mode></process>"
    )
    import fcntl  # (POSIX)

    read, write = os.pipe()
    passed = fcntl.fcntl(write, fcntl.F_DUPFD, 200)  # a free number, inheritable
    try:
        async with cli(str(path), "--bind", "127.0.0.1:0", pass_fds=(passed,)) as run:
            listed = (await run.expect(r"fds +\| (0 1 .*)")).group(1).split()
            run.proc.send_signal(signal.SIGTERM)
            assert await run.finish() == 0
    finally:
        for fd in (read, write, passed):
            os.close(fd)
    assert "2" in listed and str(passed) not in listed, (passed, listed)


async def test_text_the_proxys_output_cannot_encode_is_escaped_not_dropped(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """Output in an encoding short of Unicode (PYTHONIOENCODING=ascii here; LC_ALL=C
    without UTF-8 mode, a Windows pipe in cp1252): a line with a child's `café` or an id's
    `é` failed the write, and the lines written with it were dropped without a word. Now
    such characters are JSON escapes, so that a --log-format json line stays JSON. The
    table's rule, which such an output cannot encode either, is drawn with "-", not written
    as a line of escapes."""
    child = tmp_path / "says.py"
    child.write_text("import os, socket, sys, time\n"
                     "sys.stdout.buffer.write('café 日本 😀\\n'.encode()); sys.stdout.flush()\n"
                     "s = socket.create_server(('127.0.0.1', int(os.environ['PORT'])))\n"
                     "time.sleep(30)\n")  # fmt: skip
    path = write_manifest(
        f"<process><id>caf\u00e9</id><executable>{sys.executable}</executable>"
        f"<arg>{child}</arg><route>/c/*</route>"
        "<communication_mode>passthrough</communication_mode></process>"
    )
    ascii_only = {"PYTHONIOENCODING": "ascii"}
    async with cli(str(path), "--bind", "127.0.0.1:0", env=ascii_only) as run:
        await run.expect(r"^caf\\u00e9 +\| caf\\u00e9 \\u65e5\\u672c \\ud83d\\ude00$")
        await run.expect(r"caf\\u00e9: starting")
        await run.expect(r"^ +routes +process +mode")
        await run.expect(r"^ +-{60,}$")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    async with cli(str(path), "--bind", "127.0.0.1:0", "--log-format", "json",
                   env=ascii_only) as run:  # fmt: skip
        await run.expect(r'"event":"output"')
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    records = [json.loads(line) for line in run.lines]
    said = [r["line"] for r in records if r.get("event") == "output"]
    assert said == ["café 日本 😀"], records


def _few_open_files() -> None:
    import resource  # (POSIX)

    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


@pytest.mark.skipif(not _compat.IS_LINUX, reason="sets RLIMIT_NOFILE; the open files are Linux's")
async def test_a_proxy_out_of_open_files_says_so_and_keeps_its_children_ready(
    write_manifest: WriteManifest,
) -> None:
    """With its open files at their limit the proxy cannot open a connection to a child,
    nor look whether the child listens: it took that for the child having stopped
    listening, set the process STARTING ("runs but stopped listening") and held each
    request up to <queue_timeout> for a 503 that said so. Now the request gets its 502 at
    once with the cause, and the process stays READY."""
    path = write_manifest(process_xml("svc", "/api/*"))
    async with cli(str(path), "--bind", "127.0.0.1:0", preexec=_few_open_files) as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        await run.expect(r"svc: ready")
        port = int(url.rpartition(":")[2])
        first = await asyncio.open_connection("127.0.0.1", port)
        others = [await asyncio.open_connection("127.0.0.1", port) for _ in range(80)]
        files = f"/proc/{run.proc.pid}/fd"  # all 64 taken (less the one libuv keeps free)
        assert await eventually(lambda: len(os.listdir(files)) >= 63), os.listdir(files)
        reader, writer = first
        writer.write(b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
        body = await reader.readexactly(length)
        for _, other in [first, *others]:
            other.close()
        assert head.startswith(b"HTTP/1.1 502 "), head
        assert b"Too many open files" in body, body
        async with aiohttp.ClientSession() as http:

            async def served() -> bool:
                try:
                    async with http.get(f"{url}/api/x") as reply:
                        return reply.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            assert await eventually(served)
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    assert not any("stopped listening" in line for line in run.lines), run.lines


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
async def test_localhost_reaches_the_proxy_as_ipv6_too_unless_the_host_is_chosen(
    write_manifest: WriteManifest,
) -> None:
    """On the default host the proxy listens on [::1] too: Node.js 18's fetch (Debian 12's,
    and a Vite dev server's proxy on it) and ApacheBench take `localhost` for ::1 and try
    no other address, so they were refused. Another program on [::1] is said, and the
    proxy serves on 127.0.0.1 all the same; a host chosen with --bind is the only one."""
    path = write_manifest(process_xml("svc", "/api/*"))

    async def get(url: str) -> int:
        async with aiohttp.ClientSession() as http, http.get(url) as reply:
            return reply.status

    async with cli(str(path), "-p", "0", env={"BIND_ADDRESS": ""}) as run:
        port = int((await run.expect(r"listening on http://127\.0\.0\.1:(\d+)")).group(1))
        await run.expect(r"svc: ready")
        assert await get(f"http://[::1]:{port}/api/x") == 200
        assert await get(f"http://127.0.0.1:{port}/api/x") == 200
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    with socket.socket(socket.AF_INET6) as other:  # a dev server on localhost as ::1
        other.bind(("::1", 0))
        other.listen()
        port = other.getsockname()[1]
        async with cli(str(path), "-p", str(port), env={"BIND_ADDRESS": ""}) as run:
            await run.expect(rf"\[::1\]:{port} is taken \(pid {os.getpid()} .*\): a client "
                             "that takes localhost for ::1")  # fmt: skip
            await run.expect(r"svc: ready")
            assert await get(f"http://127.0.0.1:{port}/api/x") == 200
            run.proc.send_signal(signal.SIGTERM)
            assert await run.finish() == 0
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        port = int((await run.expect(r"listening on http://127\.0\.0\.1:(\d+)")).group(1))
        await run.expect(r"svc: ready")
        with pytest.raises(aiohttp.ClientConnectionError):
            await get(f"http://[::1]:{port}/api/x")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0


async def test_a_childs_screen_clearing_never_reaches_the_proxys_output(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """A dev server that clears the screen as it starts (Vite's, FORCE_COLOR) would wipe the
    other children's lines and the routes table: its colours go on, nothing else does, and
    the reason its exit is told with quotes its words, not its escapes."""
    child = tmp_path / "clearing.py"
    child.write_text(
        "print('\\x1b[2J\\x1b[3J\\x1b[H\\x1b]0;dev\\x07', end='')\n"
        "print('\\x1b[32mstarting\\x1b[0m\\x07', flush=True)\n"
        "print('\\x1b[1;31mError\\x1b[0m: no config', flush=True)\n"
        "raise SystemExit(3)\n"
    )
    path = write_manifest(
        f"<process><id>vite</id><executable>{sys.executable}</executable><arg>{child}</arg>"
        "<route>/v/*</route><start_retries>0</start_retries></process>",
        process_xml("good", "/good/*"),
    )
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        await run.expect(r"vite: FATAL: .*Error: no config")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    printed = "\n".join(run.lines)
    assert "vite          | \x1b[32mstarting\x1b[0m\n" in printed, printed
    assert "vite          | \x1b[1;31mError\x1b[0m: no config\n" in printed, printed
    for escape in ("\x1b[2J", "\x1b[H", "\x1b]0;", "\x07"):
        assert escape not in printed, (escape, printed)


@pytest.mark.parametrize(("env", "coloured"), [
    ({"FORCE_COLOR": "1"}, True),
    ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
])  # fmt: skip
async def test_no_color_turns_the_proxys_colours_off(
    write_manifest: WriteManifest, env: dict[str, str], coloured: bool
) -> None:
    """NO_COLOR (no-color.org) turns off the colours the proxy adds, its ids' and its own
    lines', even where FORCE_COLOR (a CI log) would turn them on; it had left the ids
    coloured. A child's own colours are its own: it gets NO_COLOR too."""
    path = write_manifest(process_xml("svc", "/api/*"))
    async with cli(str(path), "--bind", "127.0.0.1:0", env=env) as run:
        await run.expect(r"svc: ready")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    ours = [line for line in run.lines if "local-lambdas" in line]
    sgr = re.compile(r"\x1b\[[0-9;]*m")  # a colour or weight (a cursor's move is no colour)
    assert ours and all((sgr.search(line) is not None) is coloured for line in ours), ours


async def test_crash_looping_child_goes_fatal_and_others_serve(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    crasher = tmp_path / "crash.py"
    crasher.write_text(
        "import sys\nprint('cannot start: missing config', file=sys.stderr)\nsys.exit(3)\n"
    )
    path = write_manifest(
        f"<process><id>broken</id><executable>{sys.executable}</executable>"
        # Two retries, not the default five: the ladder's timing is backoff's table test's.
        f"<arg>{crasher}</arg><route>/broken/*</route><start_retries>2</start_retries>"
        "</process>",
        process_xml("good", "/good/*"),
    )
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        await run.expect(
            r"broken: exited with code 3; restarting in 0.1s; its last output: cannot start: "
            r"missing config"
        )
        await run.expect(
            r"broken: FATAL: gave up after \d+ failed starts in a row \(<start_retries>: \d+\)"
        )
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/broken/x") as reply:
                assert reply.status == 503
                error = (await reply.json())["error"]
                assert "FATAL" in error and "missing config" not in error
            async with http.get(url + "/good/x") as reply:
                assert reply.status == 200
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0


async def test_a_stop_answers_the_requests_no_child_has_yet(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """Ctrl+C while one request waits for its process to start (on request, slowly): it
    gets 503 at once, rather than hold the stop up for --shutdown-timeout; the request a
    child has finishes, and so does one waiting in line behind it (in flight, as issue 3
    has it: served once the slot is free)."""
    slow = "<start>on-request</start><startup_timeout>60s</startup_timeout>"
    path = write_manifest(
        process_xml("lazy", "/lazy/*", script="slow_start.py", extra=slow),
        process_xml("busy", "/busy/*", extra="<concurrency>1</concurrency>"),
    )
    args = (path.name, "--bind", "127.0.0.1:0", "--shutdown-timeout", "60")
    async with cli(*args, cwd=tmp_path) as run, aiohttp.ClientSession() as http:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        await run.expect(r"busy: ready")
        answers = [
            asyncio.ensure_future(_answer(http, url + target))
            for target in ("/lazy/x", "/busy/slow", "/busy/x")
        ]
        await run.expect(r"lazy +\| starting slowly")
        await run.expect(r"busy +\| slow request received")

        async def both_wait() -> bool:
            async with http.get(url + "/_/status") as reply:
                processes = (await reply.json())["processes"]
            return bool(processes["lazy"]["queue"] == processes["busy"]["queue"] == 1)

        assert await eventually(both_wait)
        run.proc.send_signal(signal.SIGINT)
        lazy, slow_one, queued = await asyncio.wait_for(asyncio.gather(*answers), WAIT)
        assert await run.finish() == 0
    assert lazy == (503, "local-lambdas is shutting down")
    assert slow_one[0] == queued[0] == 200


async def _answer(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as reply:
        body = await reply.read()
        if reply.content_type == "application/json" and reply.status >= 400:
            return reply.status, json.loads(body)["error"]
        return reply.status, ""


async def test_a_manifest_without_processes_says_so(tmp_path: Path) -> None:
    path = tmp_path / "manifest.xml"
    path.write_text("<manifest></manifest>")
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        await run.expect(r"manifest.xml lists no <process>: every request but the dashboard's")
        async with aiohttp.ClientSession() as http, http.get(url + "/api/x") as reply:
            assert reply.status == 404
        run.proc.send_signal(signal.SIGINT)
        assert await run.finish() == 0


async def test_the_bundled_manifest_runs() -> None:
    root = Path(__file__).parents[1]
    async with cli(str(root / "manifest.xml"), "--bind", "127.0.0.1:0") as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        for name in ("echo", "hello", "greet", "web"):
            await run.expect(rf"{name}: ready")
        async with aiohttp.ClientSession() as http:
            async with http.post(url + "/echo/x?y=1", data=b"hi") as reply:
                assert (await reply.json())["body_text"] == "hi"
            async with http.get(url + "/hello?name=you") as reply:
                assert (await reply.text()).startswith("Hello, you!")
            async with http.get(url + "/greet?name=you") as reply:
                assert (await reply.json())["greeting"] == "Hello, you!"
            async with http.get(url + "/web/") as reply:
                assert (await reply.json())["added"]["X-Forwarded-Proto"] == "http"
                length = reply.headers["Content-Length"]
            async with http.head(url + "/web/") as reply:  # as `curl -I` asks
                assert (reply.status, reply.headers["Content-Length"]) == (200, length)
        run.proc.send_signal(signal.SIGINT)
        assert await run.finish() == 0


async def test_the_bundled_example_runs_whatever_python3_is(tmp_path: Path) -> None:
    """As under pipx, or with a virtual environment that is not active: the python3 on PATH
    cannot import local_lambdas; the bundled example's helper child still starts."""
    bare = tmp_path / "bare"
    venv = await asyncio.create_subprocess_exec(sys.executable, "-m", "venv", "--without-pip",
                                                str(bare))  # fmt: skip
    assert await venv.wait() == 0
    root = Path(__file__).parents[1]
    path = f"{bare / 'bin'}{os.pathsep}{os.environ['PATH']}"
    async with cli("manifest.xml", "--bind", "127.0.0.1:0", env={"PATH": path}, cwd=root) as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        await run.expect(r"greet: ready")
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/greet?name=pipx") as reply:
                assert (await reply.json())["greeting"] == "Hello, pipx!"
        run.proc.send_signal(signal.SIGINT)
        assert await run.finish() == 0


async def test_the_table_is_whole_off_a_terminal(write_manifest: WriteManifest) -> None:
    path = write_manifest(process_xml("a-process-with-a-long-name", "/api/*"))
    async with cli(str(path), "--bind", "127.0.0.1:0", env={"COLUMNS": "80"}) as run:
        found = await run.expect(r"a-process-with-a-long-name: ready .*\(pid \d+, (\S+)\)")
        row = await run.expect(r"^\s+/api/\*\s+a-process-with-a-long-name\s+pipe\s+(\S+)")
        assert row.group(1) == found.group(1)  # the whole socket path, not cut at 80
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0


async def test_children_stop_even_when_an_earlier_teardown_step_fails(
    write_manifest: WriteManifest, socket_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_cleanup(self: web.BaseRunner) -> None:
        raise RuntimeError("cleanup failed")

    monkeypatch.setattr(web.BaseRunner, "cleanup", broken_cleanup)
    path = write_manifest(process_xml("svc", "/api/*"))
    with pytest.raises(RuntimeError, match="cleanup failed"):
        async with running(path, socket_dir) as run:
            pid = run.child("svc").pid
            assert pid is not None and alive(pid)
    assert pid is not None and await gone(pid)

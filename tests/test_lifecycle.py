"""The whole program as users run it: start, serve, stop on a signal, leave nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable
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
    Cli,
    WriteManifest,
    alive,
    behave_after,
    cli,
    compiles_again,
    eventually,
    fixed_port,
    git,
    gone,
    loaded_by,
    process_xml,
    processes_running,
    run_main,
    running,
    signal_twice_at_once,
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="waits on /proc/PID/wchan")
@pytest.mark.parametrize(
    ("sigint_ignored", "sig", "said"),
    [
        (False, signal.SIGINT, "Ctrl+C"),
        (True, signal.SIGINT, "Ctrl+C"),
        (False, signal.SIGTERM, "SIGTERM"),
    ],
    ids=["terminal", "background-job", "sigterm"],
)
async def test_ctrl_c_while_loading_stops_it_in_one_line(
    tmp_path: Path, sigint_ignored: bool, sig: signal.Signals, said: str
) -> None:
    """Ctrl+C while the proxy still loads (here: reading a manifest that is a FIFO nobody
    has written to yet) ends it with one line and 130, not a traceback; and so does SIGINT
    sent to a script's background job (`local-lambdas manifest.xml &`), which starts with
    SIGINT ignored: that one was lost, and the proxy went on to serve. A SIGTERM says so
    too, with 143: it ended the proxy without a word (its default action)."""
    manifest = tmp_path / "manifest.xml"
    os.mkfifo(manifest)
    writers: list[int] = []

    def opened() -> bool:  # a writer opens without blocking once the reader has it open
        try:
            writers.append(os.open(manifest, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # ENXIO: not yet
            return False
        return True

    async with cli(str(manifest), "--bind", "127.0.0.1:0", sigint_ignored=sigint_ignored) as run:
        # Blocked in its read: a signal that came between its open() and its read() would
        # be taken only when the read returns (as in any Python program), not by a Ctrl+C.
        wchan = Path(f"/proc/{run.proc.pid}/wchan")
        try:
            assert await eventually(opened)
            assert await eventually(lambda: "pipe_read" in wchan.read_text())
            run.proc.send_signal(sig)
            assert await run.finish() == 128 + sig
        finally:
            for fd in writers:
                os.close(fd)
    assert run.lines == [f"local-lambdas: stopped by {said}"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="waits on /proc/PID/wchan")
async def test_a_hangup_while_loading_is_a_reload_once_it_serves(tmp_path: Path) -> None:
    """`kill -HUP` in a run's first moments, while it loads, ended it silently (SIGHUP's
    default action, before its loop took the signal): now it is a reload once it serves.
    The manifest is a FIFO, so that the run is held in its read of it."""
    manifest = tmp_path / "manifest.xml"
    os.mkfifo(manifest)
    text = f"<manifest>{process_xml('api', '/api/*', mode='pipe-keepalive')}</manifest>"

    async def blocked_reading(run: Cli) -> None:  # the read waits for a writer
        wchan = Path(f"/proc/{run.proc.pid}/wchan")
        assert await eventually(lambda: wchan.read_text() == "wait_for_partner")  # open()

    async def write() -> None:  # once the run's read has the FIFO open (else ENXIO)
        def opened() -> bool:
            try:
                writers.append(os.open(manifest, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                return False
            return True

        assert await eventually(opened), "the run is not reading the manifest"
        os.write(writers[-1], text.encode())
        os.close(writers.pop())

    writers: list[int] = []

    async with cli(str(manifest), "--bind", "127.0.0.1:0") as run:
        await blocked_reading(run)
        run.proc.send_signal(signal.SIGHUP)
        await write()
        await run.expect(r"reloading ")  # serving, it reads the manifest again
        await write()
        await run.expect(r"reloaded: 0 started, 1 kept, 0 stopped")
        assert run.proc.returncode is None
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0


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


# A stand-in for pydantic-core's import: cut short by Ctrl+C, it raises an error of its own
# (pyo3's PanicException, "failed to import `datetime` C API"), not KeyboardInterrupt. (The
# panic cannot be provoked on demand; the stand-in raises as pyo3 does.)
_LOADING_CUT_SHORT = """
import os, signal, sys
from local_lambdas import cli
def loading(argv):
    if "ctrl-c" in argv:
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass
    raise BaseException("failed to import `datetime` C API")
cli._main = loading
sys.exit(cli.main(sys.argv[1:]))
"""


# The console script's start in a background job (SIGINT ignored), with a SIGINT sent as it
# imports its command line: in a run's first tens of milliseconds.
_BACKGROUND_JOB_INTERRUPTED = """
import importlib.abc, os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)

class Interrupting(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "local_lambdas.cli":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, Interrupting())
sys.argv = ["local-lambdas", "--version"]
import local_lambdas
local_lambdas.entry_point()
"""


@pytest.mark.skipif(_compat.IS_WINDOWS, reason="no SIGINT to ignore there")
def test_a_background_job_takes_ctrl_c_from_its_first_moments() -> None:
    """SIGINT sent to a script's background job before its command line had loaded was
    lost (ignored, as the shell started it), and the proxy went on to serve: here
    `--version` would have been printed. It stops with its one line instead."""
    done = subprocess.run([sys.executable, "-c", _BACKGROUND_JOB_INTERRUPTED],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (
        130,
        "",
        "local-lambdas: stopped by Ctrl+C\n",
    )


@pytest.mark.skipif(_compat.IS_WINDOWS, reason="os.kill(SIGINT) ends a Windows process")
def test_ctrl_c_that_an_import_turns_into_its_own_error_says_one_line_too() -> None:
    def load(*argv: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", _LOADING_CUT_SHORT, *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    after_ctrl_c = load("ctrl-c")
    assert after_ctrl_c.returncode == 130
    assert after_ctrl_c.stderr == "local-lambdas: stopped by Ctrl+C\n"
    alone = load()  # the same error with no Ctrl+C is not said to be one
    assert alone.returncode == 1 and "failed to import" in alone.stderr


# The proxy in a terminal of its own (pty.fork: it leads the terminal's session), its output
# relayed to this launcher's stdout, the terminal's pid first; Ctrl+C typed once the output
# shows $CTRL_C_AFTER.
IN_A_TERMINAL = """
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "local_lambdas", *sys.argv[1:]])
print(f"terminal pid={pid}", flush=True)
ctrl_c_after, seen = os.environ.get("CTRL_C_AFTER", "").encode(), b""
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    sys.stdout.buffer.write(data.replace(b"\\r\\n", b"\\n"))
    sys.stdout.flush()
    seen += data
    if ctrl_c_after and ctrl_c_after in seen:
        os.write(fd, b"\\x03")
        ctrl_c_after = b""
"""


@pytest.mark.skipif(_compat.IS_WINDOWS, reason="a terminal's hangup is POSIX's")
async def test_closing_its_terminal_stops_it_and_a_hup_from_elsewhere_reloads(
    write_manifest: WriteManifest,
) -> None:
    """Closing the terminal window the proxy runs in (SIGHUP, the terminal gone) stops it
    and its children, as it does any program there; it used to take that SIGHUP for
    `kill -HUP` and reload, and ran on unseen, holding its port. `kill -HUP` while the
    terminal is there still reloads."""
    path = write_manifest(process_xml("svc", "/api/*"))
    launcher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", IN_A_TERMINAL, str(path), "--bind", "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    run = Cli(launcher)
    try:
        proxy = int((await run.expect(r"terminal pid=(\d+)")).group(1))
        child = int((await run.expect(r"svc: ready .*\(pid (\d+),")).group(1))
        os.kill(proxy, signal.SIGHUP)
        await run.expect(r"reloaded: 0 started, 1 kept")
        launcher.kill()  # the terminal's other end closes: it hangs up
        await launcher.wait()
        for pid in (proxy, child):
            assert await gone(pid), pid
    finally:
        if launcher.returncode is None:
            launcher.kill()
            await launcher.wait()


INTERRUPTED = """
import signal, sys, time
got = []
for number in (signal.SIGINT, signal.SIGTERM):
    signal.signal(number, lambda number, _: got.append(signal.Signals(number).name))
print("command ready", flush=True)
while not got:
    time.sleep(0.01)
time.sleep(0.5)  # for another to come
print(f"command got {got}", flush=True)
sys.exit(3)
"""


@pytest.mark.skipif(_compat.IS_WINDOWS, reason="a terminal's process groups are POSIX's")
async def test_ctrl_c_in_the_terminal_reaches_runs_command_once(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """Ctrl+C typed in the terminal goes to its foreground process group: the proxy and the
    command `run` started, at once. The proxy does not send it a SIGTERM besides (pytest,
    given both, died without its summary), and stops once the command is done."""
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    path = write_manifest(process_xml("svc", "/api/*"))
    launcher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", IN_A_TERMINAL, "run", str(path), "--bind", "127.0.0.1:0", "--",
        sys.executable, str(script),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200", "CTRL_C_AFTER": "command ready"},
    )  # fmt: skip
    run = Cli(launcher)
    try:
        await run.expect(r"command got \['SIGINT'\]")  # without the fix: SIGINT, SIGTERM
        await run.expect(r"exited with status 3")
        await run.expect(r"stopped")
    finally:
        if launcher.returncode is None:
            launcher.kill()
        await launcher.wait()


@pytest.mark.skipif(_compat.IS_WINDOWS, reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_stop_asked_of_run_is_passed_on_to_its_command_as_it_came(
    write_manifest: WriteManifest, tmp_path: Path, sig: signal.Signals
) -> None:
    """Without a terminal (CI cancelling a job, `kill -INT`), the signal the proxy got is
    what its command gets, once; the proxy stops when the command is done."""
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    path = write_manifest(process_xml("svc", "/api/*"))
    async with cli("run", str(path), "--bind", "127.0.0.1:0", "--", sys.executable, str(script),
                   preexec=os.setsid) as run:  # no terminal, wherever the tests run  # fmt: skip
        await run.expect(r"command ready")
        run.proc.send_signal(sig)
        await run.expect(rf"command got \['{sig.name}'\]")
        assert await run.finish() == 3


@pytest.mark.skipif(_compat.IS_WINDOWS, reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_stop_asked_as_runs_command_starts_is_the_commands(
    write_manifest: WriteManifest, tmp_path: Path, sig: signal.Signals
) -> None:
    """A stop that comes while the command is being started (CI cancelling the job at that
    moment) reaches the command, and the proxy ends with it: it was lost, or ended the proxy
    at once (SIGTERM's default) before the command's own was set up."""
    path = write_manifest(process_xml("svc", "/api/*"))
    async with cli("run", str(path), "--bind", "127.0.0.1:0", "--", "sh", "-c",
                   "trap 'exit 3' INT TERM; while :; do sleep 0.05; done",
                   preexec=os.setsid) as run:  # fmt: skip
        await run.expect(r"all ready; running")
        run.proc.send_signal(sig)
        # Caught by the shell's trap, or the shell ended by it before it set the trap.
        said = await run.expect(rf"sh (exited with status 3|was killed by {sig.name})")
        assert await run.finish() == (3 if "exited" in said[0] else 128 + sig)


@pytest.mark.skipif(_compat.IS_WINDOWS, reason="POSIX signals")
@pytest.mark.parametrize(
    "command", [["run", "--bind", "127.0.0.1:0", "--", "true"], ["check", "--boot"]]
)
async def test_a_stop_while_run_or_check_starts_stops_the_children_in_order(
    write_manifest: WriteManifest, tmp_path: Path, command: list[str]
) -> None:
    """SIGTERM while `run` or `check --boot` waits for its children (CI cancelling the job)
    ended the proxy at once without a word, SIGTERM's default, leaving the children to the
    watchdog: now they are stopped in order, and it says so with 143, as a shell would."""
    pid_file = tmp_path / "child.pid"
    never_ready = (
        f"<process><id>slow</id><executable>{PYTHON}</executable><arg>-S</arg><arg>-c</arg>"
        f"<arg>import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
        "time.sleep(60)</arg><route>/api/*</route>"
        "<communication_mode>http</communication_mode></process>"
    )
    path = write_manifest(never_ready)
    word, *rest = command
    async with cli(word, str(path), *rest) as run:
        await run.expect(r"slow: starting")
        assert await eventually(lambda: pid_file.exists() and pid_file.read_text() != "")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 143
    assert "slow: stopping" in run.lines[-2], run.lines
    assert run.lines[-1] == "local-lambdas: stopped by SIGTERM"
    assert await gone(int(pid_file.read_text()))


@pytest.mark.skipif(_compat.IS_WINDOWS, reason="POSIX signals")
async def test_a_second_stop_while_run_starts_exits_at_once(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """As with `serve`: a second stop while the first waits on a child that ignores its
    SIGTERM (a 60 s <stop_timeout>) exits at once, and the watchdog kills the child."""
    pid_file = tmp_path / "child.pid"
    stubborn = (
        "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    path = write_manifest(
        f"<process><id>slow</id><executable>{PYTHON}</executable><arg>-S</arg><arg>-c</arg>"
        f"<arg>{stubborn}</arg><route>/api/*</route><stop_timeout>60s</stop_timeout>"
        "<communication_mode>http</communication_mode></process>"
    )
    async with cli("run", str(path), "--bind", "127.0.0.1:0", "--", "true") as run:
        assert await eventually(lambda: pid_file.exists() and pid_file.read_text() != "")
        run.proc.send_signal(signal.SIGTERM)
        await run.expect(r"slow: stopping")
        assert await run.stop_at_once(signal.SIGTERM) == 130
    assert any("second stop signal" in line for line in run.lines)
    assert await gone(int(pid_file.read_text()))


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
    code = "import local_lambdas.cli, local_lambdas.commands, local_lambdas.manifest"
    code += ", local_lambdas.run_command, local_lambdas.run_signals"
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


async def test_watch_restarts_the_process_whose_files_changed(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    workdir = tmp_path / "svc"
    workdir.mkdir()
    path = write_manifest(
        process_xml("svc", "/api/*", extra=f"<working_dir>{workdir}</working_dir>")
    )
    async with cli(str(path), "--bind", "127.0.0.1:0", "--watch", "--watch-ignore", "*.log") as run:
        await run.expect(r"svc: ready")
        await run.expect(r"watching ")
        (workdir / "ignored.log").write_text("noise\n")
        (workdir / "handler.py").write_text("# changed\n")
        await run.expect(r"files changed: restarting svc")
        await run.expect(r"reloaded: 1 started, 0 kept, 1 stopped")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    restarts = [line for line in run.lines if "files changed" in line]
    assert len(restarts) == 1, restarts  # two writes, one restart


def _without_dac_override() -> None:
    """In the child before it runs the proxy: root as a user is, without the capabilities
    that read any folder (dropped from the bounding set, which root's next program's
    capabilities come from)."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="needs Linux and root, to be a user another user's folder is closed to",
)
async def test_watch_goes_on_past_a_folder_it_may_not_read(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """A database's folder inside the project (a container's bind mount, owned by its user
    with mode 0700) made --watch give up on the whole working_dir: "Permission denied":
    files there no longer restart anything. The folder is left out; the rest is watched."""
    workdir = tmp_path / "svc"
    (workdir / "pgdata" / "base").mkdir(parents=True)
    os.chown(workdir / "pgdata", 999, 999)  # (postgres's uid in its image)
    (workdir / "pgdata").chmod(0o700)
    path = write_manifest(
        process_xml("svc", "/api/*", extra=f"<working_dir>{workdir}</working_dir>")
    )
    flags = ("--bind", "127.0.0.1:0", "--watch")
    async with cli(str(path), *flags, preexec=_without_dac_override) as run:
        await run.expect(r"svc: ready")
        await run.expect(r"watching ")
        (workdir / "handler.py").write_text("# changed\n")
        await run.expect(r"files changed: restarting svc")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    assert not any("cannot watch" in line for line in run.lines), run.lines


async def test_watch_follows_the_manifest_by_its_content(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """Saved as sed -i and editors save (a new file renamed over the old one), in the folder
    that is also the children's working directory."""
    path = write_manifest(
        process_xml("a", "/a/*"), process_xml("b", "/b/*", extra="<stop_timeout>3s</stop_timeout>")
    )
    async with cli(path.name, "--bind", "127.0.0.1:0", "--watch", cwd=tmp_path) as run:
        await run.expect(r"a: ready .*\(pid (\d+)")
        await run.expect(r"b: ready")
        await run.expect(r"watching ")
        for edit in ("s/x/x/", "s#<stop_timeout>3s#<stop_timeout>4s#"):  # the same text, then b's
            sed = await asyncio.create_subprocess_exec("sed", "-i", edit, str(path))
            assert await sed.wait() == 0
        await run.expect(r"reloaded: 1 started, 1 kept, 1 stopped")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    assert len([line for line in run.lines if "reloading" in line]) == 1, run.lines
    assert not any("files changed" in line for line in run.lines), run.lines


async def test_watch_follows_a_manifest_link_and_the_file_it_points_to(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """`ln -sfn dev.xml manifest.xml` switches manifests; the proxy reads the link's new
    target, then follows that file's edits, none of which restarts a child for its files."""
    first = write_manifest(process_xml("a", "/a/*"), name="first.xml")
    second = write_manifest(process_xml("b", "/b/*"), name="second.xml")
    link = tmp_path / "manifest.xml"
    link.symlink_to(first.name)
    async with cli(link.name, "--bind", "127.0.0.1:0", "--watch", cwd=tmp_path) as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        await run.expect(rf"kill -HUP {run.proc.pid} reloads manifest\.xml")
        await run.expect(r"watching ")
        swap = await asyncio.create_subprocess_exec("ln", "-sfn", second.name, str(link))
        assert await swap.wait() == 0
        await run.expect(r"reloaded: 1 started, 0 kept, 1 stopped")
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/b/x") as reply:
                assert reply.status == 200
            async with http.get(url + "/a/x") as reply:
                assert reply.status == 404
        write_manifest(process_xml("b", "/b/*"), process_xml("c", "/c/*"), name="second.xml")
        await run.expect(r"reloaded: 1 started, 1 kept, 0 stopped")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    assert len([line for line in run.lines if "reloading" in line]) == 2, run.lines
    assert not any("files changed" in line for line in run.lines), run.lines


async def test_watch_never_reacts_to_the_proxys_own_output(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    path = write_manifest(process_xml("svc", "/api/*"))
    out = tmp_path / "dev.out"  # not *.log, which is ignored anyway
    with out.open("w") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "local_lambdas", path.name, "--bind", "127.0.0.1:0",
            "--watch", cwd=tmp_path, stdout=sink, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        assert await eventually(lambda: "watching " in out.read_text(), 20)
        url = re.search(r"listening on (http://\S+)", out.read_text())
        assert url is not None
        async with aiohttp.ClientSession() as http:
            for _ in range(20):  # each one writes an access line to dev.out
                async with http.get(url.group(1) + "/api/x") as reply:
                    assert reply.status == 200
        # Its own lines must set nothing off: no restart within several debounce periods
        # (the old code restarted about six times a second here).
        assert not await eventually(lambda: "files changed" in out.read_text(), 2)
        (tmp_path / "handler.py").write_text("# a real change\n")
        assert await eventually(lambda: "reloaded: 1 started" in out.read_text(), 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), WAIT)
    restarts = [line for line in out.read_text().splitlines() if "files changed" in line]
    assert len(restarts) == 1, restarts


@contextlib.asynccontextmanager
async def watching(path: Path, cwd: Path, *more: str) -> AsyncIterator[tuple[Cli, int]]:
    """`local-lambdas --watch` on `path`, run from `cwd`, once its process `svc` is ready (its
    pid given) and the files are watched; stopped at the block's end with SIGTERM, which
    must end it cleanly."""
    async with cli(path.name, "--bind", "127.0.0.1:0", "--watch", *more, cwd=cwd) as run:
        first = int((await run.expect(r"svc: ready .*\(pid (\d+)")).group(1))
        await run.expect(r"watching ")
        yield run, first
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0


async def test_watch_builds_before_a_restart_and_keeps_serving_when_it_fails(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    (tmp_path / "BUILD_OK").write_text("")
    build = "echo building; test -f BUILD_OK"
    path = write_manifest(process_xml("svc", "/api/*", extra=f"<build>{build}</build>"))
    async with watching(path, tmp_path, "--watch-include", "*.go") as (run, first):
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        assert any(line.startswith("svc build") and "building" in line for line in run.lines)
        # Not *.go: not watched, so no restart within several debounce periods.
        (tmp_path / "notes.txt").write_text("x")
        (tmp_path / "main.go").write_text("package main // 1\n")
        await run.expect(r"files changed: restarting svc")
        second = int((await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")).group(1))
        assert second != first
        # A build that fails: the running instance keeps serving.
        (tmp_path / "BUILD_OK").unlink()
        (tmp_path / "main.go").write_text("package main // 2\n")
        await run.expect(r"svc build: task failed")
        await run.expect(r"reload: svc did not become ready .*its <build> failed.*the running one")
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/api/pid") as reply:
                assert reply.status == 200 and int(await reply.text()) == second
    assert len([line for line in run.lines if "files changed" in line]) == 2, run.lines


async def test_watch_is_not_set_off_by_what_its_own_restart_writes(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    # A <build> that writes into the folder watched, as `go build -o server .` does, and a
    # child's database beside its code.
    build = "cat main.src > server.out; date > built.txt"
    path = write_manifest(process_xml("svc", "/api/*", extra=f"<build>{build}</build>"))
    (tmp_path / "main.src").write_text("1")
    async with watching(path, tmp_path) as (run, first):
        (tmp_path / "db.sqlite3").write_text("rows")
        (tmp_path / "main.src").write_text("2")
        await run.expect(r"files changed: restarting svc \(main.src\)$")
        second = (await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")).group(1)
        # Its build's output sets nothing off: no restart within several debounce periods
        # (the old code restarted about five times a second here, for ever).
        assert not await eventually(
            lambda: sum("files changed" in line for line in run.lines) > 1, 2
        )
        (tmp_path / "main.src").write_text("3")  # and the next edit restarts it again
        await run.expect(rf"svc: ready .*\(pid (?!{first},|{second},)(\d+)")
    assert (tmp_path / "server.out").read_text() == "3"
    assert sum("files changed" in line for line in run.lines) == 2, run.lines


async def test_watch_is_not_set_off_by_what_the_first_build_writes(
    write_manifest: WriteManifest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The run's first <build> writes into the folder watched once watching has begun (a
    slow `go build -o server .`): that restarted the process once as it first started."""
    gate = tmp_path_factory.mktemp("gate") / "go"  # (outside the folder watched)
    build = f"until [ -e {gate} ]; do sleep 0.05; done; date > built.txt"
    path = write_manifest(process_xml("svc", "/api/*", extra=f"<build>{build}</build>"))
    async with cli(path.name, "--bind", "127.0.0.1:0", "--watch", cwd=tmp_path) as run:
        await run.expect(r"watching ")
        gate.write_text("")
        first = (await run.expect(r"svc: ready .*\(pid (\d+)")).group(1)
        assert (tmp_path / "built.txt").exists()
        (tmp_path / "main.src").write_text("an edit")  # the first change it acts on
        assert (await run.expect(r"files changed: .*")).group(0).endswith("svc (main.src)")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    assert sum("files changed" in line for line in run.lines) == 1, run.lines


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
async def test_watch_sees_a_second_edit_saved_while_the_first_ones_build_runs(
    write_manifest: WriteManifest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A second file saved while the <build> the first set off runs (a slow `go build`) is
    an edit when git tracks it: it was taken for the build's output, and the server ran
    without it until the next save. What the build writes (untracked) still restarts
    nothing."""
    gate = tmp_path_factory.mktemp("gate")  # (outside the folder watched)
    build = (
        f"touch {gate}/building; until [ ! -e {gate}/hold ]; do sleep 0.05; done; "
        "cat main.src handler.src > server.out"
    )
    path = write_manifest(process_xml("svc", "/api/*", extra=f"<build>{build}</build>"))
    for name in ("main.src", "handler.src"):
        (tmp_path / name).write_text("1")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "main.src", "handler.src")
    async with watching(path, tmp_path) as (run, first):
        (gate / "hold").write_text("")
        (gate / "building").unlink()
        (tmp_path / "main.src").write_text("2")
        await run.expect(r"files changed: restarting svc \(main.src\)$")
        assert await eventually((gate / "building").exists, WAIT)
        (tmp_path / "handler.src").write_text("2")  # while the build runs
        (gate / "hold").unlink()
        await run.expect(r"files changed: restarting svc \(handler.src\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")
        assert not await eventually(
            lambda: sum("files changed" in line for line in run.lines) > 2, 2
        )
    assert (tmp_path / "server.out").read_text() == "22"


@pytest.mark.skipif(not _compat.IS_LINUX, reason="work is measured from /proc")
async def test_watch_starts_anew_when_a_file_is_saved_again_while_its_replacement_compiles(
    write_manifest: WriteManifest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A typo fixed while the first save's replacement compiles: the reload waited for that
    replacement (3.5 s here, minutes for a large `cargo run`), then restarted for the second
    save and compiled again. The wait for the older one is cut short, and the newer starts
    at once; the running one serves meanwhile."""
    path = write_manifest(compiles_again(tmp_path_factory.mktemp("compiler")))
    code = tmp_path / "main.src"
    code.write_text("1")
    async with watching(path, tmp_path) as (run, first):
        code.write_text("2")
        await run.expect(r"files changed: restarting svc \(main.src\)$")
        await run.expect(r"svc: starting; ready once")  # its replacement compiles
        code.write_text("3")
        said = "its file was saved again as it started; the newer one starts instead"
        await run.expect(rf"reload: svc: {said}")
        await run.expect(r"files changed: restarting svc \(main.src\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")
    starts = [line for line in run.lines if "svc: starting" in line]
    assert len(starts) == 3, run.lines  # the first, the one cut short, the newer one


async def test_watch_leaves_a_process_that_reloads_itself_alone(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """A Vite dev server (or nodemon, uvicorn --reload) reloads itself as its files change:
    --watch restarted it too, for every save, so the page lost its hot update and the
    server was down while it started again. <watch>off</watch> leaves it alone, and its
    files restart no other process; a change to the manifest's other processes still does.
    One whose command says it reloads itself (here a --reload the child ignores) but whose
    <watch> is on is named at the start, with the fix."""
    web = tmp_path / "web"
    web.mkdir()
    path = write_manifest(
        process_xml("svc", "/api/*", args=("--reload",)),
        process_xml("web", "/web/*", args=("--reload",),
                    extra=f"<working_dir>{web}</working_dir><watch>off</watch>"),
    )  # fmt: skip
    async with watching(path, tmp_path) as (run, first):
        advised = [line for line in run.lines if "reloads it as its files change" in line]
        assert len(advised) == 1 and advised[0].startswith("local-lambdas | svc: `"), run.lines
        assert advised[0].endswith(
            "behave.py --reload` reloads it as its files change, and --watch would restart it "
            "too, cutting that reload short; add <watch>off</watch> to its <process> to leave "
            "its reloading to it"
        )
        (web / "main.js").write_text("console.log('saved')\n")  # the dev server's own file
        (tmp_path / "handler.src").write_text("changed")
        await run.expect(r"files changed: restarting svc \(handler.src\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")
        assert not await eventually(
            lambda: any("restarting web" in line for line in run.lines), 1
        ), run.lines


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
async def test_watch_follows_a_git_checkout_of_the_code_and_the_manifest(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """`git checkout` (or `git pull`) deletes each file it changes and writes it anew: in
    one batch of changes, the file went and came back, which was taken for a temporary
    file written and renamed: a branch switch that changed the code and the manifest was
    not seen at all. It restarts the process and reloads the manifest, once."""
    code = tmp_path / "handler.src"
    code.write_text("1")
    path = write_manifest(process_xml("svc", "/api/*"))
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    who = ("-c", "user.name=t", "-c", "user.email=t@example.com")  # (CI may have none)
    git(tmp_path, *who, "commit", "-qm", "one")
    git(tmp_path, "checkout", "-qb", "two")
    code.write_text("2")
    write_manifest(process_xml("svc", ["/api/*", "/v2/*"]))
    git(tmp_path, *who, "commit", "-qam", "two")
    git(tmp_path, "checkout", "-q", "main")
    async with watching(path, tmp_path) as (run, first):
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        git(tmp_path, "checkout", "-q", "two")
        await run.expect(r"reloading ")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")
        await run.expect(r"reloaded: 1 started")
        async with aiohttp.ClientSession() as http, http.get(url + "/v2/x") as reply:
            assert reply.status == 200
        assert not await eventually(lambda: sum("reloading" in line for line in run.lines) > 1, 1)


async def test_watch_sees_an_edit_while_a_child_hangs_as_its_dependent_waits(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """An edit while the run's first start is held up (a child that never listens, which
    another depends on) restarts it: the fix saved meanwhile was lost when everything until
    the first start was over counted as its own doing."""
    hangs = (
        f"<process><id>hangs</id><executable>{PYTHON}</executable><arg>-S</arg><arg>-c</arg>"
        "<arg>import time; time.sleep(60)</arg><route>/h/*</route>"
        "<communication_mode>http</communication_mode>"
        "<startup_timeout>60s</startup_timeout></process>"
    )
    path = write_manifest(
        hangs, process_xml("after", "/a/*", extra="<depends_on>hangs</depends_on>")
    )
    async with cli(path.name, "--bind", "127.0.0.1:0", "--watch", cwd=tmp_path) as run:
        await run.expect(r"watching ")
        await run.expect(r"hangs: starting")
        (tmp_path / "fix.src").write_text("the fix")
        assert (await run.expect(r"files changed: .*")).group(0).endswith("hangs (fix.src)")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0


async def test_watch_is_not_set_off_by_what_a_starting_worker_writes(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """A worker (mode none) that writes as it starts (a generator's output, a scheduler's
    state: here a stamp, new bytes each time) wrote after it was READY, which a worker was
    as soon as it ran: each restart's write set off the next, for ever (22 restarts in 7 s).
    It is READY once it has run a moment, so the write is its restart's doing."""
    generate = (
        "import os, sys, time\n"
        "time.sleep(0.2)\n"
        "if os.path.exists('go'):\n"
        "    open('out.txt', 'w').write(str(time.time()))\n"
        "print('generated', flush=True)\n"
        "while True: time.sleep(1)\n"
    )
    (tmp_path / "gen.py").write_text(generate)
    path = write_manifest(worker_xml("svc", "gen.py"))
    async with watching(path, tmp_path) as (run, first):
        (tmp_path / "go").write_text("")  # an edit: the next start writes its output
        await run.expect(r"files changed: restarting svc \(go\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first};)(\d+)")
        assert await eventually((tmp_path / "out.txt").exists, 5)
        # Its output sets nothing off: no restart within several debounce periods.
        assert not await eventually(
            lambda: sum("files changed" in line for line in run.lines) > 1, 2
        ), run.lines


async def test_watch_is_not_set_off_by_what_tools_write_in_hidden_folders(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """Next.js's dev server writes .next/ as it compiles a page, long after it started (it
    restarted for ever, outside a git repository); an editor writes .vscode/. A hidden
    file beside the code (.flaskenv) is the program's and restarts it."""
    path = write_manifest(process_xml("svc", "/api/*"))
    for folder in (".next/server", ".vscode"):
        (tmp_path / folder).mkdir(parents=True)
    async with watching(path, tmp_path) as (run, first):
        (tmp_path / ".next/server/pages-manifest.json").write_text("{}")
        (tmp_path / ".vscode/settings.json").write_text("{}")
        (tmp_path / ".flaskenv").write_text("FLASK_DEBUG=1")
        await run.expect(r"files changed: restarting svc \(\.flaskenv\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)")
    assert sum("files changed" in line for line in run.lines) == 1, run.lines


async def test_watch_is_not_set_off_by_a_virtualenv_whatever_its_name(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """`python -m venv venv` (the Python documentation's name; watchfiles knows `.venv`) or
    any other name in the working_dir, then `pip install` into it, restarted the child at
    each batch of files written: a folder holding a pyvenv.cfg is a virtualenv, whatever its
    name, and the program's code is not there."""
    path = write_manifest(process_xml("svc", "/api/*"))
    async with watching(path, tmp_path) as (run, first):
        for name in ("venv", "my-env"):
            venv = tmp_path / name
            made = await asyncio.create_subprocess_exec(PYTHON, "-m", "venv", "--without-pip", venv)
            assert await made.wait() == 0
            (venv / "lib" / "installed.py").write_text("x = 1")  # as pip install writes
        (tmp_path / "main.py").write_text("print()")
        await run.expect(r"files changed: restarting svc \(main.py\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)")
    assert sum("files changed" in line for line in run.lines) == 1, run.lines


async def test_watch_is_not_set_off_by_a_file_written_again_as_it_was(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """`tsc -w` beside `node --watch dist/index.js` writes its output as it starts, after its
    server is ready: each start's rewrite restarted it, for ever. A file written again with
    the bytes it held is no edit; written with others, it is one (once)."""
    # As tsc -w: the output written again a moment after the server listens, and after its
    # restart is over (the old instance stopped: what changes before is the restart's own
    # doing, watch/edits.py's Doings), with room for a loaded machine's slow stop.
    serve = f"{PYTHON} {CHILDREN / 'behave.py'}"
    compile_ = f"(sleep 1; cp main.src built.out; echo compiled) &amp; exec {serve}"
    path = write_manifest(
        "<process><id>svc</id><executable>sh</executable><arg>-c</arg>"
        f"<arg>{compile_}</arg><route>/api/*</route></process>"
    )
    for name in ("main.src", "built.out"):
        (tmp_path / name).write_text("1")
    async with watching(path, tmp_path) as (run, first):
        await run.expect(r"svc +\| compiled")  # the same bytes: no restart
        (tmp_path / "main.src").write_text("2")
        await run.expect(r"files changed: restarting svc \(main.src\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)")
        # Its next start compiles "2" anew: one restart for it, then none.
        await run.expect(r"files changed: restarting svc \(built.out\)$")
        assert not await eventually(
            lambda: sum("files changed" in line for line in run.lines) > 2, 2
        )
    assert sum("files changed" in line for line in run.lines) == 2, run.lines


async def test_watch_leaves_a_process_not_started_alone(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """With --only, a change in the folder of a process not started restarts nothing (it
    said "restarting b" and counted b's new, unstarted pool as started)."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    path = write_manifest(
        process_xml("a", "/a/*", extra="<working_dir>a</working_dir>"),
        process_xml("b", "/b/*", extra="<working_dir>b</working_dir>"),
    )
    args = (path.name, "--bind", "127.0.0.1:0", "--watch", "--only", "a")
    async with cli(*args, cwd=tmp_path) as run:
        await run.expect(r"a: ready")
        await run.expect(r"watching ")
        (tmp_path / "b" / "b.txt").write_text("x")  # first: seen in the same batch, or before
        (tmp_path / "a" / "a.txt").write_text("x")
        await run.expect(r"files changed: restarting a \(")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    restarts = [line for line in run.lines if "files changed" in line]
    assert len(restarts) == 1 and "restarting a (" in restarts[0], restarts


@pytest.mark.parametrize("kind", ["routed", "worker"])
async def test_a_stop_during_a_rebuild_stops_the_build_and_starts_nothing(
    write_manifest: WriteManifest, tmp_path: Path, kind: str
) -> None:
    """A worker's rebuild runs while its running copy works on (reloads.py: built ahead of
    the stop that makes room for its replacement); a stop ends it the same way."""
    # The rebuild a change sets off is a long one; the comment names its shell's process.
    marker = f"build-{os.getpid()}-{time.monotonic_ns()}"
    build = f"<build>test ! -f SLOW || {{ echo slow build; sleep 60; }} # {marker}</build>"
    sleeps = ("-c", "import time; time.sleep(60)")
    process = (
        process_xml("svc", "/api/*", extra=build)
        if kind == "routed"
        else worker_xml("svc", *sleeps, extra=build)
    )
    path = write_manifest(process)
    async with cli(path.name, "--bind", "127.0.0.1:0", "--watch", cwd=tmp_path) as run:
        running = int((await run.expect(r"svc: ready .*\(pid (\d+)")).group(1))
        await run.expect(r"watching ")
        (tmp_path / "SLOW").write_text("")
        await run.expect(r"svc build +\| slow build")
        assert processes_running(marker) and alive(running)  # (a worker too works on)
        run.proc.send_signal(signal.SIGINT)
        # Within WAIT (20 s), not after the build's 60 s (the old code waited for it, then
        # started the new instance, then stopped it).
        assert await run.finish() == 0
    stopping = next(i for i, line in enumerate(run.lines) if "stopping:" in line)
    assert not any("svc: starting" in line for line in run.lines[stopping:]), run.lines
    assert not processes_running(marker) and await gone(running)


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


async def test_second_ctrl_c_stops_at_once_and_leaves_nothing(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """The child, and a process it started that ignores SIGTERM (which no parent-death
    signal reaches), are gone as the proxy exits, not after the watchdog's grace."""
    helper_pid = tmp_path / "helper.pid"
    helper_code = (
        "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"open({str(helper_pid)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    stubborn = behave_after(
        tmp_path / "stubborn.py",
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)  # makes the stop wait its full grace\n"
        f"import subprocess; subprocess.Popen([sys.executable, '-S', '-c', {helper_code!r}])\n",
    )
    path = write_manifest(
        f"<process><id>stubborn</id><executable>{sys.executable}</executable>"
        f"<arg>{stubborn}</arg><route>/s/*</route><stop_timeout>60s</stop_timeout></process>"
    )
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        found = await run.expect(r"stubborn: ready .*\(pid (\d+), (\S+)\)")
        pid, socket_dir = int(found.group(1)), Path(found.group(2)).parent
        assert await eventually(lambda: helper_pid.exists() and helper_pid.read_text() != "")
        helper = int(helper_pid.read_text())
        run.proc.send_signal(signal.SIGINT)
        await run.expect(r"stubborn: stopping")
        when: dict[str, float] = {}

        async def note(name: str, event: Awaitable[object]) -> None:
            await event
            when[name] = time.monotonic()

        noted = [asyncio.ensure_future(note("proxy", run.proc.wait())),
                 asyncio.ensure_future(note("helper", gone(helper)))]  # fmt: skip
        assert await run.stop_at_once(signal.SIGINT) == 130
        await asyncio.gather(*noted)
    assert any("second stop signal" in line for line in run.lines)
    assert await gone(pid)
    # Killed by the proxy as it exits, not by the watchdog after its grace (2 s for one that
    # ignores SIGTERM): nothing of the run holds a port once the proxy is gone.
    if _compat.IS_LINUX:
        assert when["helper"] - when["proxy"] < 0.5, when
    assert await eventually(lambda: not socket_dir.exists())


@pytest.mark.skipif(_compat.IS_WINDOWS, reason="POSIX signals")
async def test_a_stop_signal_sent_twice_at_once_is_one_stop(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """`timeout` sends its SIGTERM to the program, then to the program's process group, and
    a wrapper may pass on a Ctrl+C the terminal sent the whole group: one stop delivered
    twice, not a second one, which would kill the children with no graceful stop."""
    graceful = behave_after(
        tmp_path / "graceful.py",
        "def stop(*_):\n"
        "    time.sleep(0.3)  # a graceful stop's work\n"
        "    print('cleaned up', flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n",
    )
    path = write_manifest(
        f"<process><id>graceful</id><executable>{sys.executable}</executable>"
        f"<arg>{graceful}</arg><route>/g/*</route></process>"
    )
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        await run.expect(r"graceful: ready")
        await signal_twice_at_once(run.proc.pid, signal.SIGTERM)
        assert await run.finish() == 0
    assert not any("second stop signal" in line for line in run.lines), run.lines
    assert any("cleaned up" in line for line in run.lines), run.lines


@pytest.mark.skipif(_compat.IS_WINDOWS, reason="POSIX signals")
async def test_runs_command_is_passed_a_stop_sent_twice_at_once_once(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """The same for `run`'s command: a command under `timeout` got the SIGTERM already."""
    counts, told = tmp_path / "counts.py", tmp_path / "told"
    counts.write_text(
        "import os, signal, sys, time\n"
        "got = []\n"
        "signal.signal(signal.SIGTERM, lambda *_: got.append(print('got it', flush=True)))\n"
        "print('armed', flush=True)\n"
        "deadline = time.monotonic() + 20\n"
        f"while not os.path.exists({str(told)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "print(f'SIGTERMs: {len(got)}', flush=True)\n"
    )
    path = write_manifest(process_xml("svc", "/api/*"))
    async with cli("run", str(path), "--bind", "127.0.0.1:0", "--", sys.executable, "-S",
                   str(counts)) as run:  # fmt: skip
        url = (await run.expect(r"listening on (\S+)"))[1]
        await run.expect(r"armed")
        await signal_twice_at_once(run.proc.pid, signal.SIGTERM)
        await run.expect(r"got it")
        # Answered, the proxy has taken the second signal (and passed it on, or not).
        async with aiohttp.ClientSession() as http, http.get(url + "/_/health") as reply:
            assert reply.status == 200
        told.touch()
        assert await run.finish() == 0
    assert "SIGTERMs: 1" in run.lines, run.lines


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


def test_what_watch_include_lets_through(tmp_path: Path) -> None:
    from watchfiles import Change

    from local_lambdas.watch.paths import Filter

    manifest = tmp_path / "manifest.xml"
    only_go = Filter((), tmp_path / "sockets", ["*.go"], manifest)
    for path, passed in ((tmp_path / "main.go", True), (tmp_path / "notes.txt", False),
                         (manifest, True), (tmp_path / ".env", True),
                         (tmp_path / "server.log", False)):  # fmt: skip
        assert only_go(Change.modified, str(path)) is passed, path
    everything = Filter((), tmp_path / "sockets", [], manifest)
    assert everything(Change.modified, str(tmp_path / "notes.txt"))

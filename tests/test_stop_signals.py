"""Stop signals as users send them: Ctrl+C and SIGHUP while a run loads, a terminal closed,
a stop passed on to `run`'s command, a second stop while one is under way."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

import aiohttp
import pytest

from local_lambdas import _compat
from tests.helpers import (
    PYTHON,
    Cli,
    WriteManifest,
    behave_after,
    cli,
    eventually,
    gone,
    process_xml,
    signal_twice_at_once,
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

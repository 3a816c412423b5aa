"""Every difference between platforms lives here (and, for pipes, in the Windows transport)."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    from asyncio import timeout as timeout
else:  # pragma: no cover - the same API, from the package asyncio.timeout came from
    from async_timeout import timeout as timeout

IS_WINDOWS = sys.platform == "win32"
IS_LINUX = sys.platform.startswith("linux")

# sun_path is 108 bytes on Linux and 104 on the BSDs and macOS, both including the final NUL.
MAX_UNIX_PATH = 107 if IS_LINUX else 103

_PR_SET_PDEATHSIG = 1
# Loaded now, not in the forked child, where only async-signal-safe work should happen.
_libc = ctypes.CDLL(None, use_errno=True) if IS_LINUX else None


def pipe_address(directory: Path, name: str, *, plain: bool) -> str:
    r"""Where a pipe-mode child listens. POSIX: a socket file in `directory`. Windows: a named
    pipe, \\.\pipe\<run>-<name> (unguessable per run), or \\.\pipe\<name> when `plain`,
    as the earlier tool named them."""
    if IS_WINDOWS:
        return _PIPE_PREFIX + (name if plain else f"{directory.name}-{name}")
    return str(directory / name)


_PIPE_PREFIX = "\\\\.\\pipe\\"


def remove_stale(address: str) -> None:
    """Remove a socket file a crashed child left (POSIX; Windows pipes go with their server)."""
    if not IS_WINDOWS and Path(address).is_socket():
        Path(address).unlink(missing_ok=True)


def pipe_listening(address: str) -> bool | None:
    """Whether a pipe-mode child listens at `address`, without connecting; None: unknown."""
    if sys.platform == "win32":
        import pywintypes
        import win32pipe

        try:
            win32pipe.WaitNamedPipe(address, 1)
        except pywintypes.error as exc:
            return exc.winerror == 121  # a timeout: the pipe exists, its instances are busy
        return True
    return unix_listening(Path(address))


P = TypeVar("P", bound=asyncio.Protocol)


async def connect_pipe(address: str, protocol: Callable[[], P]) -> tuple[asyncio.Transport, P]:
    """A connection to a pipe-mode child, driven by `protocol()` (raises OSError when there is
    no child listening)."""
    if sys.platform == "win32":
        from local_lambdas.transports.winpipe import connect_pipe as connect_named_pipe

        return await connect_named_pipe(address, protocol)
    return await asyncio.get_running_loop().create_unix_connection(protocol, address)


def is_end_of_pipe(exc: OSError) -> bool:
    """Whether a read error only means the child closed its end of the pipe. Windows: a child
    that disconnects its pipe instance (DisconnectNamedPipe) gives ERROR_PIPE_NOT_CONNECTED,
    or ERROR_BROKEN_PIPE, rather than end-of-file."""
    return IS_WINDOWS and getattr(exc, "winerror", None) in (109, 233)


def on_signals(
    loop: asyncio.AbstractEventLoop, stop: Callable[[], None], reload: Callable[[], None]
) -> Callable[[], None]:
    """Call `stop` on Ctrl+C or SIGTERM and `reload` on SIGHUP; returns the undo.
    Windows has no SIGHUP and no loop signal handlers: Ctrl+C and Ctrl+Break stop there."""
    if sys.platform == "win32":
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGBREAK)}
        for sig in previous:
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop))

        def undo_windows() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return undo_windows
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    loop.add_signal_handler(signal.SIGHUP, reload)

    def undo() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    return undo


def socket_base_dir() -> Path:
    """Where per-run socket directories are made: the user's runtime dir, else the temp dir."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK | os.X_OK):
        return Path(runtime)
    return Path(tempfile.gettempdir())


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the proxy dies, even by SIGKILL, the kernel
    # sends the child SIGKILL. Grandchildren are reached through the process group at stop.
    assert _libc is not None
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the proxy died before prctl took effect
        os._exit(1)


def spawn_options() -> dict[str, Any]:
    """Keyword arguments for asyncio.create_subprocess_exec: own process group, die with us."""
    if sys.platform == "win32":
        import subprocess

        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    preexec: Callable[[], None] | None = _die_with_parent if IS_LINUX else None
    return {"start_new_session": True, "preexec_fn": preexec}


def spawned(pid: int) -> None:
    """Right after a child starts. Windows has no process groups to kill and no parent-death
    signal: each child gets a job object of its own, which kills its whole tree when it is
    terminated or when its last handle closes, as it does when the proxy dies, however."""
    if sys.platform == "win32":
        import win32api
        import win32con
        import win32job

        job = win32job.CreateJobObject(None, "")
        limits = win32job.QueryInformationJobObject(job, win32job.JobObjectExtendedLimitInformation)
        limits["BasicLimitInformation"]["LimitFlags"] |= win32job.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        win32job.SetInformationJobObject(job, win32job.JobObjectExtendedLimitInformation, limits)
        access = win32con.PROCESS_SET_QUOTA | win32con.PROCESS_TERMINATE
        process = win32api.OpenProcess(access, False, pid)
        try:
            win32job.AssignProcessToJobObject(job, process)
        finally:
            win32api.CloseHandle(process)
        _jobs[pid] = job


def reaped(pid: int) -> None:
    """After a child's group is gone: let go of what `spawned` kept for it."""
    job = _jobs.pop(pid, None)
    if job is not None:
        job.Close()


_jobs: dict[int, Any] = {}  # Windows: child pid -> its job object handle


def stop_group(pid: int) -> bool:
    """Ask the process group led by `pid` to stop (SIGTERM; Windows: CTRL_BREAK_EVENT to the
    child's console process group). False when no such group is left."""
    if sys.platform == "win32":
        try:
            os.kill(pid, signal.CTRL_BREAK_EVENT)
        except (OSError, SystemError):
            # Without a console shared with the child (a service, CI, Wine) there is no
            # Ctrl+Break to send: the caller goes on to kill_group.
            return False
        return True
    return _killpg(pid, signal.SIGTERM)


def kill_group(pid: int) -> bool:
    """Kill the process group led by `pid` (SIGKILL; Windows: terminate the child's job object,
    and with it every descendant). False when no such group is left."""
    if sys.platform == "win32":
        job = _jobs.get(pid)
        if job is None:
            return False
        import win32job

        win32job.TerminateJobObject(job, 1)
        return True
    return _killpg(pid, signal.SIGKILL)


def _killpg(pid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # macOS refuses killpg on a group whose leader is a zombie; the leader is reaped by us.
        return False
    return True


def group_alive(pid: int) -> bool:
    """Whether any process is left in the group led by `pid`."""
    if sys.platform == "win32":
        job = _jobs.get(pid)
        if job is None:
            return False
        import win32job

        accounting = win32job.QueryInformationJobObject(
            job, win32job.JobObjectBasicAccountingInformation
        )
        return bool(accounting["ActiveProcesses"])
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def process_running(pid: int) -> bool:
    """Whether `pid` still runs: False once it has exited, even before it is reaped."""
    if not hasattr(os, "waitid"):
        return True  # no way to peek without reaping; the caller's wait will tell
    try:
        # WNOWAIT looks without reaping: asyncio's child watcher still gets the exit status.
        exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False  # already reaped
    return exited is None


def tcp_listening(host: str, port: int) -> bool | None:
    """Whether a TCP socket listens on `host`:`port` (IPv4), without connecting to it.

    The same reason as unix_listening: a child written for the earlier tool may fail on an
    empty connection. Linux lists sockets in /proc/net/tcp; elsewhere this returns None.
    """
    if not IS_LINUX:
        return None
    try:
        wanted = {f"{_hex_ipv4(host)}:{port:04X}", f"00000000:{port:04X}"}
        with open("/proc/net/tcp", "rb") as table:
            next(table)
            for row in table:
                fields = row.split()
                # sl local_address rem_address st ...; state 0A is LISTEN.
                if fields[3] == b"0A" and fields[1].decode() in wanted:
                    return True
    except (OSError, ValueError):
        return None
    return False


def _hex_ipv4(host: str) -> str:
    """/proc/net/tcp's spelling of an IPv4 address: the four bytes, little-endian, in hex."""
    return "".join(f"{int(part):02X}" for part in reversed(host.split(".")))


def unix_listening(path: Path) -> bool | None:
    """Whether a Unix socket is listening at `path`, without connecting to it.

    Children written for the earlier tool may treat any connection as a request and fail on an
    empty one, so readiness must not connect. Linux lists listening sockets in /proc/net/unix;
    elsewhere this returns None and the caller falls back to a connect probe.
    """
    if not IS_LINUX:
        return None
    target = os.fsencode(path)
    try:
        with open("/proc/net/unix", "rb") as table:
            next(table)
            for row in table:
                fields = row.split()
                # Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is __SO_ACCEPTCON.
                if len(fields) >= 8 and fields[7] == target and int(fields[3], 16) & 0x10000:
                    return True
    except OSError:
        return None
    return False

"""Every difference between platforms lives here (and, for pipes, in the Windows transport)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from local_lambdas import sockdiag
from local_lambdas.orphans import SPAWN_MARK as SPAWN_MARK
from local_lambdas.orphans import children, group_running, unmarked
from local_lambdas.orphans import kill_marked as kill_marked
from local_lambdas.orphans import marked as marked
from local_lambdas.orphans import started_at as started_at

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


def shell(command: str) -> tuple[str, tuple[str, ...]]:
    """The platform's shell running `command`: sh -c, or cmd /c on Windows."""
    if IS_WINDOWS:
        return os.environ.get("COMSPEC", "cmd.exe"), ("/c", command)
    return "/bin/sh", ("-c", command)


def which(name: str, path: str | None = None) -> str | None:
    """`name` on `path` (default: PATH). On Windows a python.org install has `python` but no
    `python3`, which manifests written on POSIX name: that one falls back to `python`."""
    found = shutil.which(name, path=path)
    if found is None and IS_WINDOWS and name.lower() in ("python3", "python3.exe"):
        found = shutil.which("python", path=path)
    return found


def remove_stale(address: str) -> None:
    """Remove a socket file a crashed child left (POSIX; Windows pipes go with their server).
    Raises OSError when something else is at the path, or it belongs to another user: with
    a shared --socket-dir, that user's program may be listening there."""
    if IS_WINDOWS:
        return
    path = Path(address)
    try:
        status = path.lstat()
    except FileNotFoundError:
        return
    if status.st_uid != os.getuid():
        raise OSError(errno.EACCES, f"{address} belongs to another user (uid {status.st_uid}); "
                      "choose another --socket-dir or <pipe_name>")  # fmt: skip
    if not stat.S_ISSOCK(status.st_mode):
        raise OSError(errno.EEXIST, f"{address} exists and is not a socket; move it away")
    holders = _listening_at(address)
    if holders is not None:
        raise OSError(errno.EADDRINUSE, f"{address} is in use: {holders} listens there (another "
                      "local-lambdas with the same --socket-dir?); stop it, or choose another "
                      "--socket-dir or <pipe_name>")  # fmt: skip
    path.unlink(missing_ok=True)


def _listening_at(address: str) -> str | None:
    """Who listens on the Unix socket at `address` ("pid 12 (its command)", or "a program"
    where that cannot be told); None: nobody, the file is stale."""
    inodes = _unix_listeners(os.fsencode(address))
    if inodes is None:  # no tables to read: a listener accepts a connection
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(address)
            except OSError:
                return None
        return "a program"
    if not inodes:
        return None
    pid = _holder(inodes, (int(e.name) for e in os.scandir("/proc") if e.name.isdigit()))
    if pid is None:
        return "a program"
    command = command_line(pid)
    return f"pid {pid}" + (f" ({command[:80]})" if command else "")


def pipe_listening(address: str, owners: Callable[[], Iterable[int]]) -> Listener | None:
    """Who listens on a pipe-mode child's address, without connecting; None: unknown here.
    `owners()` gives the pids that count as the child (its process, then its descendants),
    read only as far as needed."""
    if sys.platform == "win32":
        import pywintypes
        import win32pipe

        try:
            win32pipe.WaitNamedPipe(address, 1)
        except pywintypes.error as exc:
            # A timeout: the pipe exists, its instances are busy.
            return Listener(address) if exc.winerror == 121 else Listener("")
        return Listener(address)
    return _listener(_unix_listeners(os.fsencode(address)), address, owners)


P = TypeVar("P", bound=asyncio.Protocol)


def connect_pipe(
    address: str,
    protocol: Callable[[], P],
    owned: Callable[[int], bool] | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Awaitable[tuple[asyncio.Transport, P]]:
    """A connection to a pipe-mode child, driven by `protocol()` (raises OSError when there is
    no child listening). Windows: with `owned`, also when the pipe's server is a process that
    `owned(pid)` denies (readiness could not tell there without connecting; on POSIX it
    checked the socket's owner, see pipe_listening). A plain function returning the loop's
    own awaitable: the one-shot pipe connects per request, and a coroutine of this
    (interpreted) module would run on each; `loop` spares get_running_loop's getpid()."""
    if sys.platform == "win32":
        from local_lambdas.transports.winpipe import connect_pipe as connect_named_pipe

        return connect_named_pipe(address, protocol, owned)
    return (loop or asyncio.get_running_loop()).create_unix_connection(protocol, address)


# Linux's "acknowledge at once" socket option; 0 where there is none.
TCP_QUICKACK: int = getattr(socket, "TCP_QUICKACK", 0)


def acknowledge_now(transport: asyncio.BaseTransport | None) -> None:
    """Acknowledge what a TCP connection received at once, not after Linux's 40 ms delayed
    ACK: a peer that writes a message in two pieces without TCP_NODELAY (a client's head,
    then its body) holds the second until the first is acknowledged. Linux only (elsewhere
    nothing is done); for the rare path, since uvloop's socket object costs 8k instructions
    per option set."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if not TCP_QUICKACK or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):  # the connection closed meanwhile
        sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)


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


def hangup_stops() -> Callable[[], bool]:
    """Read before the loop takes SIGHUP: what tells, at a SIGHUP, whether the terminal this
    process ran in has closed (then it stops, as any program in that terminal does) rather
    than someone asking for a reload (`kill -HUP`). Never under nohup, which asked to outlive
    the terminal by starting it with SIGHUP ignored; never without a terminal (CI, a service)
    or on Windows."""
    if IS_WINDOWS or signal.getsignal(signal.SIGHUP) is signal.SIG_IGN or not _terminal():
        return lambda: False
    return lambda: not _terminal()


def _terminal() -> bool:
    """Whether this process has a controlling terminal that is there (a hung-up one is not)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:  # ENXIO: none, or it hung up
        return False
    os.close(fd)
    return True


def socket_base_dir() -> Path:
    """Where per-run socket directories are made: the user's runtime dir, else the temp dir."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK | os.X_OK):
        return Path(runtime)
    return Path(tempfile.gettempdir())


_OPEN_FILES_CAP = 65536
_open_files: tuple[int, int] | None = None  # the limits before raise_open_files_limit


def raise_open_files_limit() -> None:
    """POSIX: raise this process's soft limit on open files to its hard limit (at most
    65536), as Go programs do at start. Each client takes a descriptor, and one more for a
    pass-through child: the soft limit of 1024 that many desktops set is some 450 clients at
    once, after which new connections are refused. Children get the limit they would have
    had (spawn_options): programs built on select() break past descriptor 1023."""
    global _open_files
    if sys.platform == "win32" or _open_files is not None:
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _OPEN_FILES_CAP if hard == resource.RLIM_INFINITY else min(hard, _OPEN_FILES_CAP)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):
        return  # macOS may refuse above OPEN_MAX: keep what there is
    _open_files = (soft, hard)


def open_files() -> tuple[int, int] | None:
    """(descriptors open, the soft limit) of this process; None where it cannot be told
    cheaply (not Linux, no limit)."""
    if not IS_LINUX:
        return None
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        return len(os.listdir("/proc/self/fd")), soft
    except OSError:
        return None


def _child_setup() -> None:
    _restore_open_files()
    if IS_LINUX:
        _die_with_parent()


def _restore_open_files() -> None:
    # Runs in a child between fork and exec: nothing is imported here (another thread may
    # have held the import lock at the fork); raise_open_files_limit imported resource.
    if _open_files is not None:
        resource = sys.modules["resource"]
        resource.setrlimit(resource.RLIMIT_NOFILE, _open_files)


def command_options() -> dict[str, Any]:
    """Keyword arguments for asyncio.create_subprocess_exec for the command `run` starts: it
    is the user's, so it starts with the open-files limit it would have had (as Go restores
    it for what it executes), in our session, to get the terminal's Ctrl+C."""
    return {"preexec_fn": _restore_open_files} if _open_files is not None else {}


def _die_with_parent() -> None:
    # If the proxy dies, even by SIGKILL, the kernel sends the child SIGKILL. Grandchildren
    # are reached through the process group at stop.
    assert _libc is not None
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the proxy died before prctl took effect
        os._exit(1)


def spawn_options() -> dict[str, Any]:
    """Keyword arguments for asyncio.create_subprocess_exec: own process group, die with us."""
    if sys.platform == "win32":
        import subprocess

        # Suspended until `spawned` has put it in its job object: a child that starts its
        # own children at once (a .cmd wrapper's python) would otherwise have them outside.
        flags = subprocess.CREATE_NEW_PROCESS_GROUP
        if _nt_resume() is not None:
            flags |= _CREATE_SUSPENDED
        return {"creationflags": flags}
    needed = IS_LINUX or _open_files is not None
    return {"start_new_session": True, "preexec_fn": _child_setup if needed else None}


def started(pid: int) -> None:
    """Right after this process starts one (a child, the watchdog, `run`'s command): the rest
    of its children it adopted (`adopted`)."""
    _ours.add(pid)


def adopted(since: int | None) -> list[int]:
    """Linux: the running processes this one adopted as subreaper (their parent went: a
    daemon's double fork, `nginx` or `redis-server --daemonize yes`), started at `since` or
    later (clock ticks after boot, as orphans.started_at), without a mark (a daemon may
    clear its environment; a marked one is its own child's); none elsewhere, or with
    `since` None."""
    if since is None:
        return []
    return [pid for pid, at in _foreign_children() if (at or -1) >= since and unmarked(pid)]


def adopted_exited() -> list[int]:
    """Linux: the processes this one adopted (as `adopted`) that have exited and wait to be
    reaped."""
    return [pid for pid, at in _foreign_children() if at is None]


def _foreign_children() -> list[tuple[int, int | None]]:
    """Linux: this process's children, each with its start (None: exited), that only a
    daemon leaves: not started here (this process, a test's or an embedder's, may start
    others of its own) and in another session (a daemon makes its own)."""
    if not IS_LINUX:
        return []
    own_session = os.getsid(0)
    return [
        (pid, started_at(pid)) for pid in children(os.getpid())
        if pid not in _ours and _session(pid) != own_session
    ]  # fmt: skip


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def signal_strays(pids: list[int], *, hard: bool) -> list[int]:
    """POSIX: SIGTERM (`hard`: SIGKILL) each of `pids` (`adopted`'s), and the whole group of
    one that leads its own (a daemon's workers, which hold its port); those signalled."""
    if IS_WINDOWS:
        return []
    sig = signal.SIGKILL if hard else signal.SIGTERM
    sent = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid != os.getpgrp():
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
            sent.append(pid)
    return sent


_ours: set[int] = set()  # the processes this one started, while they run


def spawned(pid: int) -> None:
    """Right after a child starts. Windows has no process groups to kill and no parent-death
    signal: each child gets a job object of its own, which kills its whole tree when it is
    terminated or when its last handle closes, as it does when the proxy dies, however."""
    started(pid)
    if sys.platform == "win32":
        import win32api
        import win32con
        import win32job

        job = win32job.CreateJobObject(None, "")
        limits = win32job.QueryInformationJobObject(job, win32job.JobObjectExtendedLimitInformation)
        limits["BasicLimitInformation"]["LimitFlags"] |= win32job.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        win32job.SetInformationJobObject(job, win32job.JobObjectExtendedLimitInformation, limits)
        access = win32con.PROCESS_SET_QUOTA | win32con.PROCESS_TERMINATE | _PROCESS_SUSPEND_RESUME
        process = win32api.OpenProcess(access, False, pid)
        try:
            win32job.AssignProcessToJobObject(job, process)
            _jobs[pid] = job
        finally:
            resume = _nt_resume()
            if resume is not None:  # it was created suspended (spawn_options): let it run
                resume(int(process))
            win32api.CloseHandle(process)


_PROCESS_SUSPEND_RESUME = 0x0800
_CREATE_SUSPENDED = 0x0004  # not among subprocess's constants


def _nt_resume() -> Callable[[int], int] | None:
    """Windows: ntdll's NtResumeProcess (resumes every thread of a process), if there."""
    if sys.platform != "win32":
        return None
    resume: Callable[[int], int] | None = getattr(ctypes.windll.ntdll, "NtResumeProcess", None)
    return resume


def reaped(pid: int) -> None:
    """After a child's group is gone: let go of what `spawned` kept for it."""
    _ours.discard(pid)
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
    """Whether any process of the group led by `pid` still runs (Linux: reaping the adopted
    members that have exited)."""
    if sys.platform == "win32":
        job = _jobs.get(pid)
        if job is None:
            return False
        import win32job

        accounting = win32job.QueryInformationJobObject(
            job, win32job.JobObjectBasicAccountingInformation
        )
        return bool(accounting["ActiveProcesses"])
    return group_running(pid)


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


@dataclass(frozen=True)
class Listener:
    """What a readiness probe found: `address` to connect to ("" when nothing listens), and
    whether the listening socket belongs to someone other than the child."""

    address: str
    foreign: bool = False
    refused: str = ""  # what <ready_path> answered, when it was not a 2xx ("answered 404")

    def __bool__(self) -> bool:
        return bool(self.address) and not self.foreign


# /proc/net/tcp{,6} spellings of the addresses a local child may listen on: 0.0.0.0,
# 127.0.0.1, ::, ::1 and ::ffff:127.0.0.1.
_V6_LOOPBACK = "0" * 24 + "01000000"
_LOCAL_HOSTS = frozenset({"00000000", "0100007F", "0" * 32, _V6_LOOPBACK,
                          "0000000000000000FFFF00000100007F"})  # fmt: skip


def tcp_listening(port: int, owners: Callable[[], Iterable[int]]) -> Listener | None:
    """Who listens on TCP `port` on this machine's loopback, without connecting to it: a
    child written for the earlier tool may fail on an empty connection. IPv4 and IPv6,
    wildcard and loopback (a Node.js server that is given no host listens on `::`). Linux
    asks the kernel (sockdiag.py), else reads /proc/net/tcp and tcp6; elsewhere this
    returns None and the caller connects."""
    if not IS_LINUX:
        return None
    listeners = sockdiag.tcp_listeners(port)
    if listeners is None:
        listeners = _tcp_table_listeners(port)
    if listeners is None:
        return None
    inodes: list[int] = []
    takes_ipv4 = False  # whether 127.0.0.1 reaches a listener (else only [::1] does)
    for host, inode in listeners:
        if host in _LOCAL_HOSTS:
            inodes.append(inode)
            takes_ipv4 = takes_ipv4 or host != _V6_LOOPBACK
    if not inodes:
        return Listener("")
    return _listener(inodes, f"{'127.0.0.1' if takes_ipv4 else '[::1]'}:{port}", owners)


def _tcp_table_listeners(port: int) -> list[tuple[str, int]] | None:
    """sockdiag.tcp_listeners read from /proc/net/tcp and tcp6, where netlink is refused."""
    suffix = f":{port:04X}".encode()
    found = []
    try:
        for table in ("tcp", "tcp6"):
            with open(f"/proc/net/{table}", "rb") as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    # sl local_address rem_address st ... inode; state 0A is LISTEN.
                    if fields[3] == b"0A" and fields[1].endswith(suffix):
                        found.append((fields[1][: -len(suffix)].decode(), int(fields[9])))
    except (OSError, ValueError, IndexError):
        return None
    return found


def _unix_listeners(path: bytes) -> list[int] | None:
    """The inodes of the Unix sockets listening at `path` (Linux); None: unknown."""
    if not IS_LINUX:
        return None
    found = sockdiag.unix_listeners(path)
    return found if found is not None else _unix_table_listeners(path)


def _unix_table_listeners(path: bytes) -> list[int] | None:
    """sockdiag.unix_listeners read from /proc/net/unix, where netlink is refused."""
    found = []
    try:
        with open("/proc/net/unix", "rb") as table:
            next(table)
            for row in table:
                fields = row.split()
                # Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is __SO_ACCEPTCON.
                if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
                    found.append(int(fields[6]))
    except (OSError, ValueError):
        return None
    return found


def _listener(
    inodes: list[int] | None, address: str, owners: Callable[[], Iterable[int]]
) -> Listener | None:
    if inodes is None:
        return None
    if not inodes:
        return Listener("")
    owned = _holder(inodes, owners()) is not None
    return Listener(address) if owned else Listener(address, foreign=True)


def _holder(inodes: list[int], pids: Iterable[int]) -> int | None:
    """The first of `pids` (read as far as needed) holding one of the sockets `inodes`
    (Linux, /proc/PID/fd); None: none of them."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    return pid
            except OSError:
                continue
    return None


_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Linux: descendants whose parent exits (a daemon's double fork, `setsid cmd &`) are
    re-parented to this process instead of to init, so they stay in its tree."""
    if _libc is not None:
        _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def descendants(pid: int, mark: str) -> list[int]:
    """The processes descended from the child `pid` spawned with `mark`: Linux, by the mark
    (orphans.marked); Windows, the other processes in the child's job object."""
    if sys.platform == "win32":
        job = _jobs.get(pid)
        if job is None:
            return []
        import win32job

        members = win32job.QueryInformationJobObject(job, win32job.JobObjectBasicProcessIdList)
        return [member for member in members if member != pid]
    return marked(mark)


def command_line(pid: int) -> str:
    """A process's command line, as ps shows it (Linux; elsewhere, and once it is gone, "")."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as raw:
            return raw.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def reap_adopted(pids: list[int]) -> list[int]:
    """Reap those of `pids` that are this process's children by adoption and have exited;
    the ones still running, to be reaped later. Never pass a pid asyncio spawned: its own
    watcher reaps it."""
    running = []
    for pid in pids:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                running.append(pid)
        except ChildProcessError:
            continue  # not ours to reap (its parent is alive), or reaped already
    return running


async def reap_when_gone(pids: list[int], timeout: float) -> None:
    """Reap `pids` (signalled processes that may be this process's by adoption) as they
    exit, for up to `timeout` seconds: one reaped before it has died would be a zombie for
    the rest of the run."""
    deadline = time.monotonic() + timeout
    while pids := reap_adopted(pids):
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.02)  # an adopted process's exit has no event to wait on

"""Every difference between platforms lives in this package (and, for pipes, in the Windows
transport): here, where pipes are and how they are reached, signals, the shell and PATH,
the socket directory; in `processes`, how children are started, grouped, signalled, found
and reaped; in `listeners`, who listens on a child's port or pipe; in `limits`, the open-files
limit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

if sys.version_info >= (3, 11):
    from asyncio import timeout as timeout
else:  # pragma: no cover - the same API, from the package asyncio.timeout came from
    from async_timeout import timeout as timeout

IS_WINDOWS = sys.platform == "win32"
IS_LINUX = sys.platform.startswith("linux")

# sun_path is 108 bytes on Linux and 104 on the BSDs and macOS, both including the final NUL.
MAX_UNIX_PATH = 107 if IS_LINUX else 103


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


def quoted(argv: Sequence[str]) -> str:
    """`argv` as it would be typed in the platform's shell (quoted where a word needs it)."""
    return subprocess.list2cmdline(argv) if IS_WINDOWS else shlex.join(argv)


def which(name: str, path: str | None = None) -> str | None:
    """`name` on `path` (default: PATH). On Windows a python.org install has `python` but no
    `python3`, which manifests written on POSIX name: that one falls back to `python`."""
    found = shutil.which(name, path=path)
    if found is None and IS_WINDOWS and name.lower() in ("python3", "python3.exe"):
        found = shutil.which("python", path=path)
    return found


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
    checked the socket's owner, see pipe_listening). `loop` spares get_running_loop's
    getpid()."""
    return pipe_connector(loop or asyncio.get_running_loop(), owned)(protocol, address)


def pipe_connector(
    loop: asyncio.AbstractEventLoop, owned: Callable[[int], bool] | None = None
) -> Callable[[Callable[[], P], str], Awaitable[tuple[asyncio.Transport, P]]]:
    """connect_pipe on `loop`, as a function of `(protocol, address)` kept by the one-shot
    pipe, which connects per request: on uvloop it is the loop's own method, so that no
    interpreted code of this module runs per request (1.7k instructions of 72.6k)."""
    if sys.platform == "win32":
        from local_lambdas.transports.winpipe import connect_pipe as connect_named_pipe

        return lambda protocol, address: connect_named_pipe(address, protocol, owned)
    if isinstance(loop, asyncio.BaseEventLoop):  # the standard library's loop, not uvloop's
        return lambda protocol, address: _connect_unix(loop, protocol, address)
    return loop.create_unix_connection


async def _connect_unix(
    loop: asyncio.AbstractEventLoop, protocol: Callable[[], P], address: str
) -> tuple[asyncio.Transport, P]:
    """The standard library's loop takes a Unix socket connect that failed with EAGAIN (the
    child's listen queue full) for one in progress, and then for connected once the socket is
    writable: the request is lost to ENOTCONN. A Unix socket's connect is never in progress,
    so it is made here, at once, and a full queue raises BlockingIOError as uvloop raises it
    (transports/pipe_connect.py waits for room)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return await loop.create_unix_connection(protocol, sock=sock)


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


def unsent(sock: socket.socket | None) -> int:
    """How many bytes written to `sock` the peer has not yet received (Linux's SIOCOUTQ, the
    socket's send queue); 0 where that cannot be told."""
    if sock is None or not IS_LINUX:
        return 0
    import fcntl
    import struct
    import termios  # (TIOCOUTQ is SIOCOUTQ)

    try:
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:  # the connection closed meanwhile
        return 0
    count: int = struct.unpack("i", queued)[0]
    return count


def is_end_of_pipe(exc: OSError) -> bool:
    """Whether a read error only means the child closed its end of the pipe. Windows: a child
    that disconnects its pipe instance (DisconnectNamedPipe) gives ERROR_PIPE_NOT_CONNECTED,
    or ERROR_BROKEN_PIPE, rather than end-of-file."""
    return IS_WINDOWS and getattr(exc, "winerror", None) in (109, 233)


def on_signals(
    loop: asyncio.AbstractEventLoop, stop: Callable[[int], None], reload: Callable[[], None]
) -> Callable[[], None]:
    """Call `stop` with the signal on Ctrl+C or SIGTERM and `reload` on SIGHUP; returns the
    undo. Windows has no SIGHUP and no loop signal handlers: Ctrl+C and Ctrl+Break stop
    there."""
    if sys.platform == "win32":
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGBREAK)}
        for sig in previous:
            signal.signal(sig, lambda number, _: loop.call_soon_threadsafe(stop, number))

        def undo_windows() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return undo_windows
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
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


def in_foreground() -> bool:
    """Whether this process's group is the foreground one of the terminal it runs in: the
    group the terminal sends a typed Ctrl+C to, every process in it at once."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:  # no terminal (CI, a service), or it hung up
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def _terminal() -> bool:
    """Whether this process has a controlling terminal that is there (a hung-up one is not)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:  # ENXIO: none, or it hung up
        return False
    os.close(fd)
    return True


# The longest base under which a run's folder (/local-lambdas-0123abcd/) leaves a socket's
# name 32 bytes, and its instance suffix 4, within MAX_UNIX_PATH: 47 on Linux, 43 elsewhere.
SHORT_BASE = MAX_UNIX_PATH - len("/local-lambdas-0123abcd/") - 32 - 4


def socket_base_dir() -> Path:
    """Where per-run socket directories are made: the user's runtime dir, else the temp dir;
    on POSIX, the first of those and /tmp that is short enough (SHORT_BASE) to leave room for
    a socket's name: macOS's $TMPDIR (/var/folders/xx/.../T/, 49 bytes) or a CI runner's
    long one would make every socket path too long for sun_path."""
    found = [
        folder
        for folder in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp")
        if folder and os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)
    ]
    if not IS_WINDOWS:
        short = [folder for folder in found if len(os.fsencode(folder)) <= SHORT_BASE]
        found = short or found
    return Path(found[0] if found else tempfile.gettempdir())

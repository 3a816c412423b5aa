"""Every difference between platforms lives here (and, for pipes, in the Windows transport)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def signal_group(pid: int, sig: signal.Signals) -> bool:
    """Send `sig` to the process group led by `pid`; False when no such group is left."""
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

"""Who listens on a child's TCP port or pipe, told without connecting (a child written for
the earlier tool may fail on an empty connection): Linux asks the kernel (sockdiag.py), else
reads /proc/net, and finds the socket's holder in /proc/PID/fd; elsewhere the caller
connects. And a stale socket file a crashed child left, removed unless someone listens."""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from local_lambdas import sockdiag
from local_lambdas._compat import IS_LINUX, IS_WINDOWS
from local_lambdas._compat.processes import command_line


@dataclass(frozen=True)
class Listener:
    """What a readiness probe found: `address` to connect to ("" when nothing listens), and
    whether the listening socket belongs to someone other than the child."""

    address: str
    foreign: bool = False
    refused: str = ""  # what <ready_path> answered, when it was not a 2xx ("answered 404")
    # The proxy could not look: its own open files at their limit (readiness.py). Says
    # nothing of the child, which counts as not yet listening, or as still listening.
    unknown: bool = False

    def __bool__(self) -> bool:
        return bool(self.address) and not self.foreign


# /proc/net/tcp{,6} spellings of the addresses a local child may listen on: 0.0.0.0,
# 127.0.0.1, ::, ::1 and ::ffff:127.0.0.1.
_V6_LOOPBACK = "0" * 24 + "01000000"
_LOCAL_HOSTS = frozenset({"00000000", "0100007F", "0" * 32, _V6_LOOPBACK,
                          "0000000000000000FFFF00000100007F"})  # fmt: skip
_IPV6_HOSTS = frozenset({_V6_LOOPBACK, "0" * 32})  # ::1 and ::


def tcp_listening(port: int, owners: Callable[[], Iterable[int]]) -> Listener | None:
    """Who listens on TCP `port` on this machine's loopback, without connecting to it: a
    child written for the earlier tool may fail on an empty connection. IPv4 and IPv6,
    wildcard and loopback (a Node.js server that is given no host listens on `::`). Linux
    asks the kernel (sockdiag.py), else reads /proc/net/tcp and tcp6; elsewhere this
    returns None and the caller connects."""
    listeners = _tcp_listeners(port)
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


def _tcp_listeners(port: int) -> list[tuple[str, int]] | None:
    """The TCP sockets listening on `port`, IPv4 and IPv6: (address as /proc/net/tcp spells
    it, socket inode) each; None: unknown here."""
    every = _every_tcp_listener()
    return None if every is None else [(host, inode) for host, at, inode in every if at == port]


def _every_tcp_listener() -> list[tuple[str, int, int]] | None:
    """sockdiag.every_tcp_listener, read from /proc/net/tcp and tcp6 where netlink is
    refused; None off Linux."""
    if not IS_LINUX:
        return None
    every = sockdiag.every_tcp_listener()
    return every if every is not None else _tcp_table_listeners()


def _tcp_table_listeners() -> list[tuple[str, int, int]] | None:
    """sockdiag.every_tcp_listener read from /proc/net/tcp and tcp6."""
    found = []
    try:
        for table in ("tcp", "tcp6"):
            with open(f"/proc/net/{table}", "rb") as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    # sl local_address rem_address st ... inode; state 0A is LISTEN.
                    if fields[3] == b"0A":
                        host, _, port = fields[1].decode().partition(":")
                        found.append((host, int(port, 16), int(fields[9])))
    except (OSError, ValueError, IndexError):
        return None
    return found


def _unix_listeners(path: bytes) -> list[int] | None:
    """The inodes of the Unix sockets listening at `path` (Linux); None: unknown."""
    every = _every_unix_listener()
    return None if every is None else [inode for name, inode in every if name == path]


def _every_unix_listener() -> list[tuple[bytes, int]] | None:
    """sockdiag.every_unix_listener, read from /proc/net/unix where netlink is refused; None
    off Linux."""
    if not IS_LINUX:
        return None
    every = sockdiag.every_unix_listener()
    return every if every is not None else _unix_table_listeners()


def _unix_table_listeners() -> list[tuple[bytes, int]] | None:
    """sockdiag.every_unix_listener read from /proc/net/unix."""
    found = []
    try:
        with open("/proc/net/unix", "rb") as table:
            next(table)
            for row in table:
                fields = row.split()
                # Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is __SO_ACCEPTCON.
                if len(fields) >= 8 and int(fields[3], 16) & 0x10000 and fields[7][:1] != b"@":
                    found.append((fields[7], int(fields[6])))
    except (OSError, ValueError):
        return None
    return found


def held_listeners(pids: Iterable[int]) -> list[str]:
    """Where the processes `pids` listen, as people write it ("127.0.0.1:5000", "[::]:8080",
    a socket file's path), told by the kernel's tables (Linux); [] elsewhere. For the reason
    a child is not ready: what it listens on instead of its address."""
    held: set[str] = set()
    for pid in pids:
        held |= _sockets_of(pid)
    if not held:
        return []
    found = [_host_port(host, port) for host, port, inode in _every_tcp_listener() or ()
             if f"socket:[{inode}]" in held]  # fmt: skip
    found += [os.fsdecode(path) for path, inode in _every_unix_listener() or ()
              if f"socket:[{inode}]" in held]  # fmt: skip
    return list(dict.fromkeys(found))  # (each once, in the order found)


def _host_port(spelling: str, port: int) -> str:
    """A /proc/net/tcp address spelling and a port as people write them: 127.0.0.1:80,
    [::1]:80."""
    raw = b"".join(int(spelling[i : i + 8], 16).to_bytes(4, sys.byteorder)
                   for i in range(0, len(spelling), 8))  # fmt: skip
    if len(raw) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, raw)}:{port}"
    return f"[{socket.inet_ntop(socket.AF_INET6, raw)}]:{port}"


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
    return next((pid for pid in pids if not wanted.isdisjoint(_sockets_of(pid))), None)


def _sockets_of(pid: int) -> set[str]:
    """The sockets process `pid` holds, as its /proc/PID/fd links say them ("socket:[12]");
    none when it is gone or another user's."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    held = set()
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:"):
            held.add(link)
    return held


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
    return _holder_named(inodes) if inodes else None


def _holder_named(inodes: list[int]) -> str:
    """Who holds one of the sockets `inodes`: "pid 12 (its command)", else "a program"."""
    with os.scandir("/proc") as entries:  # (closed when the holder is found before the end)
        pid = _holder(inodes, (int(e.name) for e in entries if e.name.isdigit()))
    if pid is None:
        return "a program"
    # As people say it: the program, and the script an interpreter runs, without folders
    # ("python3 local-lambdas manifest.xml", not "/root/.pyenv/versions/3.11.7/bin/...").
    words = command_line(pid).split(" ")
    command = " ".join(os.path.basename(w) if n < 2 and w.startswith("/") else w
                       for n, w in enumerate(words))  # fmt: skip
    if len(command) > 80:
        command = command[:77] + "..."
    return f"pid {pid}" + (f" ({command})" if command else "")


def port_holder(port: int, *, local: bool = False, ipv6: bool = False) -> str | None:
    """Who listens on TCP `port` ("pid 12 (its command)", or "a program"), on any address,
    or with `local` on one a child's 127.0.0.1 would clash with, or with `ipv6` on [::1] or
    [::]; None: nobody, or it cannot be told here (Linux only)."""
    hosts = _IPV6_HOSTS if ipv6 else _LOCAL_HOSTS if local else None
    listeners = _tcp_listeners(port)
    inodes = [inode for host, inode in listeners or () if hosts is None or host in hosts]
    return _holder_named(inodes) if inodes else None


def check_port_free(port: int) -> None:
    """Before a child is started on a fixed <port>: OSError naming who listens there
    already, so that the user reads that, not the child's own failure to listen (Linux;
    elsewhere the child's output says it)."""
    holder = port_holder(port, local=True)
    if holder is not None:
        raise OSError(errno.EADDRINUSE, f"its <port> {port} is in use: {holder} listens "
                      "there; stop it, or choose another <port>")  # fmt: skip


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

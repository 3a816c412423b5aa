"""Where the proxy listens: --bind's addresses bound and listening as asyncio's
create_server would have them, and the one line that says why they cannot be.

A run listens before any child starts or <task> runs (lifecycle.py), so that a port in use
ends it at once, and a client that connects while aiohttp's side loads (front.py) waits in
the kernel's backlog rather than being refused; the servers then take these sockets
(aioserver.Site).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket

from local_lambdas._compat import IS_WINDOWS
from local_lambdas.errors import StartupError

# Connections the kernel completes and holds until they are accepted (capped by its
# somaxconn). asyncio's default, 100, overflowed under 1000 clients connecting at once: the
# kernel then drops a handshake's last ACK, and the client's first request waits for a
# retransmission, 1 s or 3 s (p99 1.5 s, wrk timeouts). uvicorn's and gunicorn's figure.
BACKLOG = 2048


def listen(host: str, port: int) -> list[socket.socket]:
    """Non-blocking sockets listening at `port` on every address `host` names, as asyncio
    binds them: SO_REUSEADDR but on Windows, each IPv6 socket IPv6 only. StartupError says
    why they cannot."""
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)  # fmt: skip
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if not IS_WINDOWS:  # (there it would let another process take the port too)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio does: each family its own socket
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise _cannot_listen(host, port, exc) from exc
    return sockets


def _cannot_listen(host: str, port: int, exc: OSError) -> StartupError:
    why = os.strerror(exc.errno).lower() if exc.errno else f"{exc.strerror}"
    if isinstance(exc, socket.gaierror) or (exc.errno or 0) < 0:  # the name's lookup
        why = f"{host} is not a name of this machine ({exc.strerror})"
    elif exc.errno == errno.EADDRINUSE:  # most often an earlier run, still running
        from local_lambdas._compat.listeners import port_holder

        holder = port_holder(port)
        why += f": {holder} listens there" if holder else ""
    return StartupError(
        f"cannot listen on {host}:{port}: {why}; "
        "choose another with --port PORT or --bind HOST:PORT"
    )


def url(sock: socket.socket, scheme: str) -> str:
    """Where `sock` listens, as a URL: http://127.0.0.1:3000, http://[::1]:3000."""
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{host}:{port}" if ":" not in host else f"{scheme}://[{host}]:{port}"


def is_loopback(host: str | None) -> bool:
    """Whether `host` (an address, or a name) is this machine's loopback."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]").partition("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)

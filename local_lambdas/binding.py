"""Where the proxy listens: --bind's addresses bound and listening as asyncio's
create_server would have them, and the one line that says why they cannot be.

A run listens before any child starts or <task> runs (lifecycle.py), so that a port in use
ends it at once, and a client that connects while aiohttp's side loads (front.py) waits in
the kernel's backlog rather than being refused; the servers then take these sockets
(aio.site.Site).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket

from local_lambdas._compat import IS_WINDOWS
from local_lambdas.errors import StartupError

log = logging.getLogger("local_lambdas.binding")

# Connections the kernel completes and holds until they are accepted (capped by its
# somaxconn). asyncio's default, 100, overflowed under 1000 clients connecting at once: the
# kernel then drops a handshake's last ACK, and the client's first request waits for a
# retransmission, 1 s or 3 s (p99 1.5 s, wrk timeouts). uvicorn's and gunicorn's figure.
BACKLOG = 2048


def listen(host: str, port: int, *, also_ipv6: bool = False) -> list[socket.socket]:
    """Non-blocking sockets listening at `port` on every address `host` names, as asyncio
    binds them: SO_REUSEADDR but on Windows, each IPv6 socket IPv6 only. StartupError says
    why they cannot. `also_ipv6` (the host is the default 127.0.0.1, not chosen): [::1] at
    the same port too, where it can be (`_also_ipv6`)."""
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)  # fmt: skip
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sockets.append(_listening(family, kind, proto, address))
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise _cannot_listen(host, port, exc) from exc
    if also_ipv6 and [sock.family for sock in sockets] == [socket.AF_INET]:
        sockets += _also_ipv6(sockets[0].getsockname()[1], chosen=port != 0)
    return sockets


def _listening(
    family: socket.AddressFamily, kind: socket.SocketKind, proto: int, address: tuple[object, ...],
) -> socket.socket:  # fmt: skip
    sock = socket.socket(family, kind, proto)
    try:
        if not IS_WINDOWS:  # (there it would let another process take the port too)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # as asyncio does: each family its own socket
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _also_ipv6(port: int, *, chosen: bool) -> list[socket.socket]:
    """[::1] at `port`, beside 127.0.0.1: a client that takes `localhost` for ::1 first and
    tries no other address (Node.js 17 and 18, so a Vite dev server's proxy on Debian 12's
    Node.js; ApacheBench) was refused, where curl and browsers fall back to 127.0.0.1.
    Nothing when this machine has no IPv6 loopback; when another program listens there, a
    warning naming it (such a client reaches that program, not the proxy), unless the port
    was not `chosen` (--port 0: any free one)."""
    try:
        return [_listening(socket.AF_INET6, socket.SOCK_STREAM, 0, ("::1", port, 0, 0))]
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and chosen:
            from local_lambdas._compat.listeners import port_holder

            holder = port_holder(port, ipv6=True)
            log.warning(
                "[::1]:%d is taken%s: a client that takes localhost for ::1 (Node.js 18, "
                "ApacheBench) reaches that, not the proxy; http://127.0.0.1:%d reaches the "
                "proxy", port, f" ({holder} listens there)" if holder else "", port,
                extra={"fields": {"event": "ipv6_taken", "port": port}},
            )  # fmt: skip
        return []


def _cannot_listen(host: str, port: int, exc: OSError) -> StartupError:
    why = os.strerror(exc.errno).lower() if exc.errno else f"{exc.strerror}"
    if isinstance(exc, socket.gaierror) or (exc.errno or 0) < 0:  # the name's lookup
        why = f"{host} is not a name of this machine ({exc.strerror})"
    elif exc.errno == errno.EADDRINUSE:  # most often an earlier run, still running
        from local_lambdas._compat.listeners import port_holder

        holder = port_holder(port)
        why += f": {holder} listens there" if holder else ""
    elif exc.errno == errno.EACCES and IS_WINDOWS:  # Hyper-V, WSL and Docker reserve ranges
        why += (" (Windows keeps some ports for itself: netsh interface ipv4 show "
                "excludedportrange protocol=tcp lists them)")  # fmt: skip
    elif exc.errno == errno.EACCES and port < 1024:
        why += " (ports below 1024 are for root here)"
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

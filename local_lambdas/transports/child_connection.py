"""One connection to a child in raw HTTP/1.1, as the exchanges of transports/exchange.py
build on it: its transport, its socket's options, its reading paused and resumed (while the
client cannot take more) and whether it can carry another exchange (`usable`, `fresh`).

A server that writes an answer's head and body in two small writes without TCP_NODELAY
(Python's http.server in HTTP/1.1, the bundled web_server.py) holds the body back until its
head is acknowledged, and on a kept connection Linux delays that ACK by 40 ms: every answer
took 40 ms more. So a read that leaves the answer unfinished is followed by TCP_QUICKACK
(`acknowledge`: the kernel sends the ACK it was holding), and our own writes go without
Nagle's delay (TCP_NODELAY), as nginx's do. An answer read whole, as most servers write
one, costs no such call. (Asked through a duplicate of the socket's descriptor, kept while
the connection lasts: uvloop's socket object makes a Python socket for each option set, 8k
instructions.)
"""

from __future__ import annotations

import asyncio
import socket
from typing import Final

from local_lambdas._compat import TCP_QUICKACK
from local_lambdas.transports.answer_head import IDLE_LIMIT

_TCP: Final = socket.IPPROTO_TCP
_QUICKACK: Final = TCP_QUICKACK  # (a C-level constant here)


class ChildConnection(asyncio.Protocol):
    """A connection to a child; what is read from it is the subclass's (exchange.Bare)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._socket: socket.socket | None = None  # a duplicate, for TCP_QUICKACK
        self._lost = False
        self._paused = False  # not read while the client cannot take more
        # When the child's last bytes came, reading resumed, or the request went out.
        self._progress = 0.0
        self._idle_limit = IDLE_LIMIT  # how long it may wait for the next request (`fresh`)
        self.answers = 0  # exchanges ended on it (Upstream._keep counts them)

    @property
    def usable(self) -> bool:
        return not self._lost and self._transport is not None and not self._transport.is_closing()

    def fresh(self) -> bool:
        """Whether this kept connection may carry the next request, which goes out now: it
        has not waited idle for as long as the child keeps one (answer_head.idle_limit), so
        the child is not closing it just as the request goes out. (Counted from the last
        bytes of the child's answer, or, for one taken whole (exchange.Bare._whole), from
        when its request went out: never short. If fresh, the request's wait begins now.)"""
        now = self.loop.time()
        if self.stale(now):
            return False
        self._progress = now
        return True

    def stale(self, now: float) -> bool:
        """Whether this kept connection has waited idle, at `now`, for as long as the child
        keeps one: it will carry no request again (`fresh`)."""
        return now - self._progress >= self._idle_limit

    def close(self) -> None:
        self._forget_socket()
        if self._transport is not None:
            self._transport.close()

    def acknowledge(self) -> None:
        """Acknowledge what came at once (see the module's docstring)."""
        if self._socket is not None:
            self._socket.setsockopt(_TCP, _QUICKACK, 1)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._progress = self.loop.time()  # (its first request goes out at once)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(_TCP, socket.TCP_NODELAY, 1)
            if _QUICKACK:
                self._socket = socket.fromfd(sock.fileno(), sock.family, sock.type)

    def _forget_socket(self) -> None:
        own, self._socket = self._socket, None
        if own is not None:
            own.close()

    def eof_received(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self._paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._paused = False
        self._progress = self.loop.time()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

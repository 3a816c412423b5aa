"""nginx's limits on a client, kept alike by both servers (the fast lane, lane/connection.py,
and aiohttp's, aio/server.py): the error answer written whole before a connection closes (408
for a head not sent within --head-timeout, 400 for plain HTTP to the HTTPS port), the cut of
a client that takes nothing of its answer for --send-timeout, and the size of the pieces a
large answer goes in over TLS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import cast

from local_lambdas.envelope import error_body

log = logging.getLogger("local_lambdas.server")

JSON = "application/json; charset=utf-8"  # an error answer's Content-Type

# Over TLS, an answer body larger than this is written this much at a time, each piece once
# the client has taken enough of the last (aio.server.paced,
# lane.writing.ClientWriter.write_paced).
# asyncio's and uvloop's TLS transports take a write whole, encrypted, into the TCP buffer
# below them and report their own as empty: one large write never pauses the writer, so
# --send-timeout would not see a client that stopped reading it.
PIECE = 256 * 1024


def timed_out(message: str, new_id: Callable[[], str], peer: str | None) -> bytes:
    """The 408 answer, logged, for a client too slow to send its request (either server)."""
    return refusal(408, message, new_id, peer)


def refusal(status: int, message: str, new_id: Callable[[], str], peer: str | None) -> bytes:
    """An error answer written whole, logged, before its connection closes: for a client too
    slow to send its request, or one that speaks plain HTTP to the HTTPS port (tls.py)."""
    request_id = new_id()
    log.warning("%s from %s: %s [%s]", status, peer, message, request_id,
                extra={"fields": {"event": "bad_request", "status": status,
                                  "request_id": request_id}})  # fmt: skip
    body = error_body(message, request_id)
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: {JSON}\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-Id: {request_id}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


class SendTimeout:
    """nginx's send_timeout for one client connection (either server). Armed when writing
    pauses (the transport's buffer is full), disarmed when it resumes. When it fires, a
    buffer smaller than when it was armed means the client took some (nothing more is
    written while paused): it is armed again from there. Otherwise the client took nothing
    for `seconds`, and its connection is cut, with a warning: without the cut an answer
    waits for ever, holding its memory (an envelope answer) or the child's connection and
    slot (a relayed one)."""

    __slots__ = ("_loop", "_seconds", "_timer")

    def __init__(self, seconds: float, loop: asyncio.AbstractEventLoop) -> None:
        self._seconds = seconds
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None

    def arm(self, transport: asyncio.BaseTransport, peer: str | None) -> None:
        if self._timer is None:
            self._start(cast(asyncio.Transport, transport), peer)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start(self, transport: asyncio.Transport, peer: str | None) -> None:
        unsent = transport.get_write_buffer_size()
        self._timer = self._loop.call_later(self._seconds, self._fired, transport, peer, unsent)

    def _fired(self, transport: asyncio.Transport, peer: str | None, unsent: int) -> None:
        self._timer = None
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() < unsent:
            self._start(transport, peer)
            return
        log.warning("%s took nothing of its answer for %gs (--send-timeout): connection closed",
                    peer, self._seconds, extra={"fields": {"event": "send_timeout"}})  # fmt: skip
        transport.abort()

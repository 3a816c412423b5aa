"""Pass-through's exchange (transports/upstream.py) on aiohttp's side, for the requests the
fast lane hands over: the child's answer, handed on by exchange.py's connection as it comes
(a Sink), written through an aiohttp response (`Streamed`), and a request body aiohttp reads
streamed to the child (a Body: `RequestBody`, or `SpooledBody` from a temporary file). The
lane writes both as bytes (lane/relay.py).
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Final

import aiohttp
from aiohttp import hdrs, web

from local_lambdas import _compat
from local_lambdas.aio.server import still_there
from local_lambdas.cors import Policy
from local_lambdas.errors import (
    BodyNotKept,
    ChildUnreachable,
    ClientGone,
    ClientTooSlow,
    ForwardError,
    PayloadTooLarge,
)
from local_lambdas.forwarding import Origin, as_utf8
from local_lambdas.lane.relay import answer_headers
from local_lambdas.spool import Spool
from local_lambdas.transports.exchanging import Exchanging

log = logging.getLogger("local_lambdas.passthrough")  # the same name: one module's log

_CHUNK = 64 * 1024


class Relayed(web.StreamResponse):
    """A child's answer as it came: aiohttp would add a Content-Type to a body without one
    and a Server of its own, which the lane does not either (a Date it may: RFC 9110 6.6.1).
    `kept` is what the inspector keeps of its body; `reached`, whether the client was still
    there when its head went out (else it counts as http1.CLIENT_CLOSED)."""

    def __init__(self, *, status: int, reason: str | None, sent: frozenset[str]) -> None:
        super().__init__(status=status, reason=reason)
        self._sent = sent  # the names of the headers the child sent, lower-case
        self.kept = b""
        self.reached = True

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        for name in (hdrs.CONTENT_TYPE, hdrs.SERVER):
            if name.lower() not in self._sent:
                self.headers.popall(name, None)


_HIGH = 256 * 1024  # answer bytes held for a slow client before the child is not read


class Streamed:
    """The child's answer as exchange.py hands it on (a Sink), held until `write_to` writes
    it through aiohttp's response: the sink's calls come from the child's connection, the
    writes are awaited by the request's handler."""

    def __init__(
        self, request_id: str, prefix: str | None, origin: Origin,
        cors: tuple[Policy, str | None] | None, keep: int, name: str,
    ) -> None:  # fmt: skip
        self._request_id, self._prefix, self._origin, self._cors = request_id, prefix, origin, cors
        self._name = name  # the process, as the log names it
        self._room = keep
        self._kept: list[bytes] = []
        self._pieces: deque[bytes] = deque()
        self._held = 0
        self._waiting: list[Callable[[], None]] = []  # the child's connection, paused
        self._changed: asyncio.Future[None] | None = None
        self._head: tuple[int, str, list[tuple[str, str]]] | None = None
        self._ended = False
        self._broken: str | None = None

    # -- the Sink

    def head(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        out, _ = answer_headers(headers, self._request_id, self._prefix, self._origin, self._cors)
        out = [(name, as_utf8(value)) for name, value in out]
        self._head = (status, as_utf8(reason), out)  # now: the list is the connection's to reuse
        self.wake()

    def body(self, data: bytes) -> None:
        if self._room > 0:
            piece = data[: self._room]
            self._kept.append(piece)
            self._room -= len(piece)
        self._pieces.append(data)
        self._held += len(data)
        self.wake()

    def end(self) -> None:
        self._ended = True
        self.wake()

    def flush(self) -> None:
        pass  # the answer's task writes what came, woken by each of the above

    def broken(self, why: str) -> None:
        self._broken = why
        self.wake()

    @property
    def writable(self) -> bool:
        return self._held < _HIGH

    def when_writable(self, then: Callable[[], None]) -> None:
        self._waiting.append(then)

    def upgraded(
        self, reason: str, headers: list[tuple[str, str]], child: asyncio.Transport, rest: bytes
    ) -> None:
        child.close()  # never asked for: WebSockets take _websocket's way on this side

    def wake(self, _: object = None) -> None:
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    async def _change(self) -> None:
        self._changed = asyncio.get_running_loop().create_future()
        await self._changed

    # -- the handler's side

    async def write_to(self, request: web.BaseRequest, sending: asyncio.Future[bytes]) -> Relayed:
        while self._head is None:
            if sending.done():
                sending.result()  # the exchange's failure, before any answer
                raise ChildUnreachable("the child's connection ended without an answer")
            await self._change()
        status, reason, out = self._head
        sent = frozenset(name.lower() for name, _ in out)
        response = Relayed(status=status, reason=reason, sent=sent)
        response.headers.extend(out)
        response.reached = still_there(request)
        try:
            await response.prepare(request)
            while True:
                if self._pieces:
                    data = self._pieces.popleft()
                    self._held -= len(data)
                    if self._held < _HIGH // 2 and self._waiting:
                        waiting, self._waiting = self._waiting, []
                        for then in waiting:
                            then()
                    await response.write(data)
                elif self._ended:
                    await response.write_eof()
                    break
                elif self._broken is not None or sending.done():
                    why = self._broken or "the child's answer broke off: its connection ended"
                    log.warning(
                        "%s: [%s] %s", self._name, self._request_id, why
                    )  # (as lane/relay.py)
                    if request.transport is not None:
                        request.transport.close()  # the client must see an error, not an end
                    break
                else:
                    await self._change()
        except ConnectionResetError:
            # Our write to the client failed: it went away (a closed tab, the end of a load
            # test). Nobody is left to answer; aiohttp takes it from here quietly.
            log.debug("[%s] the client left before its answer was sent", self._request_id)
        response.kept = b"".join(self._kept)
        return response


# Set on a request (aiohttp's requests are mappings) once its body began to stream to a child:
# a web.RequestKey from aiohttp 3.14 on (a plain string key warns there), a string before.
UPLOAD_STARTED: Final = getattr(web, "RequestKey", lambda name, _: name)("upload_started", bool)


class _Pumped(abc.ABC):
    """A request body written to the child by a task of its own (an exchange.Body), which
    waits while the child's connection cannot take more."""

    def __init__(self) -> None:
        self._go = asyncio.Event()
        self._go.set()
        self._task: asyncio.Task[None] | None = None
        self.complete = False

    def start(self, exchange: Exchanging) -> None:
        self._task = asyncio.ensure_future(self._pump(exchange))

    def pause(self) -> None:
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    @abc.abstractmethod
    async def _pump(self, exchange: Exchanging) -> None:
        """Write the body with `exchange.write_body`, awaiting `self._go` before each piece;
        `complete` once all went."""


class RequestBody(_Pumped):
    """A request body streamed to the child as aiohttp reads it, with the Content-Length
    the client gave, stopped past `limit` bytes (PayloadTooLarge) or when no byte comes for
    `timeout` seconds (ClientTooSlow). Sent once: a retry could not send it again."""

    def __init__(self, request: web.BaseRequest, *, limit: int, timeout: float) -> None:
        super().__init__()
        self._request = request
        self._content = request.content
        self._limit, self._timeout = limit, timeout

    def start(self, exchange: Exchanging) -> None:
        self._request[UPLOAD_STARTED] = True
        super().start(exchange)

    async def _pump(self, exchange: Exchanging) -> None:
        seen = 0
        try:
            while True:
                await self._go.wait()
                try:
                    async with _compat.timeout(self._timeout):
                        chunk = await self._content.read(_CHUNK)
                except asyncio.TimeoutError:
                    raise ClientTooSlow(self._timeout) from None
                if not chunk:
                    break
                seen += len(chunk)
                if seen > self._limit:
                    raise PayloadTooLarge(self._limit)
                exchange.write_body(chunk)
        except ForwardError as exc:
            exchange.body_failed(exc)
            return
        except (OSError, aiohttp.ClientError) as exc:  # the client left mid-upload
            exchange.body_failed(ClientGone(f"the client left during its upload: {exc}"))
            return
        self.complete = True


class SpooledBody(_Pumped):
    """A chunked upload past BUFFERED, read whole into a temporary file (spool.py) before a
    child was chosen, sent from it with its Content-Length, as nginx sends uploads: servers
    that read no chunked body (Python's http.server) get it all. Sent from its start again
    if the request is retried."""

    def __init__(self, spool: Spool) -> None:
        super().__init__()
        self._spool = spool

    async def _pump(self, exchange: Exchanging) -> None:
        try:
            for piece in self._spool.pieces(_CHUNK):
                await self._go.wait()
                if not exchange.write_body(piece):
                    return  # the connection closed: the exchange says why
        except BodyNotKept as exc:
            exchange.body_failed(exc)
            return
        self.complete = True

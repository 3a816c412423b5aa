"""aiohttp's low-level HTTP server, held to the rules the fast lane keeps (lane/fastlane.py):

- requests are read by aioparser.HeadParser: requests that came whole before garbage are
  answered first, methods llhttp lacks are taken, nginx's 414, 431, 501 and 505;
- a malformed request gets the proxy's JSON 400 (`{"error", "process", "request_id"}`) in
  HTTP/1.1 and a closed connection, and one log line, never a traceback;
- a head that does not arrive whole within `head_timeout` seconds of its first byte gets 408
  and a closed connection (nginx's client_header_timeout);
- a client that takes nothing of its answer for `send_timeout` seconds, while more waits to
  be written, loses its connection (client_limits.SendTimeout); over TLS a large answer body
  goes a piece at a time (`paced`), so that the proxy sees when the client stops reading;
- a client that half-closes has the requests that came whole answered, then is let go;
- a body is read as it came: a gzip upload stays gzip (its Content-Encoding is the child's).

Body reads are bounded by their readers (handler.py, transports/passthrough.py). The
sites it serves on, with the fast lane taking their connections first, are site.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import StreamReader, payload, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import ERROR, RequestHandler

from local_lambdas import _compat
from local_lambdas.aio.parser import MAX_FIELD, MAX_TARGET, HeadParser
from local_lambdas.client_limits import JSON, PIECE, SendTimeout, timed_out
from local_lambdas.envelope import error_body

log = logging.getLogger("local_lambdas.server")


class _Paced(payload.Payload):
    """An answer body written PIECE bytes at a time, each after the writer has drained.
    (Not a BytesPayload, which warns of a large body written at once: this one is not.)"""

    _value: bytes

    def __init__(self, value: bytes) -> None:
        super().__init__(value, content_type="application/octet-stream")
        self._size = len(value)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self._value.decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        view = memoryview(self._value)
        for at in range(0, len(view), PIECE):
            await writer.write(view[at : at + PIECE])
            await writer.drain()


def paced(request: web.BaseRequest, body: bytes) -> bytes | payload.Payload:
    """`body` as aiohttp's side writes it to `request`'s client: a piece at a time over TLS
    when larger than PIECE (see PIECE), whole otherwise."""
    if len(body) <= PIECE or not request.secure:
        return body
    return _Paced(body)


def still_there(request: web.BaseRequest) -> bool:
    """Whether the client's connection is still open: it may have left, or reset it, while
    its answer was on its way (counted as http1.CLIENT_CLOSED)."""
    transport = request.transport
    return transport is not None and not transport.is_closing()


def close_at_once(request: web.BaseRequest) -> None:
    """Close the connection right after the answer, rather than read what is left of the
    body first (aiohttp lingers up to 10 s): for a client that will not send it, as after a
    408, or a 413 sent before any 100 Continue."""
    protocol = request.protocol
    if isinstance(protocol, _Connection):
        protocol._lingering_time = 0.0


class Server(web.Server):
    """`web.Server` whose connections are `_Connection`s. `new_id` names each refused request,
    as the proxy names the requests it answers."""

    def __init__(
        self,
        handler: Any,
        *,
        new_id: Callable[[], str],
        head_timeout: float,
        send_timeout: float = 60.0,
        **kwargs: Any,
    ) -> None:
        # aiohttp's limits (8190 each), one byte apart so that its LineTooLong tells which
        # was passed: the target (414, as nginx answers) or a header (431).
        kwargs.setdefault("max_line_size", MAX_TARGET)
        kwargs.setdefault("max_field_size", MAX_FIELD)
        # A body goes to the child as the client sent it, Content-Encoding and all, as nginx
        # passes it: aiohttp would gunzip it, leaving the header to say gzip of plain bytes.
        kwargs.setdefault("auto_decompress", False)
        super().__init__(handler, **kwargs)
        self.new_id = new_id
        self.head_timeout = head_timeout
        self.send_timeout = send_timeout

    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class _Connection(RequestHandler):
    def __init__(self, manager: Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._server = manager
        self._heads = HeadParser(self._parser)
        self._parser = self._heads  # type: ignore[assignment]
        self._head_timer: asyncio.TimerHandle | None = None
        self._send_timeout = SendTimeout(manager.send_timeout, self._loop)
        self._ended = False  # the client half-closed (eof_received)
        self._cut_short = False  # and the last request it sent will never come whole
        # Requests come whole and not yet answered (queued, or popped and being answered):
        # aiohttp's own flags miss one popped from its queue and not yet begun.
        self._unanswered = 0
        # The body its request waits for, before any child has the request.
        self.awaiting_body: StreamReader | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.transport is not None:
            self._send_timeout.arm(self.transport, _peer(self.transport))

    def resume_writing(self) -> None:
        self._send_timeout.disarm()
        super().resume_writing()

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        self._unanswered += len(self._messages) - queued
        if self._heads.body_awaited:  # the client may be waiting for our ACK to send the body
            self._heads.body_awaited = False
            _compat.acknowledge_now(self.transport)
        if self._messages or self._request_in_progress or self._upgraded:
            self._stop_head_timer()
        elif self._head_timer is None and data and not (self._close or self._force_close):
            self._head_timer = self._loop.call_later(
                self._server.head_timeout, self._head_timed_out
            )

    def eof_received(self) -> bool:  # type: ignore[override]  # (asyncio's contract: bool)
        """The client half-closed: the requests that came whole are still answered, then the
        connection closes (lane.connection.Connection.eof_received), the last one unanswered
        if its body was cut short; with none that came whole, it closes now (aiohttp's own
        way: the request fails)."""
        # Not `_request_in_progress` or a waiting `_waiter`: a client that closes as soon as
        # it has read an answer, as curl does, comes under uvloop after the one and before
        # the other, and its connection was kept open for aiohttp's keep-alive hour.
        idle = self._unanswered <= 0
        tls = self.transport is not None and self.transport.get_extra_info("sslcontext")
        # (A WebSocket's reader set: its client has left. An upgrade asked for but not yet
        # answered, which an envelope route answers as any request, is still answered.)
        websocket = self._payload_parser is not None
        if idle or tls or websocket:
            return False
        if self._heads.body_to_come:
            if self._unanswered <= 1:  # that request alone
                return False
            self._cut_short = True
        self._ended = True  # (finish_response closes after the last)
        return True

    def set_parser(self, parser: Any, data_received_cb: Any = None) -> None:
        super().set_parser(parser, data_received_cb)
        if self._ended:  # a WebSocket opened for a client that has half-closed: it ends
            parser.feed_eof()

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        queued = len(self._messages)  # (the tail of a declined upgrade is read in there)
        finished = await super().finish_response(request, resp, start_time)
        self._unanswered += len(self._messages) - queued - 1
        if self._ended and len(self._messages) <= (1 if self._cut_short else 0):
            self.close()  # (aiohttp's: no more requests; the transport closes after this)
        return finished

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        self._send_timeout.disarm()
        super().connection_lost(exc)

    async def shutdown(self, timeout: float | None = 15.0) -> None:
        if self.awaiting_body is not None:
            # A body no child has yet: not waited for, its request ended as if the client
            # had left (499), as the fast lane ends it.
            self.awaiting_body.set_exception(ConnectionResetError("the proxy is stopping"))
            if self.transport is not None:
                self.transport.close()
        elif not (self._request_in_progress or self._messages) and self._task_handler:
            # Nothing in flight: the connection waits for a request, or reads the rest of
            # a body its answer went out without (aiohttp's lingering, up to 10 s, which a
            # stop would wait for): ended now.
            self._task_handler.cancel()
        await super().shutdown(timeout)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            # A body that broke after its answer went (parser.py), met where aiohttp
            # reads what is left of it: the client's fault, said in one line, not a trace.
            peer = _peer(self.transport) if self.transport is not None else "a client"
            log.warning("%s: its request body broke after the answer: %s; the connection "
                        "closes", peer, _first_line(exc, exc.message))  # fmt: skip
            return
        super().log_exception(*args, **kw)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._messages or self._request_in_progress or self.transport is None:
            return
        message = f"the request head did not arrive within {self._server.head_timeout:g}s"
        self.transport.write(timed_out(message, self._server.new_id, _peer(self.transport)))
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, ConnectionResetError) and (
            self.transport is None or self.transport.is_closing()
        ):
            # A write to the client failed: it left (or shut its side) before its answer,
            # nginx's 499. Nobody to answer, nothing of ours failed; aiohttp drops it quietly.
            log.debug("%s: the client left before its answer", request.remote)
            raise ConnectionError("the client left before its answer")
        if isinstance(exc, HttpProcessingError) and status == 500 and 400 <= exc.code < 500:
            # A body that broke while its handler read it (parser.py): the client's 400.
            status, message = exc.code, message or exc.message
        request_id = self._server.new_id()
        if status >= 500 and not isinstance(exc, HttpProcessingError):  # 505 is the client's
            text = "local-lambdas failed while answering; its log has the details"
            log.error("%s from %s: %s: %s [%s]", status, request.remote, type(exc).__name__,
                      exc, request_id, exc_info=exc)  # fmt: skip
        else:
            text = _first_line(exc, message)
            log.warning("%s from %s: %s [%s]", status, request.remote, text, request_id,
                        extra={"fields": {"event": "bad_request", "status": status,
                                          "request_id": request_id}})  # fmt: skip
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was begun already; the connection is dropped")
        if request._message is ERROR:  # aiohttp's stand-in for a request it could not read
            request._version = HttpVersion11  # (else HTTP/1.0): as nginx answers it
        response = web.Response(
            status=status,
            body=error_body(text, request_id),
            headers={"Content-Type": JSON, "X-Request-Id": request_id},
        )
        response.force_close()
        return response


@contextlib.contextmanager
def awaiting_body(request: web.BaseRequest) -> Iterator[None]:
    """While a request's body is read before any child has the request: a stop then does
    not wait for the client to send the rest."""
    connection = request.protocol
    if not isinstance(connection, _Connection):
        yield
        return
    connection.awaiting_body = request.content
    try:
        yield
    finally:
        connection.awaiting_body = None


def _first_line(exc: BaseException | None, message: str | None) -> str:
    text = message or (str(exc) if exc is not None else "") or "bad request"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else "bad request"
    said = first.rstrip(":") + (f" ({lines[1]})" if len(lines) > 1 and first.endswith(":") else "")
    return said if len(said) <= 200 else said[:200] + "..."  # it may quote a huge line


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, (list, tuple)) else str(peer)

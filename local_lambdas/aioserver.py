"""aiohttp's low-level HTTP server, held to the rules the fast lane keeps (fastlane.py):

- a malformed request gets the proxy's JSON 400 (`{"error", "process", "request_id"}`) in
  HTTP/1.1 and a closed connection, and one log line, never a traceback;
- requests that arrived whole before the garbage in the same read are answered first, as
  nginx and the fast lane do (aiohttp's parser drops them with the error);
- an HTTP/1.0 request with a Transfer-Encoding closes its connection (RFC 9112 section 6.1);
- a method llhttp was not built with (`BAN`) is taken, as nginx and the fast lane take it
  (any upper-case token with `_` and `-`), where aiohttp's parser, llhttp, would refuse it;
- a Transfer-Encoding other than `chunked` alone is 501, as nginx answers it; a target
  over 8191 bytes 414, a header over 8190 bytes 431;
- a head that does not arrive whole within `head_timeout` seconds of its first byte gets 408
  and a closed connection (nginx's client_header_timeout);
- a client that takes nothing of its answer for `send_timeout` seconds, while more waits to
  be written, loses its connection (nginx's send_timeout); over TLS a large answer body
  goes a piece at a time (`paced`), so that the proxy sees when the client stops reading.

Body reads are bounded by their readers (aiohandler.py, transports/passthrough.py). `Site` is
aiohttp's TCP site with the fast lane taking its connections first.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast

from aiohttp import payload, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import ERROR, RequestHandler, _ErrInfo

from local_lambdas import _compat, tls
from local_lambdas._compat import IS_WINDOWS
from local_lambdas.envelope import error_body
from local_lambdas.http1 import (
    EXTENSION_METHOD,
    LONGEST_METHOD,
    request_line_fault,
    valid_host,
)

log = logging.getLogger("local_lambdas.server")

_JSON = "application/json; charset=utf-8"
MAX_TARGET, MAX_FIELD = 8191, 8190  # bytes in a request's target; in a header's name or value
# Connections the kernel completes and holds until they are accepted (capped by its
# somaxconn). asyncio's default, 100, overflowed under 1000 clients connecting at once: the
# kernel then drops a handshake's last ACK, and the client's first request waits for a
# retransmission, 1 s or 3 s (p99 1.5 s, wrk timeouts). uvicorn's and gunicorn's figure.
BACKLOG = 2048
# Over TLS, an answer body larger than this is written this much at a time, each piece once
# the client has taken enough of the last (`paced`, lane_connection.Connection.write_paced).
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
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: {_JSON}\r\n"
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


class _Paced(payload.BytesPayload):
    """An answer body written PIECE bytes at a time, each after the writer has drained."""

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
    return _Paced(body, content_type="application/octet-stream")


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
        self._heads = _Parser(self._parser)
        self._parser = self._heads  # type: ignore[assignment]
        self._head_timer: asyncio.TimerHandle | None = None
        self._send_timeout = SendTimeout(manager.send_timeout, self._loop)
        self._ended = False  # the client half-closed (eof_received)
        # Requests come whole and not yet answered (queued, or popped and being answered):
        # aiohttp's own flags miss one popped from its queue and not yet begun.
        self._unanswered = 0

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
        connection closes (lane_connection.Connection.eof_received); with none, or a body
        cut short, it closes now (aiohttp's own way: the request fails)."""
        # Not `_request_in_progress` or a waiting `_waiter`: a client that closes as soon as
        # it has read an answer, as curl does, comes under uvloop after the one and before
        # the other, and its connection was kept open for aiohttp's keep-alive hour.
        idle = self._unanswered <= 0
        tls = self.transport is not None and self.transport.get_extra_info("sslcontext")
        if idle or tls or self._upgraded or self._heads.body_to_come:
            return False
        self._ended = True  # (finish_response closes after the last)
        return True

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        queued = len(self._messages)  # (the tail of a declined upgrade is read in there)
        finished = await super().finish_response(request, resp, start_time)
        self._unanswered += len(self._messages) - queued - 1
        if self._ended and not self._messages:
            self.close()  # (aiohttp's: no more requests; the transport closes after this)
        return finished

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        self._send_timeout.disarm()
        super().connection_lost(exc)

    async def shutdown(self, timeout: float | None = 15.0) -> None:
        if not (self._request_in_progress or self._messages) and self._task_handler is not None:
            # Nothing in flight: the connection waits for a request, or reads the rest of
            # a body its answer went out without (aiohttp's lingering, up to 10 s, which a
            # stop would wait for): ended now.
            self._task_handler.cancel()
        await super().shutdown(timeout)

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
            headers={"Content-Type": _JSON, "X-Request-Id": request_id},
        )
        response.force_close()
        return response


_SERVED = frozenset({(1, 0), (1, 1)})  # HTTP versions; others are 505, as nginx answers
# A head's start that may be the beginning of a method: held until the method is whole.
_METHOD_SO_FAR = re.compile(rb"(?:\r\n)?[A-Z_-]{0,%d}" % LONGEST_METHOD)

# The HTTP methods aiohttp's llhttp is built with (each checked; httptools' llhttp takes
# RTSP's too, PLAY or SETUP, which aiohttp's refuses): any other goes through as GET.
_LLHTTP_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH "
    b"SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY "
    b"SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY PRI".split()
)


class _Parser:
    """aiohttp's request parser, fed a head at a time so that a parse error keeps the
    requests completed before it; everything else is the parser's own."""

    def __init__(self, parser: Any) -> None:
        self._parser = parser
        self._failed = False
        self.body_awaited = False  # the last feed read a head whose body has not come whole
        # What came of the next head, not yet whole; None while a body may come first.
        self._head: bytes | None = b""
        self._held = b""  # a head's first bytes, its method not yet whole (_stand_in)
        self._body: Any = None  # the body of the last request, while it is still to come
        self._method: str | None = None  # the next head's, if GET stands in for it

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    @property
    def body_to_come(self) -> bool:
        """Whether the last request's body has not come whole."""
        return self._body is not None and not self._body.is_eof()

    def feed_data(self, data: bytes) -> tuple[Any, bool, bytes]:
        if self._failed:
            return (), False, b""
        if self._held:
            data, self._held = self._held + data, b""
        messages: list[Any] = []
        start, size = 0, len(data)
        upgraded, tail = False, b""
        try:
            while True:
                # Up to the end of the next head: one parser call for the usual read.
                end = data.find(b"\r\n\r\n", start)
                end = size if end == -1 or end + 4 >= size else end + 4
                piece = data if start == 0 and end == size else data[start:end]
                if self._body is not None and self._body.is_eof():  # it came whole since
                    self._head, self._body = b"", None
                if self._head == b"":  # a head's start
                    if _METHOD_SO_FAR.fullmatch(piece):
                        self._held = piece  # the method may go on in the next read
                        break
                    piece, self._method = _stand_in(piece)
                self._judge_request_line(piece)
                found, upgraded, tail = self._parser.feed_data(piece)
                if found:  # (a piece ends at its head's end: the next starts the next)
                    body = found[-1][1]
                    self._head, self._body = (b"", None) if body.is_eof() else (None, body)
                    if self._method is not None:  # the head's own method, in place of GET
                        found[0] = (found[0][0]._replace(method=self._method), found[0][1])
                        self._method = None
                for item in found:
                    version = item[0].version
                    if version not in _SERVED:  # llhttp takes HTTP/0.9 and 2.0 lines too
                        raise HttpProcessingError(
                            code=505,
                            message=f"HTTP/{version[0]}.{version[1]} is not served here: "
                            "send HTTP/1.1 or HTTP/1.0",
                        )
                    host = item[0].headers.get("Host")
                    if host is not None and not valid_host(host):
                        raise HttpProcessingError(
                            code=400, message=f"the Host header {host[:100]!r} is not a host"
                        )
                    coding = item[0].headers.get("Transfer-Encoding")
                    if coding is not None and coding.strip().lower() != "chunked":
                        # Dechunked, a gzip-coded body would go on unmarked: nginx's 501.
                        raise HttpProcessingError(
                            code=501,
                            message=f"Transfer-Encoding {coding[:100]!r} is not supported: "
                            "send the body chunked alone, or with a Content-Length",
                        )
                    messages.append(_closing_if_needed(item) if version < (1, 1) else item)
                    self.body_awaited = not item[1].is_eof()
                if upgraded:
                    tail += data[end:]
                    break
                start = end
                if start >= size:
                    break
        except HttpProcessingError as exc:
            # A message whose body was still arriving is broken too: it gets the 400, not
            # a handler that would wait for the rest of its body for ever.
            while messages and not messages[-1][1].is_eof():
                messages.pop()
            self._failed = True
            status = exc.code if exc.code in (501, 505) else 400
            message = exc.message
            if isinstance(exc, LineTooLong):
                status, message = (
                    (414, f"the request target is over {MAX_TARGET} bytes")
                    if exc.args[1] == MAX_TARGET
                    else (431, f"a request header is over {MAX_FIELD} bytes")
                )
            messages.append((_ErrInfo(status=status, exc=exc, message=message), EMPTY_PAYLOAD))
        return messages, upgraded, tail

    def _judge_request_line(self, piece: bytes) -> None:
        """Judge a head's request line once it is whole (http1.request_line_fault), before
        its headers come: an HTTP/0.9 request is whole at its line's end, and nginx answers
        another version or protocol at once, not after the header timeout. Only for what
        follows a message without a body to come (else `piece` may hold some of it)."""
        if self._head is not None and len(self._head) <= MAX_TARGET:
            self._head += piece
            fault = request_line_fault(self._head)
            if fault is not None:
                raise HttpProcessingError(code=fault[0], message=fault[1])
            if b"\r\n" in self._head.lstrip(b"\r\n"):
                self._head = None  # the line is whole, and served: the parser judges the rest


def _stand_in(piece: bytes) -> tuple[bytes, str | None]:
    """`piece`, a head's first bytes, with GET in place of an upper-case method llhttp was
    not built with, and that method; `piece` and None for any other. The head is judged and
    its body counted alike whatever the method (CONNECT, which differs, llhttp knows)."""
    start = len(piece) - len(piece.lstrip(b"\r\n"))
    space = piece.find(b" ", start)
    method = bytes(piece[start:space])  # (Windows' proactor reads into a bytearray)
    if space <= start or method in _LLHTTP_METHODS or not EXTENSION_METHOD.fullmatch(method):
        return piece, None
    return piece[:start] + b"GET" + piece[space:], method.decode("ascii")


def _closing_if_needed(item: Any) -> Any:
    """RFC 9112 section 6.1: an HTTP/1.0 message with a Transfer-Encoding closes its
    connection after the answer."""
    message, payload = item
    if "Transfer-Encoding" in message.headers:
        return message._replace(should_close=True), payload
    return item


def _first_line(exc: BaseException | None, message: str | None) -> str:
    text = message or (str(exc) if exc is not None else "") or "bad request"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else "bad request"
    said = first.rstrip(":") + (f" ({lines[1]})" if len(lines) > 1 and first.endswith(":") else "")
    return said if len(said) <= 200 else said[:200] + "..."  # it may quote a huge line


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, (list, tuple)) else str(peer)


class Site(web.TCPSite):
    """aiohttp's TCP site with the fast lane accepting its connections, so that aiohttp's
    runner still starts and stops listening and waits for what was handed over."""

    __slots__ = ("_lane", "_plain_refused")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        lane: Callable[[], asyncio.Protocol],
        ssl_context: ssl.SSLContext | None = None,
        plain_refused: Callable[[str], bytes] | None = None,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self._lane = lane
        self._plain_refused = plain_refused

    async def start(self) -> None:
        await web.BaseSite.start(self)
        if self._ssl_context is not None and self._plain_refused is not None and not IS_WINDOWS:
            # (Windows' proactor loop cannot wait for a socket to be readable: TLS as it was.)
            self._server = await tls.listen(
                self._lane, self._host, self._port, self._ssl_context, self._plain_refused,
                backlog=BACKLOG,
            )  # fmt: skip
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._lane, self._host, self._port, reuse_address=self._reuse_address,
            ssl=self._ssl_context, backlog=BACKLOG,
        )  # fmt: skip

"""HTTP pass-through (docs/protocol.md, "Pass-through"): the child is an ordinary web server.

The request goes on as it came (method, path and query, headers less hop-by-hop ones, `Host`
kept, body streamed) with `X-Forwarded-For`, `-Proto`, `-Host` and `X-Request-Id` added; the
answer streams back as the child writes it, so chunked answers and Server-Sent Events reach
the client as they are flushed. Redirects go to the client, never followed; nothing is
decompressed. Connections to the child are pooled.

Both servers speak to the child through one exchange, `upstream` (transports/upstream.py,
the request's bytes from relay.child_request): the fast lane writes the answer as bytes
(relay.Answer); aiohttp's side, for the requests the lane hands it, through an aiohttp
response (`relay`). Unlike the envelope transports, this one answers the client itself, so
its seam is a sink for the answer, not an envelope. A WebSocket that reaches aiohttp's side
is relayed frame by frame both ways (text, binary, ping, pong, close codes) with aiohttp's
client; the lane's go as bytes (tunnel.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from multidict import CIMultiDict
from yarl import URL

from local_lambdas import _compat
from local_lambdas.cors import Policy
from local_lambdas.envelope import TOKEN_HEADER
from local_lambdas.errors import (
    ChildUnreachable,
    ClientTooSlow,
    ForwardError,
    PayloadTooLarge,
)
from local_lambdas.forwarding import NOT_FORWARDED, Pairs, as_utf8, end_to_end, own_address
from local_lambdas.http1 import RETRYABLE
from local_lambdas.relay import answer_headers, child_request
from local_lambdas.transports.upstream import MAX_HEAD, Exchange, Upstream

log = logging.getLogger("local_lambdas.passthrough")

_CHUNK = 64 * 1024


def to_child(
    headers: Pairs, *, client: str | None, scheme: str, host: str, token: str,
    request_id: str, prefix: str | None,
) -> list[tuple[str, str]]:  # fmt: skip
    """A request's headers as the child gets them: end to end, `Host` as sent (`host`, the
    address the client reached, when it sent none),
    X-Forwarded-For/-Proto/-Host from the connection (never the client's claims),
    X-Forwarded-Prefix when a prefix was stripped, the request's id and the run's token.
    (relay.child_request writes the same rules straight as lines, for the fast lane.)"""
    out = []
    forwarded_for = ""
    hosted = False
    for lower, name, value in end_to_end(headers, NOT_FORWARDED):
        if lower == "x-forwarded-for":
            forwarded_for = value
            continue
        hosted = hosted or lower == "host"
        out.append((name, value))
    if not hosted:  # an HTTP/1.0 request may have none; HTTP/1.1, which the child gets, must
        out.insert(0, ("Host", host))
    client = client or ""
    out.append(("X-Forwarded-For", f"{forwarded_for}, {client}" if forwarded_for else client))
    out.append(("X-Forwarded-Proto", scheme))
    out.append(("X-Forwarded-Host", host))
    out.append(("X-Request-Id", request_id))
    if prefix:
        out.append(("X-Forwarded-Prefix", prefix))
    out.append((TOKEN_HEADER, token))
    return out


class PassthroughTransport:
    def __init__(self, address: str, *, max_response: int) -> None:
        self._base = f"http://{address}"
        host, _, port = address.rpartition(":")
        # The fast lane's way to the child: raw HTTP/1.1 (transports/upstream.py).
        self.upstream = Upstream(host.strip("[]"), int(port))
        self._session: aiohttp.ClientSession | None = None
        # Each relayed WebSocket: the client's end and the child's.
        self._sockets: set[tuple[web.WebSocketResponse, aiohttp.ClientWebSocketResponse[bool]]] = (
            set()
        )
        self._closed = False

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                # The lane's limit on an answer's head, so that both lanes take the same.
                max_line_size=MAX_HEAD,
                max_field_size=MAX_HEAD,
            )
        return self._session

    def _headers(
        self, request: web.BaseRequest, request_id: str, token: str, prefix: str | None = None
    ) -> CIMultiDict[str]:
        return CIMultiDict(to_child(
            request.headers.items(), client=request.remote, scheme=request.scheme,
            host=request.headers.get("Host") or own_address(request.transport), token=token,
            request_id=request_id, prefix=prefix,
        ))  # fmt: skip

    async def relay(
        self,
        request: web.BaseRequest,
        target: str,
        headers: list[tuple[str, str]],
        request_id: str,
        *,
        body: bytes | None,
        read_so_far: bytes = b"",
        timeout: float,
        body_limit: int,
        body_timeout: float,
        token: str,
        cors: tuple[Policy, str | None] | None = None,
        prefix: str | None = None,
        keep: int = 0,
    ) -> web.StreamResponse:
        """Send `request` (its `headers` as the client spelt them) to the child at `target`
        (path and query) and stream its answer: the fast lane's exchange (upstream.py), its
        answer written through aiohttp's response rather than as bytes.

        `body` is the request's body when the caller has read it already (it goes on with a
        Content-Length); else it streams, after `read_so_far` (what the caller read of it),
        chunked unless the client gave its length.
        `prefix` is what <strip_prefix> took off the target: the child is told it
        (X-Forwarded-Prefix), and the redirects it answers are put back under it. The
        answer's first `keep` bytes are kept (Relayed.kept).
        Raises the transport errors of upstream.py before the answer's head; after it, a
        broken stream ends the client's connection abruptly, so the client sees an error
        rather than a short answer.
        """
        if self._closed:
            raise ChildUnreachable("the child exited before the request was sent")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, target, request_id, token)
        streamed: _RequestBody | None = None
        chunked = False
        if body is not None:
            if request.body_exists:  # read whole: its length is known now, chunked or not
                headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
                headers.append(("Content-Length", str(len(body))))
        elif request.body_exists:
            chunked = request.content_length is None
            streamed = _RequestBody(request, read_so_far, chunked=chunked, limit=body_limit,
                                    timeout=body_timeout)  # fmt: skip
        if "Host" not in request.headers:  # HTTP/1.0 may omit it; the child must get one
            headers = [("Host", own_address(request.transport)), *headers]
        sent = child_request(
            request.method, target, headers, body or b"", client=request.remote,
            scheme=request.scheme, token=token, request_id=request_id, prefix=prefix,
            chunked=chunked,
        )  # fmt: skip
        answer = _Streamed(request_id, prefix, cors, keep)
        sending = asyncio.ensure_future(self.upstream.send(
            sent, answer, timeout=timeout, head_only=request.method == "HEAD",
            idempotent=request.method in RETRYABLE, body=streamed,
        ))  # fmt: skip
        sending.add_done_callback(answer.wake)
        try:
            return await answer.write_to(request, sending)
        finally:
            if not sending.done():  # the client left, say: the child's connection closes
                sending.cancel()
            if streamed is not None:
                streamed.stop()

    async def _websocket(
        self, request: web.BaseRequest, target: str, request_id: str, token: str
    ) -> web.StreamResponse:
        headers = self._headers(request, request_id, token)
        # Host stays as the client sent it: servers that check Origin compare it with Host.
        for name in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions",
                     "Sec-WebSocket-Protocol"):  # fmt: skip
            headers.popall(name, None)
        protocols = [
            p.strip()
            for value in request.headers.getall("Sec-WebSocket-Protocol", [])
            for p in value.split(",")
        ]
        try:
            child = await self._client().ws_connect(
                URL(self._base + target, encoded=True), headers=headers, protocols=protocols,
                autoping=False, autoclose=False, max_msg_size=0,
            )  # fmt: skip
        except aiohttp.WSServerHandshakeError as exc:
            return web.Response(status=exc.status, text=f"the child refused the upgrade: {exc}\n")
        except aiohttp.ClientError as exc:
            raise ChildUnreachable(f"cannot open a WebSocket to the child: {exc}") from exc
        client = web.WebSocketResponse(
            protocols=[child.protocol] if child.protocol else (), autoping=False,
            autoclose=False, max_msg_size=0,
        )  # fmt: skip
        await client.prepare(request)
        self._sockets.add((client, child))
        try:
            await _pump_both(client, child)
        finally:
            self._sockets.discard((client, child))
            await child.close()
        return client

    async def close_websockets(self) -> None:
        """Close every relayed WebSocket, both ends, with 1001 (going away), as on a stop."""
        for client, child in list(self._sockets):
            await asyncio.gather(
                client.close(code=WSCloseCode.GOING_AWAY, message=b"stopping"),
                child.close(code=WSCloseCode.GOING_AWAY, message=b"stopping"),
            )

    async def aclose(self) -> None:
        """The child is gone (or its route-only upstream is dropped). A WebSocket still open
        is not closed here with 1001, as a stop closes them (app.py, before the children
        stop): its child's end is gone, which the pump reports as 1011, as the lane's tunnel
        does."""
        self._closed = True
        self.upstream.close()
        if self._session is not None:
            await self._session.close()
            self._session = None


class Relayed(web.StreamResponse):
    """A child's answer as it came: aiohttp would add a Content-Type to a body without one.
    `kept` is what the inspector keeps of its body."""

    def __init__(self, *, status: int, reason: str | None, typed: bool) -> None:
        super().__init__(status=status, reason=reason)
        self._typed = typed
        self.kept = b""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        if not self._typed:
            self.headers.popall(hdrs.CONTENT_TYPE, None)


_HIGH = 256 * 1024  # answer bytes held for a slow client before the child is not read


class _Streamed:
    """The child's answer as upstream.py hands it on (a Sink), held until `write_to` writes
    it through aiohttp's response: the sink's calls come from the child's connection, the
    writes are awaited by the request's handler."""

    def __init__(
        self, request_id: str, prefix: str | None, cors: tuple[Policy, str | None] | None,
        keep: int,
    ) -> None:  # fmt: skip
        self._request_id, self._prefix, self._cors = request_id, prefix, cors
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
        out, _ = answer_headers(headers, self._request_id, self._prefix, self._cors)
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

    async def write_to(self, request: web.BaseRequest, sending: asyncio.Future[None]) -> Relayed:
        while self._head is None:
            if sending.done():
                sending.result()  # the exchange's failure, before any answer
                raise ChildUnreachable("the child's connection ended without an answer")
            await self._change()
        status, reason, out = self._head
        typed = any(name.lower() == "content-type" for name, _ in out)
        response = Relayed(status=status, reason=reason, typed=typed)
        response.headers.extend(out)
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
                    why = self._broken or "its connection ended"
                    log.warning("[%s] the child's answer broke off: %s", self._request_id, why)
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


class _RequestBody:
    """A request body streamed to the child as aiohttp reads it (an upstream.Body), after
    `read_so_far`: chunked when the client gave no length, stopped past `limit` bytes
    (PayloadTooLarge) or when no byte comes for `timeout` seconds (ClientTooSlow)."""

    def __init__(
        self, request: web.BaseRequest, read_so_far: bytes, *, chunked: bool, limit: int,
        timeout: float,
    ) -> None:  # fmt: skip
        self._content = request.content
        self._read_so_far = read_so_far
        self._chunked, self._limit, self._timeout = chunked, limit, timeout
        self._go = asyncio.Event()
        self._go.set()
        self._task: asyncio.Task[None] | None = None
        self.complete = False

    def start(self, exchange: Exchange) -> None:
        self._task = asyncio.ensure_future(self._pump(exchange))

    def pause(self) -> None:
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _write(self, exchange: Exchange, data: bytes) -> None:
        exchange.write_body(b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data)

    async def _pump(self, exchange: Exchange) -> None:
        seen = len(self._read_so_far)
        try:
            if self._read_so_far:
                self._write(exchange, self._read_so_far)
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
                self._write(exchange, chunk)
        except ForwardError as exc:
            exchange.body_failed(exc)
            return
        except (OSError, aiohttp.ClientError) as exc:  # the client left mid-upload
            exchange.body_failed(ForwardError(f"the client left during its upload: {exc}"))
            return
        if self._chunked:
            exchange.write_body(b"0\r\n\r\n")
        self.complete = True


async def _pump_both(
    client: web.WebSocketResponse, child: aiohttp.ClientWebSocketResponse[bool]
) -> None:
    """Relay frames both ways until a side closes. A close frame crosses with its code and
    reason, and the other side's answer to it comes back; a side that goes without a close
    frame is reported to the other as 1011 (the child died) or 1001 (the client left)."""
    Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse[bool]

    async def pump(source: Socket, sink: Socket, gone: int) -> None:
        while True:
            message = await source.receive()
            kind = message.type
            if kind is WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif kind is WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif kind is WSMsgType.PING:
                await sink.ping(message.data)
            elif kind is WSMsgType.PONG:
                await sink.pong(message.data)
            elif kind is WSMsgType.CLOSE:
                code = message.data if message.data not in _UNSENDABLE else WSCloseCode.OK
                await sink.close(code=code, message=(message.extra or "").encode())
                answer = sink.close_code
                await source.close(code=code if answer is None or answer in _UNSENDABLE else answer)
                return
            elif kind is WSMsgType.CLOSING:
                return  # the other pump is closing this socket: it answers for both
            else:  # CLOSED or ERROR: gone without a close frame
                if not sink.closed:
                    await sink.close(code=gone, message=b"")
                return

    to_child = asyncio.ensure_future(pump(client, child, WSCloseCode.GOING_AWAY))
    to_client = asyncio.ensure_future(pump(child, client, WSCloseCode.INTERNAL_ERROR))
    try:
        # Both: the one that saw the close frame finishes the closing handshake for both.
        await asyncio.gather(to_child, to_client, return_exceptions=True)
    finally:
        for task in (to_child, to_client):
            if not task.done():
                task.cancel()
        await asyncio.gather(to_child, to_client, return_exceptions=True)


# Close codes a peer may report but must never send (RFC 6455, 7.4.1).
_UNSENDABLE = frozenset({0, 1005, 1006, 1015})

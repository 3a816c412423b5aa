"""HTTP pass-through (docs/protocol.md, "Pass-through"): the child is an ordinary web server.

The request goes on as it came (method, path and query, headers less hop-by-hop ones, `Host`
kept, body streamed) with `X-Forwarded-For`, `-Proto`, `-Host` and `X-Request-Id` added; the
answer streams back as the child writes it, so chunked answers and Server-Sent Events reach
the client as they are flushed. Redirects go to the client, never followed; nothing is
decompressed. WebSocket upgrades are relayed frame by frame both ways (text, binary, ping,
pong, close codes). Connections to the child are pooled.

Unlike the envelope transports, this one answers the client itself: `relay` streams, so its
seam is the aiohttp request, not an envelope.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from multidict import CIMultiDict
from yarl import URL

from local_lambdas import _compat
from local_lambdas.cors import Policy
from local_lambdas.envelope import TOKEN_HEADER
from local_lambdas.errors import (
    BadResponse,
    ChildTimeout,
    ChildUnreachable,
    ClientTooSlow,
    ForwardError,
    PayloadTooLarge,
)
from local_lambdas.forwarding import (
    NOT_FORWARDED,
    Pairs,
    end_to_end,
    own_address,
    under_prefix,
)
from local_lambdas.transports.upstream import MAX_HEAD, Upstream

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
        """Send `request` to the child at `target` (path and query) and stream its answer.

        `body` is the request's body when the caller has read it already; else it streams,
        after `read_so_far` (what the caller read of it).
        `prefix` is what <strip_prefix> took off the target: the child is told it
        (X-Forwarded-Prefix), and the redirects it answers are put back under it. The
        answer's first `keep` bytes are kept (Relayed.kept).
        Raises ChildUnreachable when the child refused or dropped the connection before its
        answer began; after that, a broken stream ends the client's connection abruptly, so
        the client sees an error rather than a short answer.
        """
        if self._closed:
            raise ChildUnreachable("the child exited before the request was sent")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, target, request_id, token)
        data: bytes | AsyncIterator[bytes] | None = body
        if body is None and request.body_exists:
            data = _limited(request, body_limit, body_timeout, read_so_far)
        headers = self._headers(request, request_id, token, prefix)
        try:
            upstream = await self._client().request(
                request.method,
                URL(self._base + target, encoded=True),  # as sent: yarl would requote it
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout),
            )
        except aiohttp.ClientConnectorError as exc:
            raise ChildUnreachable(f"cannot connect to {self._base}: {exc.strerror}") from exc
        except asyncio.TimeoutError as exc:  # aiohttp's ServerTimeoutError: never sent again
            raise ChildTimeout(
                f"the child did not begin its answer within {timeout:g}s (its <timeout>)"
            ) from exc
        except aiohttp.ClientConnectionError as exc:
            # aiohttp wraps what the body stream raised (the body limit) in its own error.
            if isinstance(exc.__cause__, ForwardError):
                raise exc.__cause__ from None
            raise ChildUnreachable(f"the child dropped the connection: {exc}") from exc
        except aiohttp.ClientResponseError as exc:  # an answer that breaks HTTP
            message = " ".join(str(exc.message).split())
            raise BadResponse(f"the child's answer is not valid HTTP: {message}") from exc
        async with upstream:
            typed = hdrs.CONTENT_TYPE in upstream.headers
            response = (
                _Keeping(status=upstream.status, reason=upstream.reason, typed=typed, keep=keep)
                if keep
                else Relayed(status=upstream.status, reason=upstream.reason, typed=typed)
            )
            response.headers.extend((n, v) for _, n, v in end_to_end(upstream.headers.items()))
            response.headers["X-Request-Id"] = request_id
            if prefix:
                for name in ("Location", "Content-Location", "Refresh"):
                    value = response.headers.get(name)
                    if value is not None:
                        response.headers[name] = under_prefix(name.lower(), value, prefix)
            if cors is not None:  # the proxy's CORS headers, not the child's
                policy, origin = cors
                answered = policy.answer(origin, list(response.headers.items()))
                response.headers.clear()
                response.headers.extend(answered)
            try:
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:
                # Our write to the client failed: it went away (a closed tab, the end of a
                # load test). Nobody is left to answer; aiohttp takes it from here quietly.
                log.debug("[%s] the client left before its answer was sent", request_id)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                log.warning(
                    "[%s] the child's answer broke off mid-stream: %s",
                    request_id,
                    exc or type(exc).__name__,
                )
                if request.transport is not None:
                    request.transport.close()  # the client must see an error, not an ending
            return response

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
        self._closed = True
        self.upstream.close()
        await self.close_websockets()
        if self._session is not None:
            await self._session.close()
            self._session = None


class Relayed(web.StreamResponse):
    """A child's answer as it came: aiohttp would add a Content-Type to a body without one.
    `kept` is what the inspector keeps of its body (nothing here: see _Keeping)."""

    def __init__(self, *, status: int, reason: str | None, typed: bool) -> None:
        super().__init__(status=status, reason=reason)
        self._typed = typed
        self._kept: list[bytes] = []

    @property
    def kept(self) -> bytes:
        return b"".join(self._kept)

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        if not self._typed:
            self.headers.popall(hdrs.CONTENT_TYPE, None)


class _Keeping(Relayed):
    """A Relayed answer whose first `keep` bytes are kept as they are written; a class of
    its own so that without the inspector no write goes through one more function."""

    def __init__(self, *, status: int, reason: str | None, typed: bool, keep: int) -> None:
        super().__init__(status=status, reason=reason, typed=typed)
        self._room = keep

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._room > 0:
            piece = bytes(data[: self._room])
            self._kept.append(piece)
            self._room -= len(piece)
        await super().write(data)


async def _limited(
    request: web.BaseRequest, limit: int, timeout: float, read_so_far: bytes
) -> AsyncIterator[bytes]:
    """The request body as it arrives, after `read_so_far`, stopped past
    `limit` bytes (PayloadTooLarge) or when no byte comes for `timeout` seconds
    (ClientTooSlow)."""
    seen = len(read_so_far)
    if read_so_far:
        yield read_so_far
    content = request.content
    while True:
        try:
            async with _compat.timeout(timeout):
                chunk = await content.read(_CHUNK)
        except asyncio.TimeoutError:
            raise ClientTooSlow(timeout) from None
        if not chunk:
            return
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLarge(limit)
        yield chunk


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

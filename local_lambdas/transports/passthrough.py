"""HTTP pass-through (docs/protocol.md, "Pass-through"): the child is an ordinary web server.

The request goes on as it came (method, path and query, headers less hop-by-hop ones, `Host`
kept, body streamed) with `X-Forwarded-For`, `-Proto`, `-Host` and `X-Request-Id` added; the
answer streams back as the child writes it, so chunked answers and Server-Sent Events reach
the client as they are flushed. Redirects go to the client, never followed; nothing is
decompressed. Connections to the child are pooled.

Both servers speak to the child through one exchange, `upstream` (transports/upstream.py,
the request's bytes from relay_request.child_request): the fast lane writes the answer as bytes
(relay.Answer); aiohttp's side, for the requests the lane hands it, through an aiohttp
response (`relay`, with transports/aiohttp_side.py). Unlike the envelope transports, this
one answers the client itself, so its seam is a sink for the answer, not an envelope. A
WebSocket that reaches aiohttp's side is relayed frame by frame both ways (text, binary,
ping, pong, close codes) with aiohttp's client; the lane's go as bytes (lane/tunnel.py).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from multidict import CIMultiDict
from yarl import URL

from local_lambdas.cors import Policy
from local_lambdas.envelope import MAX_HEAD, TOKEN_HEADER
from local_lambdas.errors import ChildUnreachable, UpgradeRefused
from local_lambdas.forwarding import FROM_CLIENT_DROPPED, Pairs, end_to_end, own_address
from local_lambdas.lane.http1 import RETRYABLE
from local_lambdas.lane.relay_request import child_request, forwarded
from local_lambdas.lane.tunnel import Tunnel
from local_lambdas.spool import Spool
from local_lambdas.transports.aiohttp_side import RequestBody, SpooledBody, Streamed
from local_lambdas.transports.closes import Closes
from local_lambdas.transports.upstream import Upstream

log = logging.getLogger("local_lambdas.passthrough")


def to_child(
    headers: Pairs, *, client: str | None, scheme: str, host: str, token: str,
    request_id: str, prefix: str | None,
) -> list[tuple[str, str]]:  # fmt: skip
    """A request's headers as the child gets them: end to end, `Host` as sent (`host`, the
    address the client reached, when it sent none),
    X-Forwarded-For/-Proto/-Host from the connection (never the client's claims),
    X-Forwarded-Prefix when a prefix was stripped, the request's id and the run's token.
    (relay_request.child_request writes the same rules straight as lines, for the fast lane.)"""
    out = []
    forwarded_for = ""
    hosted = False
    for lower, name, value in end_to_end(headers, FROM_CLIENT_DROPPED):
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
    def __init__(self, address: str, *, max_response: int, closes: Closes | None = None) -> None:
        self._base = f"http://{address}"
        host, _, port = address.rpartition(":")
        # The fast lane's way to the child: raw HTTP/1.1 (transports/upstream.py).
        self.upstream = Upstream(host.strip("[]"), int(port), closes=closes)
        self._session: aiohttp.ClientSession | None = None
        # Each relayed WebSocket: the client's end and the child's.
        self._sockets: set[tuple[web.WebSocketResponse, aiohttp.ClientWebSocketResponse[bool]]] = (
            set()
        )
        self.tunnels: set[Tunnel] = set()  # the fast lane's, added by lane/answers.py
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
        spooled: Spool | None = None,
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

        `body` is the request's body when the caller has read it already, or `spooled`
        when the caller kept it in a temporary file (either goes on with a Content-Length);
        else it streams, with the Content-Length the client gave.
        `prefix` is what <strip_prefix> took off the target: the child is told it
        (X-Forwarded-Prefix), and the redirects it answers are put back under it. The
        answer's first `keep` bytes are kept (Relayed.kept).
        Raises the transport errors of exchange.py before the answer's head; after it, a
        broken stream ends the client's connection abruptly, so the client sees an error
        rather than a short answer.
        """
        if self._closed:
            raise ChildUnreachable("the child exited before the request was sent")
        if _asks_websocket(request):
            return await self._websocket(request, target, request_id, token)
        streamed: RequestBody | SpooledBody | None = None
        size = None if body is None else len(body)
        if spooled is not None:
            streamed, size = SpooledBody(spooled), spooled.size
        elif body is None and request.body_exists:
            streamed = RequestBody(request, limit=body_limit, timeout=body_timeout)
        if size is not None and request.body_exists:  # read whole: its length is known now
            headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
            headers.append(("Content-Length", str(size)))
        if not any(name.lower() == "host" for name, _ in headers):
            # HTTP/1.0 may omit it (and an absolute-form target's host is in `headers`
            # already); the child, sent HTTP/1.1, must get one.
            headers = [("Host", own_address(request.transport)), *headers]
        sent = child_request(
            request.method, target, forwarded(headers), body or b"", client=request.remote,
            scheme=request.scheme, token=token, request_id=request_id, prefix=prefix,
        )  # fmt: skip
        answer = Streamed(request_id, prefix, self.upstream.origin, cors, keep, self.upstream.name)
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
            raise UpgradeRefused(exc.status) from exc
        except aiohttp.ServerDisconnectedError as exc:  # (its text: the answer's repr)
            raise ChildUnreachable("cannot open a WebSocket to the child: it closed the "
                                   "connection before its answer's end") from exc  # fmt: skip
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

    async def end_streams(self, *, restart: bool = False) -> None:
        """End what would hold a stop or a replacement of this child up to <timeout>, so that
        its clients reconnect (to its replacement) at once: every WebSocket relayed to it,
        both ends, each lane's, closed with 1001 (going away) on a stop, 1012 (service
        restart) when the child is being replaced; every Server-Sent Events answer ended as
        the child would end it (an EventSource reconnects by itself). Other answers finish."""
        self.upstream.end_event_streams()
        code = WSCloseCode.SERVICE_RESTART if restart else WSCloseCode.GOING_AWAY
        why = b"restarting" if restart else b"stopping"
        for tunnel in list(self.tunnels):
            tunnel.stop(code)
        for client, child in list(self._sockets):
            await asyncio.gather(
                client.close(code=code, message=why), child.close(code=code, message=why)
            )

    async def aclose(self) -> None:
        """The child is gone (or its route-only upstream is dropped). A WebSocket still open
        is not closed here with 1001, as a stop closes them (lifecycle.py, before the children
        stop): its child's end is gone, which the pump reports as 1011, as the lane's tunnel
        does."""
        self._closed = True
        self.upstream.close()
        if self._session is not None:
            await self._session.close()
            self._session = None


def _asks_websocket(request: web.BaseRequest) -> bool:
    """A WebSocket handshake (RFC 6455 4.1): a GET with `Upgrade: websocket` and a Connection
    header naming `upgrade`. Without it, `Upgrade` asks for nothing and is dropped."""
    if request.method != "GET" or request.headers.get("Upgrade", "").lower() != "websocket":
        return False
    named = (
        t.strip().lower() for v in request.headers.getall("Connection", ()) for t in v.split(",")
    )
    return "upgrade" in named


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

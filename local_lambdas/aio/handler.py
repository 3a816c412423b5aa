"""aiohttp's way in: every request aiohttp's server takes (the admin endpoints, what the fast
lane hands over, everything with --no-fast-lane), decided and answered through the same core
as the fast lane's (proxy.py): the same plan, refusals, exchange and accounting; here only
what is aiohttp's (its request object, reading the body, 100 Continue, its response).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import HttpVersion11, StreamReader, web

from local_lambdas import _compat
from local_lambdas.admin.inspector import BODY
from local_lambdas.aio.server import awaiting_body, close_at_once, paced, still_there
from local_lambdas.config import Fate
from local_lambdas.envelope import Response
from local_lambdas.errors import (
    ChildUnreachable,
    ClientGone,
    ClientTooSlow,
    ForwardError,
    PayloadTooLarge,
)
from local_lambdas.forwarding import strip_prefix
from local_lambdas.lane.http1 import CLIENT_CLOSED
from local_lambdas.proxy import BUFFERED, Proxy
from local_lambdas.router import authority
from local_lambdas.spool import Spool
from local_lambdas.supervision.instance import Instance
from local_lambdas.supervision.pool import Pool
from local_lambdas.transports.aiohttp_side import UPLOAD_STARTED, Relayed

log = logging.getLogger("local_lambdas.aiohandler")

AdminHandler = Callable[[web.BaseRequest, str], Awaitable[web.StreamResponse]]
# Statuses after which the connection is closed, as nginx does: the request may not have
# been read to its end, so the next bytes cannot be trusted to start a request.
CLOSING: Final = frozenset({400, 408, 413, 414, 431})


class AioHandler:
    """`handle`, aiohttp's handler; `admin` answers the requests planned ADMIN."""

    def __init__(self, proxy: Proxy, admin: AdminHandler | None = None) -> None:
        self._proxy = proxy
        self._admin = admin
        self._told_no_websockets: set[str] = set()  # the processes _no_websockets named

    def _no_websockets(self, pool: Pool, method: str, path: str) -> None:
        """Say, once a process, that a WebSocket handshake came to an envelope-mode process:
        it is answered as a plain request (as a server without WebSockets answers it, and as
        nginx passes it on), and the browser's WebSocket fails with no word of why."""
        process = pool.process
        if process.id in self._told_no_websockets:
            return
        self._told_no_websockets.add(process.id)
        log.warning(
            "%s: a WebSocket handshake (%s %s) came to this process, whose mode (%s) has no "
            "WebSockets: it was answered as a plain request; a WebSocket server goes behind "
            "<communication_mode>passthrough</communication_mode>",
            process.id, method, path, process.communication_mode.value,
        )  # fmt: skip

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """aiohttp's handler for every request it gets: pass-through, the admin endpoints,
        and whatever the fast lane hands over (lane/fastlane.py)."""
        proxy = self._proxy
        started = time.monotonic()
        # Names as the client spelt them (aiohttp's parsed headers respell the well-known ones).
        headers = [
            (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
            for name, value in request.raw_headers
        ]
        request_id = proxy.ids.identify(request.headers.get("X-Request-Id"), headers)
        method = request.method
        answer: web.StreamResponse
        body: bytes | None = None if request.body_exists else b""  # None: not read, or streamed
        length = request.content_length
        origin = request.headers.get("Origin")
        plan = proxy.plan(
            method, request.raw_path, length, origin,
            request.headers.get("Access-Control-Request-Method"),
        )  # fmt: skip
        pool, uri, path, fate = plan.pool, plan.target, plan.path, plan.fate
        if request.raw_path[:1] != "/" and fate is not Fate.BAD_TARGET:
            # An absolute-form target: its host is the request's, whatever Host says (RFC 9112
            # 3.2.2), as nginx reads it; children are told that host.
            headers[:] = [("Host", authority(request.raw_path)),
                          *((k, v) for k, v in headers if k.lower() != "host")]  # fmt: skip
        response: Response | None = None
        if fate is Fate.ADMIN:
            await _continue(request)
            assert self._admin is not None
            answer = await self._admin(request, path)
            if not answer.prepared:  # (the dashboard's event stream is sent as it goes)
                answer.headers["X-Request-Id"] = request_id
            return answer
        if fate is Fate.PREFLIGHT:
            preflight = proxy.preflight(plan, origin, request.headers.items())
            allowed = [*preflight.headers, ("X-Request-Id", request_id)]
            answer = web.Response(status=204, headers=allowed)
            proxy.finish(pool, method, uri, 204, started, request_id, (headers, b""),
                        (allowed, b""))  # fmt: skip
            return answer
        if fate is Fate.RELAY:
            assert pool is not None
            try:
                # A small body is read whole before a child is chosen, as nginx buffers
                # bodies, so a slow client never holds a child's slot; a chunked one goes on
                # with a Content-Length, as nginx sends it (many servers cannot read a
                # chunked request: Python's http.server...), from a temporary file past
                # BUFFERED (spool.py). A large one with a Content-Length streams.
                spooled = None
                if request.body_exists and (length is None or length <= BUFFERED):
                    whole = await keep_body(request, pool.process.max_body_size,
                                            proxy.body_timeout)  # fmt: skip
                    if isinstance(whole, Spool):
                        spooled = whole
                    else:
                        body = whole
                try:
                    answer = await self._relay(
                        pool, request, uri, path, headers, request_id, origin, body, spooled
                    )
                finally:
                    if spooled is not None:
                        spooled.close()
            except ForwardError as exc:
                response = proxy.failure(exc, pool.process, request_id)
            else:
                if not answer.prepared:  # a streamed answer carries its id already
                    answer.headers["X-Request-Id"] = request_id
        elif fate is Fate.ENVELOPE:
            assert pool is not None
            if request.headers.get("Upgrade", "").lower() == "websocket":
                self._no_websockets(pool, method, path)
            try:
                # A body past BUFFERED waits for its child in a temporary file (spool.py).
                whole = await keep_body(request, pool.process.max_body_size, proxy.body_timeout)
            except ForwardError as exc:
                response = proxy.failure(exc, pool.process, request_id)
            else:
                spooled = whole if isinstance(whole, Spool) else None
                body = None if isinstance(whole, Spool) else whole  # (a spooled one: not kept)
                try:
                    response = await proxy.answer(
                        pool, method, uri, path, headers, body or b"", request.remote,
                        request_id, spooled=spooled,
                    )  # fmt: skip
                finally:
                    if spooled is not None:  # (read already, unless no child took it)
                        spooled.close()
        else:
            response = proxy.refusal(plan, request_id, method)
        if response is not None:
            answer_headers = [*response.headers, ("X-Request-Id", request_id)]
            if not response.body and method == "HEAD":  # (aiohttp leaves it out; the lane
                answer_headers.append(("Content-Length", "0"))  # and GET say it: 0)
            if pool is not None and pool.cors is not None:
                answer_headers = pool.cors.answer(request.headers.get("Origin"), answer_headers)
            answer = web.Response(
                status=response.status, headers=answer_headers,
                body=paced(request, response.body),
            )  # fmt: skip
            if response.status in CLOSING:
                answer.force_close()
                if response.status == 408 or (
                    _waits_to_continue(request) and request.writer.output_size == 0
                ):
                    close_at_once(request)
            status = answer.status if still_there(request) else CLIENT_CLOSED
            proxy.finish(pool, method, uri, status, started, request_id, (headers, body),
                        (answer_headers, response.body))  # fmt: skip
            return answer
        kept = answer.kept if isinstance(answer, Relayed) else None
        # (A relayed head that reached the client: its status stands, however much followed.)
        reached = answer.reached if isinstance(answer, Relayed) else True
        status = answer.status if reached else CLIENT_CLOSED
        proxy.finish(pool, method, uri, status, started, request_id, (headers, body),
                    (answer.headers.items(), kept))  # fmt: skip
        return answer

    async def _relay(
        self,
        pool: Pool,
        request: web.BaseRequest,
        uri: str,
        path: str,
        headers: list[tuple[str, str]],
        request_id: str,
        origin: str | None,
        body: bytes | None,
        spooled: Spool | None,
    ) -> web.StreamResponse:
        """Pass-through: the answer streams, so <timeout> bounds each wait for the child's
        next bytes rather than the whole exchange (an event stream may last for hours).
        `body` is the request's, read already, or `spooled` in a file; neither when it
        streams."""
        proxy = self._proxy
        process = pool.process
        target, stripped = strip_prefix(uri, process.strip_prefix, path)
        streams = body is None and spooled is None and request.body_exists
        if streams:
            await _continue(request)  # the body streams to the child: ask for it

        async def exchange(child: Instance) -> web.StreamResponse:
            relay = child.link.relay
            if relay is None:  # (the pool leases READY instances: not seen)
                raise ChildUnreachable(f"{child.name} stopped")
            if streams and request.get(UPLOAD_STARTED):  # a retry: the body is gone
                raise ChildUnreachable("the child dropped the connection during the upload")
            return await relay.relay(
                request,
                target,
                headers,
                request_id,
                body=body,
                spooled=spooled,
                timeout=child.timeout,  # (its own: a reload may have rerouted the request)
                body_limit=process.max_body_size,
                body_timeout=proxy.body_timeout,
                token=proxy.token,
                cors=None if pool.cors is None else (pool.cors, origin),
                prefix=stripped,
                keep=BODY if proxy.inspector is not None else 0,
            )

        return await proxy.attempt(pool, request.method, uri, path, exchange)


async def read_body(
    request: web.BaseRequest, limit: int, timeout: float, *, enough: int | None = None
) -> bytes:
    """The whole request body: PayloadTooLarge past `limit` bytes, ClientTooSlow when no
    byte comes for `timeout` seconds. Asks for it first if the client waits to be asked.
    With `enough`, reading stops once more than that has come: a longer result is the
    body's start, and the rest is still to be read."""
    if not request.body_exists:
        return b""
    await _continue(request)
    body = bytearray()
    content = request.content
    with awaiting_body(request):
        while True:
            chunk = await _piece(content, timeout)
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(limit)
            if enough is not None and len(body) > enough:
                return bytes(body)


async def keep_body(request: web.BaseRequest, limit: int, timeout: float) -> bytes | Spool:
    """The whole body, as `read_body` reads it: in memory up to BUFFERED bytes, past that in
    a Spool (a temporary file: the caller's to close)."""
    start = await read_body(request, limit, timeout, enough=BUFFERED)
    if len(start) <= BUFFERED:
        return start
    spool = Spool(start)
    content = request.content
    try:
        with awaiting_body(request):
            while True:
                piece = await _piece(content, timeout)
                if not piece:
                    return spool
                if spool.size + len(piece) > limit:
                    raise PayloadTooLarge(limit)
                spool.write(piece)
    except BaseException:
        spool.close()
        raise


async def _piece(content: StreamReader, timeout: float) -> bytes:
    """The next bytes of a body as they come (b"": its end); ClientTooSlow when none come
    for `timeout` seconds, ClientGone when the client leaves first (a reset, or a close:
    aiohttp says either as ConnectionResetError)."""
    try:
        async with _compat.timeout(timeout):
            return await content.readany()
    except asyncio.TimeoutError:
        raise ClientTooSlow(timeout) from None
    except ConnectionResetError:
        raise ClientGone("the client left before its request body had all come") from None


def _waits_to_continue(request: web.BaseRequest) -> bool:
    """Whether the client waits for 100 Continue before it sends its body."""
    expect = request.headers.get("Expect")
    return (
        expect is not None and expect.lower() == "100-continue" and request.version >= HttpVersion11
    )


async def _continue(request: web.BaseRequest) -> None:
    """Tell a client that waits for it (Expect: 100-continue) to send its body, once."""
    if _waits_to_continue(request) and request.writer.output_size == 0:  # none sent yet
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

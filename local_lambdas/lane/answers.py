"""What the fast lane sends for one request (connection.py drives it): an envelope
mode's answer, written whole once the child's is decoded; the proxy's own 404, 405 or CORS
preflight answer; or a pass-through answer, sent to the child in raw HTTP/1.1
(transports/upstream.py) and relayed to the client as it comes (relay.py). Answers have the
headers aiohttp would write, CORS's on a route with <cors> (tests compare the two)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final

from local_lambdas.admin.inspector import BODY
from local_lambdas.client_limits import PIECE
from local_lambdas.cors import Policy
from local_lambdas.envelope import Response
from local_lambdas.errors import ChildUnreachable, ForwardError
from local_lambdas.failures import error_response
from local_lambdas.forwarding import strip_prefix
from local_lambdas.lane.http1 import CLIENT_CLOSED, NO_BODY, PREFLIGHT, RETRYABLE
from local_lambdas.lane.message import Message
from local_lambdas.lane.relay import Answer
from local_lambdas.lane.relay_request import child_request
from local_lambdas.supervision.instance import Instance
from local_lambdas.supervision.pool import Pool

if TYPE_CHECKING:
    from local_lambdas.lane.connection import Connection

log = logging.getLogger("local_lambdas.fastlane")

_now: Final = time.monotonic  # a C-level constant, not two lookups per call
GONE: Final = memoryview(b"")  # write's answer when the client has left


async def answer(connection: Connection, message: Message) -> bool:
    """Answer one request (an envelope mode's, a refusal or a preflight here, a pass-through
    one in `relay`); whether the connection stays open."""
    started = _now()
    proxy = connection.lane.proxy
    request_id = proxy.ids.identify(message.request_id, message.headers)
    keep_alive = message.keep_alive
    pool, refusal = message.pool, message.refusal
    preflight = refusal is not None and refusal.fate is PREFLIGHT
    if refusal is not None and preflight:  # as aiohttp's side answers it
        response = proxy.preflight(refusal, message.origin, message.headers)
    elif refusal is not None:  # a 404, 405 or 301, the proxy's own (as aiohttp's side's)
        response = proxy.refusal(refusal, request_id, message.method)
    else:
        assert pool is not None
        if pool.relays:
            return await relay(connection, message, pool, request_id, started)
        try:
            response = await proxy.answer(
                pool, message.method, message.target, message.path, message.headers,
                message.body, connection.peer, request_id, connection.task, message.repeats,
            )  # fmt: skip
        except Exception:
            log.exception("%s %s: failed inside local-lambdas", message.method, message.target)
            text = "local-lambdas failed while answering; its log has the details"
            response = error_response(500, text, pool.process, request_id)
            keep_alive = False
    keep_alive = keep_alive and not connection.lane.stopping
    # (A preflight's headers are CORS's own; every other answer on a <cors> route gets them.)
    cors = pool.cors if pool is not None and not preflight else None
    rest = write(connection, response, message, request_id, keep_alive, cors)
    status = response.status
    if rest is GONE:
        status, rest = CLIENT_CLOSED, None
    proxy.finish(
        pool, message.method, message.target, status, started, request_id,
        (message.headers, message.body), (response.headers, response.body),
    )  # fmt: skip
    connection.lane.served += 1
    if rest is not None:
        await connection.write_paced(rest)
    return keep_alive


async def relay(
    connection: Connection, message: Message, pool: Pool, request_id: str, started: float
) -> bool:
    """A pass-through request: sent to the child in raw HTTP/1.1 (transports/upstream.py),
    its answer written here as it comes (relay.py); whether the connection stays open."""
    proxy = connection.lane.proxy
    process = pool.process
    target, prefix = strip_prefix(message.target, process.strip_prefix, message.path)
    request = child_request(
        message.method, target, connection.forwarding.of(message.block, message.headers),
        message.body, client=connection.peer, scheme=connection.scheme, token=proxy.token,
        request_id=request_id, prefix=prefix, upgrade=message.upgrade,
    )  # fmt: skip
    keep_alive = message.keep_alive and not connection.lane.stopping
    upload = connection.upload if message.streams else None
    relayed = Answer(
        connection, process=pool.id, version=message.version, keep_alive=keep_alive,
        request_id=request_id, prefix=prefix, method=message.method,
        keep=BODY if proxy.inspector is not None else 0,
        cors=None if pool.cors is None else (pool.cors, message.origin), upload=upload,
        date=connection.lane.date(), heads=connection.relayed,
    )  # fmt: skip
    head_only = message.method == "HEAD"
    sent = (message.headers, None if message.streams else message.body)  # streamed: not kept

    async def exchange(child: Instance) -> None:
        relay = child.link.relay
        if relay is None:  # (the pool leases READY instances: not seen)
            raise ChildUnreachable(f"{child.name} stopped")
        if upload is not None and upload.started:  # a retry: the body is gone
            raise ChildUnreachable("the child dropped the connection during the upload")
        relayed.origin = relay.upstream.origin
        # Within the child's own <timeout>: a reload may have rerouted the request.
        await relay.upstream.send(
            request, relayed, timeout=child.timeout, head_only=head_only,
            idempotent=message.method in RETRYABLE, upgrade=message.upgrade is not None,
            body=upload,
        )  # fmt: skip
        tunnel = relayed.tunnel
        if tunnel is not None:  # a WebSocket: its instance stays in use while it lasts
            connection.lane.tunnels.add(tunnel)
            relay.tunnels.add(tunnel)
            try:
                await tunnel.ended
            finally:
                connection.lane.tunnels.discard(tunnel)
                relay.tunnels.discard(tunnel)

    connection.relaying = True
    try:
        await proxy.attempt(pool, message.method, message.target, message.path, exchange)
    except asyncio.CancelledError:
        if connection.closing:  # the client left (connection_lost): not an error
            log.debug("[%s] the client left before its answer was sent", request_id)
            proxy.finish(
                pool, message.method, message.target, relayed.status or CLIENT_CLOSED,
                started, request_id, sent, (relayed.headers, relayed.kept),
            )  # fmt: skip
        raise
    except ForwardError as exc:
        # A body not read to its end leaves the connection out of step: it closes.
        keep_alive = keep_alive and connection.upload is None
        response = proxy.failure(exc, process, request_id)
        rest = write(connection, response, message, request_id, keep_alive, pool.cors)
        status = CLIENT_CLOSED if rest is GONE else response.status  # (small: whole)
        proxy.finish(
            pool, message.method, message.target, status, started, request_id,
            sent, (response.headers, response.body),
        )  # fmt: skip
        return keep_alive
    finally:
        connection.relaying = False
    proxy.finish(
        pool, message.method, message.target, relayed.status, started, request_id,
        sent, (relayed.headers, relayed.kept),
    )  # fmt: skip
    connection.lane.served += 1
    return relayed.keep_alive and connection.upload is None


def unfinished(
    connection: Connection, message: Message | None, error: ForwardError, started: float
) -> bool:
    """A request the lane took whose body never all came (it stopped for
    --client-body-timeout: 408; the client left: 499), answered and counted as aiohttp's
    side answers and counts it (aio.handler.read_body); `started`: when it began to
    arrive. Whether there was one."""
    if message is None:
        return False
    pool = message.pool
    assert pool is not None  # (a request awaiting its body is routed)
    proxy = connection.lane.proxy
    request_id = proxy.ids.identify(message.request_id, message.headers)
    response = proxy.failure(error, pool.process, request_id)
    rest = write(connection, response, message, request_id, False, pool.cors)
    proxy.finish(
        pool, message.method, message.target, CLIENT_CLOSED if rest is GONE else error.status,
        started, request_id, (message.headers, None), (response.headers, response.body),
    )  # fmt: skip
    return True


def write(
    connection: Connection, response: Response, message: Message, request_id: str, keep: bool,
    cors: Policy | None = None,
) -> memoryview | None:  # fmt: skip
    """`response` to the client, as aiohttp's side writes it: with the request's id, and on
    a route with <cors> the proxy's CORS headers in place of the child's (around the id, as
    cors.Policy.answer puts them). Over TLS a body larger than client_limits.PIECE is begun, and
    the rest returned, for ClientWriter.write_paced (writing.py). GONE, with nothing
    written, when the client has left."""
    transport = connection.transport
    if transport is None or transport.is_closing():
        return GONE  # its answer goes nowhere, as with aiohttp
    status = response.status
    sent = response.body if message.method != "HEAD" and status not in NO_BODY else b""
    headers = response.headers
    given_id: str | None = request_id
    if cors is not None:
        headers = cors.answer(message.origin, [*headers, ("X-Request-Id", request_id)])
        given_id = None  # among the headers now
    data = connection.answers.head(
        status, headers, given_id, version=message.version, length=len(response.body),
        sent=bool(sent), keep=keep, date=connection.lane.date_line(),
    )  # fmt: skip
    if len(sent) < 65536:
        transport.write(data + sent)
        return None
    transport.write(data)  # a large body is not copied once more to join it to its head
    if len(sent) <= PIECE or connection.scheme != "https":
        transport.write(sent)
        return None
    return memoryview(sent)

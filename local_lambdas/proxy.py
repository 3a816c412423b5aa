"""The request handler: route, read the body, forward to the child, answer or explain.

Every failure becomes a short JSON body (`{"error", "process", "request_id"}`) with the
status of DESIGN section 6, and a log line carrying the same request id.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets

from aiohttp import web
from multidict import CIMultiDict

from local_lambdas import _compat
from local_lambdas.child import Child
from local_lambdas.config import Process
from local_lambdas.envelope import Request, Response, shown
from local_lambdas.errors import BadResponse, ChildTimeout, ChildUnreachable, ForwardError
from local_lambdas.router import Router

log = logging.getLogger("local_lambdas.proxy")

# Methods that nginx retries on another attempt when nothing came back: safe to send twice.
RETRYABLE = frozenset({"GET", "HEAD", "OPTIONS"})
_CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,200}$")
_NO_BODY = frozenset({204, 304})


class PayloadTooLarge(ForwardError):
    status = 413


class Proxy:
    """Holds the routing table; `handle` is the aiohttp handler for every request."""

    def __init__(self, children: dict[str, Child]) -> None:
        self._router: Router[Child] = Router(
            (route, child) for child in children.values() for route in child.process.routes
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        client_id = request.headers.get("X-Request-Id", "")
        request_id = client_id if _CLIENT_ID.match(client_id) else secrets.token_hex(8)
        child = self._router.match(request.path)
        if child is None:
            return _error(404, f"no route matches {request.path}", None, request_id)
        process = child.process
        if process.methods is not None and request.method not in process.methods:
            answer = _error(
                405, f"{request.method} is not allowed on this route", process, request_id
            )
            answer.headers["Allow"] = ", ".join(process.methods)
            return answer
        try:
            body = await _read_body(request, process.max_body_size)
            forwarded = Request(
                method=request.method,
                uri=request.raw_path,
                headers=list(request.headers.items()),
                body=body,
                request_id=request_id,
                client=request.remote,
            )
            response = await self._forward(child, forwarded)
        except ForwardError as exc:
            _log_failure(exc, process, request_id)
            answer = _error(exc.status, str(exc), process, request_id)
            if exc.retry_after is not None:
                answer.headers["Retry-After"] = f"{exc.retry_after:.0f}"
            return answer
        headers = CIMultiDict(response.headers)
        headers["X-Request-Id"] = request_id
        body = b"" if response.status in _NO_BODY else response.body
        return web.Response(status=response.status, headers=headers, body=body)

    async def _forward(self, child: Child, request: Request) -> Response:
        """Send to the READY child; retry once, after it is ready again, as DESIGN section 7."""
        process = child.process
        transport = await child.ready_transport(0)
        for attempt in (1, 2):
            generation = child.generation
            try:
                async with _compat.timeout(process.timeout):
                    return await transport.forward(request)
            except asyncio.TimeoutError as exc:
                raise ChildTimeout(
                    f"{process.id} did not answer within {process.timeout:g}s (its <timeout>)"
                ) from exc
            except ChildUnreachable as exc:
                if attempt == 2 or request.method not in RETRYABLE:
                    raise
                log.info(
                    "%s: %s; retrying %s %s once", process.id, exc, request.method, request.uri
                )
                if child.has_exited():
                    # Wait for the replacement, within what a restart may take.
                    transport = await child.ready_transport(
                        process.startup_timeout + 1, newer_than=generation
                    )
        raise AssertionError("unreachable")


async def _read_body(request: web.Request, limit: int) -> bytes:
    too_large = PayloadTooLarge(
        f"the request body is over the route's limit of {limit} bytes (<max_body_size>)"
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _error(status: int, message: str, process: Process | None, request_id: str) -> web.Response:
    answer = web.json_response(
        {"error": message, "process": process.id if process else None, "request_id": request_id},
        status=status,
    )
    answer.headers["X-Request-Id"] = request_id
    return answer


def _log_failure(exc: ForwardError, process: Process, request_id: str) -> None:
    fields = {
        "event": "error",
        "process": process.id,
        "status": exc.status,
        "request_id": request_id,
    }
    if isinstance(exc, BadResponse):
        log.warning(
            "%s: [%s] 502: %s; it sent: %s",
            process.id,
            request_id,
            exc,
            shown(exc.received),
            extra={"fields": fields},
        )
    elif exc.status >= 500:
        log.warning(
            "%s: [%s] %d: %s", process.id, request_id, exc.status, exc, extra={"fields": fields}
        )

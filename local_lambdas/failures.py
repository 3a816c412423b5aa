"""What a request that failed answers: the JSON error of docs/protocol.md ("Errors") with
its status and request id, `Retry-After` where the error gives one, and a log line with the
same id (a 502's with what the child sent). An HTTP child that closed a connection unanswered
is asked once, per address, whether it serves HTTPS there, since the 502 alone does not say
why. Used by the request core (proxy.py) and the fast lane's own answers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from local_lambdas.config import Process
from local_lambdas.envelope import Response, error_body, shown
from local_lambdas.errors import BadResponse, ClientTooSlow, ForwardError
from local_lambdas.supervision import explain, readiness

if TYPE_CHECKING:
    from local_lambdas.supervision.pool import Pool

log = logging.getLogger("local_lambdas.failures")

_JSON: Final = "application/json; charset=utf-8"


def error_response(status: int, message: str, process: Process | None, request_id: str) -> Response:
    """The JSON error body of docs/protocol.md ("Errors"), as an answer."""
    body = error_body(message, request_id, process.id if process else None)
    return Response(status, [("Content-Type", _JSON)], body)


def failed(exc: ForwardError, process: Process, request_id: str) -> Response:
    """The answer to a request `exc` ended, said in the log."""
    _log_failure(exc, process, request_id)
    answer = error_response(exc.status, str(exc), process, request_id)
    if exc.retry_after is not None:
        answer.headers.append(("Retry-After", f"{exc.retry_after:.0f}"))
    return answer


class TlsQuestion:
    """Whether an HTTP child that closed a connection unanswered serves HTTPS: asked once
    per address, and said if it does (a plain server may log the handshake as a bad
    request, once)."""

    def __init__(self) -> None:
        self._asked: set[str] = set()  # child addresses asked
        self._asking: set[asyncio.Task[None]] = set()  # (the loop keeps only weak references)

    def ask(self, process: Process, pool: Pool | None) -> None:
        if pool is None or process.communication_mode.uses_pipe:
            return
        for child in pool.instances:
            address = child.link.address
            if address and address not in self._asked:
                self._asked.add(address)
                asking = asyncio.get_running_loop().create_task(_say_if_tls(process, address))
                self._asking.add(asking)
                asking.add_done_callback(self._asking.discard)


async def _say_if_tls(process: Process, address: str) -> None:
    if await readiness.speaks_tls(address):
        log.warning("%s", explain.serves_tls(process, address),
                    extra={"fields": {"event": "serves_tls", "process": process.id}})  # fmt: skip


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
    elif exc.status >= 500 or isinstance(exc, ClientTooSlow):
        log.warning(
            "%s: [%s] %d: %s", process.id, request_id, exc.status, exc, extra={"fields": fields}
        )

"""The request core both HTTP servers share: a request's plan (which child, or which
refusal), its id (request_ids.py), the envelope exchange with a child within its <timeout>,
the retry, and the accounting (statistics, access log, inspector). It does not use aiohttp:
aiohttp's side is aio/handler.py, the fast lane's is the lane/ package.

Every failure becomes a short JSON body (`{"error", "process", "request_id"}`) with the
status of docs/protocol.md ("Errors"), and a log line carrying the same request id
(failures.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, TypeVar
from urllib.parse import quote

from local_lambdas.admin.inspector import Inspector, Kept
from local_lambdas.config import Fate, Process
from local_lambdas.cors import is_preflight
from local_lambdas.deadlines import Deadlines
from local_lambdas.envelope import Repeats, Request, Response
from local_lambdas.errors import (
    SHUTTING_DOWN,
    UNANSWERED,
    BadResponse,
    ChildTimeout,
    ChildUnreachable,
    ForwardError,
    NotConnected,
    NotReady,
    PayloadTooLarge,
    notes,
)
from local_lambdas.failures import TlsQuestion, error_response, failed
from local_lambdas.lane.http1 import NO_BODY, RETRYABLE
from local_lambdas.request_ids import RequestIds
from local_lambdas.router import BadTarget, origin_form, resolve
from local_lambdas.spool import Spool
from local_lambdas.supervision.instance import Instance
from local_lambdas.supervision.pool import Pool, PoolRetired
from local_lambdas.supervision.supervisor import Supervisor

log = logging.getLogger("local_lambdas.proxy")

T = TypeVar("T")
AccessLog = Callable[[str, str, "str | None", int, float, str], None]

_now: Final = time.monotonic  # a C-level constant, not two lookups per call
BUFFERED: Final = 1024**2  # pass-through bodies up to this size are read before a child is chosen


class Plan:
    """A request's fate, decided from its head (Proxy.plan). A plain class, as are the other
    objects made for every request: a compiled dataclass's __init__ is still interpreted."""

    __slots__ = ("fate", "path", "pool", "problem", "target")

    def __init__(
        self, fate: Fate, path: str, target: str, pool: Pool | None, problem: str = ""
    ) -> None:
        self.fate = fate
        self.path = path  # normalised, as routes see it
        self.target = target  # origin form, as sent
        self.pool = pool
        self.problem = problem  # for a refusal: why


class Proxy:
    """What both HTTP servers ask of every request (the fast lane, lane/fastlane.py, and aiohttp's,
    aio/handler.py): its plan, its id (`ids`), the envelope exchange with a child and the
    retry, and its accounting; the supervisor owns the routes.

    `access`, when given, is called once per request with (method, uri, process id or None,
    status, seconds, request id): the access log. Paths under `admin_prefix`, when given,
    are the proxy's own endpoints (an ADMIN plan). `body_timeout` bounds each wait for a
    client's body bytes. `inspector`, when set, keeps each request and its answer
    (admin/inspector.py).
    """

    def __init__(
        self,
        supervisor: Supervisor,
        *,
        access: AccessLog | None = None,
        admin_prefix: str | None = None,
        body_timeout: float = 60.0,
    ) -> None:
        self.supervisor = supervisor
        self.token = supervisor.token  # the run's, on every request to a child
        self._access = access
        self.admin_prefix = admin_prefix
        self.body_timeout = body_timeout
        self.inspector: Inspector | None = None
        self.ids = RequestIds()
        # One per <timeout> value: requests with the same limit end in the order they start.
        self._deadlines: dict[float, Deadlines] = {}
        self._last_limit = Deadlines(-1.0)  # the last one asked for (none yet)
        self._tls = TlsQuestion()

    def close(self) -> None:
        for deadlines in self._deadlines.values():
            deadlines.close()

    def _limit(self, seconds: float) -> Deadlines:
        last = self._last_limit
        if last.seconds == seconds:  # (most requests: a float's dict lookup boxes it, 450)
            return last
        deadlines = self._deadlines.get(seconds)
        if deadlines is None:
            deadlines = self._deadlines[seconds] = Deadlines(seconds)
        self._last_limit = deadlines
        return deadlines

    def plan(
        self, method: str, target: str, length: int | None, origin: str | None = None,
        preflight_method: str | None = None,
    ) -> Plan:  # fmt: skip
        """A request's fate, decided from its head alone, the same for both servers (the
        fast lane serves the envelope and relay fates it can; aiohttp's side, everything)."""
        try:
            path, pool = resolve(target, self.supervisor.router.match)
            if target[:1] != "/":
                target = origin_form(target)
        except BadTarget as exc:
            return Plan(Fate.BAD_TARGET, target, target, None, str(exc))
        if self.admin_prefix is not None and path.startswith(self.admin_prefix):
            return Plan(Fate.ADMIN, path, target, pool)
        if pool is None:
            router = self.supervisor.router
            if router.folder(path) or path + "/" == self.admin_prefix:
                return Plan(
                    Fate.MOVED,
                    path,
                    target,
                    None,
                    f"{path}/ is the route; {path} is below no route",
                )
            return Plan(Fate.NO_ROUTE, path, target, None, router.unmatched(path))
        asked = method
        if preflight_method is not None and is_preflight(method, origin, preflight_method):
            if pool.cors is not None:
                # The proxy's to answer, before <methods>, which a preflight is not held to.
                return Plan(Fate.PREFLIGHT, path, target, pool)
            # The child's to answer (CORS off): judged by the method it asks about.
            asked = preflight_method
        methods = pool.methods
        if methods is not None and asked not in methods:
            return Plan(Fate.NOT_ALLOWED, path, target, pool,
                        f"{asked} is not allowed on this route")  # fmt: skip
        if length is not None and length > pool.max_body_size:
            # Before any 100 Continue: the client need not send what would be refused.
            return Plan(Fate.TOO_LARGE, path, target, pool)
        return Plan(pool.fate, path, target, pool)

    def refusal(self, plan: Plan, request_id: str, method: str) -> Response:
        """The answer to a request whose plan refuses it (400, 404, 405, 413) or sends it
        on (301, 308), before its body is read."""
        pool = plan.pool
        process = pool.process if pool is not None else None
        if plan.fate is Fate.TOO_LARGE:
            assert process is not None
            return self.failure(PayloadTooLarge(process.max_body_size), process, request_id)
        if plan.fate is Fate.MOVED:
            # (308 keeps a POST's method and body, where a browser follows a 301 with a GET.)
            status = 301 if method in ("GET", "HEAD") else 308
            answer = error_response(status, plan.problem, None, request_id)
            # The path as routes read it (decoded), escaped again: `/a b` goes to `/a%20b/`.
            _, mark, query = plan.target.partition("?")
            folder = quote(plan.path + "/", errors="surrogateescape")
            answer.headers.append(("Location", folder + mark + query))
            return answer
        status = {Fate.BAD_TARGET: 400, Fate.NO_ROUTE: 404, Fate.NOT_ALLOWED: 405}[plan.fate]
        answer = error_response(status, plan.problem, process, request_id)
        if plan.fate is Fate.NOT_ALLOWED and process is not None and process.methods:
            answer.headers.append(("Allow", ", ".join(process.methods)))
        return answer

    def preflight(
        self, plan: Plan, origin: str | None, headers: Iterable[tuple[str, str]]
    ) -> Response:
        """The 204 answer to a CORS preflight (a PREFLIGHT plan), but its X-Request-Id."""
        pool = plan.pool
        assert pool is not None and pool.cors is not None
        asked: dict[str, str] = {}  # the first of each header, as aiohttp's side reads them
        for name, value in headers:
            asked.setdefault(name.lower(), value)
        allowed = pool.cors.preflight(
            origin, asked.get("access-control-request-method", ""),
            asked.get("access-control-request-headers"), pool.process.methods,
            asked.get("access-control-request-private-network"),
        )  # fmt: skip
        return Response(204, allowed, b"")

    def finish(
        self, pool: Pool | None, method: str, uri: str, status: int, started: float, rid: str,
        sent: Kept, answered: Kept,
    ) -> None:  # fmt: skip
        """Count an answered request in its process's statistics, the access log and the
        inspector: `sent` and `answered` are the request's and the answer's headers and body
        (None: a body not kept, as one that streamed)."""
        seconds = _now() - started
        if pool is not None:
            pool.stats.record(status, seconds)
        process = pool.id if pool is not None else None
        if self._access is not None:
            self._access(method, uri, process, status, seconds, rid)
        if self.inspector is not None:
            self.inspector.record(rid, method, uri, process, status, seconds, sent, answered)

    async def answer(
        self,
        pool: Pool,
        method: str,
        uri: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        client: str | None,
        request_id: str,
        task: asyncio.Task[Any] | None = None,
        repeats: Repeats | None = None,
        spooled: Spool | None = None,
    ) -> Response:
        """An envelope mode's exchange with the child, or why it failed, as the answer to
        send (without its X-Request-Id): the path both HTTP cores share. `task`, the one
        running this (the lane knows it; asyncio.current_task is interpreted on 3.11);
        `repeats`, its connection's, where the lane saw its head repeat the last one;
        `spooled`, the body in its place, until a child takes the request (spool.py; the
        caller's to close)."""
        forwarded = Request(method, uri, headers, body, request_id, client, self.token, repeats)
        try:
            cache = pool.cache
            hit = cache.lookup(forwarded) if cache is not None else None
            if hit is not None:
                response = hit
            else:
                # With the child `attempt` chooses:
                exchange = _Exchange(self, forwarded, task, spooled)
                response = await self.attempt(pool, method, uri, path, exchange)
                if cache is not None:
                    cache.store(forwarded, response)
        except ForwardError as exc:
            return self.failure(exc, pool.process, request_id)
        if response.status in NO_BODY:
            return Response(response.status, response.headers, b"")
        return response  # the cache may hold it too: callers do not change it

    def failure(self, exc: ForwardError, process: Process, request_id: str) -> Response:
        """What a failed request answers (failures.py), said in the log once."""
        if isinstance(exc, ChildUnreachable) and str(exc).startswith(UNANSWERED):
            self._tls.ask(process, self.supervisor.pools.get(process.id))
        return failed(exc, process, request_id)

    async def attempt(
        self,
        pool: Pool,
        method: str,
        uri: str,
        path: str,
        exchange: Callable[[Instance], Awaitable[T]],
    ) -> T:
        """Run `exchange` on a READY instance; retry once, after it is ready again, as
        docs/protocol.md ("Errors") says. A pool retired by a reload sends its waiting
        requests back here, to be routed again."""
        avoid: tuple[Instance, int] | None = None
        while True:
            if self.supervisor.stopping:
                raise NotReady(SHUTTING_DOWN, retry_after=1)
            try:
                child = pool.try_acquire(avoid) or await pool.acquire(avoid)
                generation = child.generation
                try:
                    return await exchange(child)
                except ChildTimeout:  # (before its slot goes to a request waiting in line)
                    pool.pass_over(child, "did not answer within its <timeout>")
                    raise
                except BadResponse:
                    pool.pass_over(child, "answered something that is not a valid answer")
                    raise
                finally:
                    pool.release(child)
            except PoolRetired:
                rerouted = self.supervisor.route(path)
                if rerouted is None:
                    raise NotReady(f"{pool.process.id} was removed by a reload") from None
                refused = _not_rerouted(pool, rerouted)
                if refused is not None:
                    raise NotReady(refused, retry_after=1) from None
                pool = rerouted
                continue
            except ChildUnreachable as exc:
                # A request that never reached the child may be sent again whatever its method.
                if avoid is not None or not (method in RETRYABLE or isinstance(exc, NotConnected)):
                    raise
                log.info("%s: %s; retrying %s %s once", child.name, exc, method, uri)
            # If that process is gone, or no longer listens, wait for its restart, or for it to
            # listen again, rather than use it again. (After the except block: compiled code
            # must not wait inside one, see CONTRIBUTING.)
            avoid = (child, -1 if await child.link.still_serving() else generation)


def _not_rerouted(pool: Pool, rerouted: Pool) -> str | None:
    """Why a request waiting for `pool` is not sent on to `rerouted`, which a reload gave its
    route, if it is not: the request was read for one kind of exchange (an envelope, or
    pass-through's relay) and the new process takes the other, or its target was cut for
    another <strip_prefix>."""
    if rerouted.relays is not pool.relays:
        kind = "a pass-through server" if rerouted.relays else "an envelope child"
        why = f"{rerouted.id}, {kind}, takes its route now"
    elif rerouted.process.strip_prefix != pool.process.strip_prefix:
        why = f"{rerouted.id} takes its route now, with another <strip_prefix>"
    else:
        return None
    return f"{pool.id} was replaced by a reload as this request waited; {why}: send it again"


class _Exchange:
    """Proxy.answer's exchange with the child `attempt` chose (an object rather than a
    closure: compiled, 600 instructions less a request)."""

    def __init__(
        self, proxy: Proxy, forwarded: Request, task: asyncio.Task[Any] | None,
        spooled: Spool | None,
    ) -> None:  # fmt: skip
        self.proxy, self.forwarded, self.task, self.spooled = proxy, forwarded, task, spooled

    async def __call__(self, child: Instance) -> Response:
        """The whole exchange with `child` within its <timeout> (its own: a reload may
        have rerouted the request)."""
        transport = child.link.transport
        if transport is None:  # (the pool leases READY instances: not seen)
            raise ChildUnreachable(f"{child.name} stopped")
        spooled = self.spooled
        if spooled is not None:  # the body waited on disk for this child (spool.py)
            self.spooled = None
            self.forwarded.body = spooled.read()
        deadlines = self.proxy._limit(child.timeout)
        limited = deadlines.start(self.task)
        try:
            return await transport.forward(self.forwarded)
        except asyncio.CancelledError as cancelled:
            if deadlines.stop(limited):
                raise ChildTimeout(
                    f"{child.name} did not answer within {deadlines.seconds:g}s "
                    f"(its <timeout>){notes(cancelled)}"
                ) from None
            raise
        finally:
            deadlines.stop(limited)

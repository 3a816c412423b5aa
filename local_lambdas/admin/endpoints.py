"""The proxy's own endpoints, under a reserved prefix (default `/_/`, see --admin-prefix):

/_/health    200 while the proxy runs
/_/ready     200 when every process is READY; else 503 naming those that are not
/_/status    JSON per process: state, instances (pid, restarts, last exit), requests,
             errors, in flight, queue, latency p50/p99
/_/metrics   the same in the Prometheus text format
POST /_/processes/ID/restart   restart one process as a reload does (a new one beside the
             old, swapped in when ready: held requests are not failed); loopback clients only
/_/, /_/events, /_/requests...   the dashboard and the request inspector (dashboard.py)

Loopback is not enough against a browser on the same machine: a page on another site may
send it requests. So the endpoints that act (POST: restart, replay) refuse what a browser
marks as another site's (Sec-Fetch-Site, Origin: cross-site request forgery), and, unless
--admin-public, those that tell (all but health and ready) refuse a Host that is neither
localhost nor an IP address: a site whose name was re-pointed at 127.0.0.1 (DNS rebinding)
would otherwise read the dashboard as its own. Clients that are not browsers send neither.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from aiohttp import web

from local_lambdas.admin.dashboard import Dashboard
from local_lambdas.binding import is_loopback
from local_lambdas.errors import did_you_mean
from local_lambdas.supervision.pool import Pool
from local_lambdas.supervision.supervisor import Supervisor

# Say nothing of the children (pids, addresses, their output): open to any client, so that
# load balancers and orchestrators can probe a proxy bound to a public address.
OPEN = frozenset({"health", "ready"})


class Admin:
    """The endpoints under `prefix` (e.g. "/_/"); `handle` answers any request under it.
    Unless `public`, those not in OPEN answer loopback clients only."""

    def __init__(
        self, supervisor: Supervisor, prefix: str, *, public: bool = False,
        dashboard: Dashboard | None = None,
    ) -> None:  # fmt: skip
        self.prefix = prefix.rstrip("/") + "/"
        self.public = public
        self.dashboard = dashboard
        self._supervisor = supervisor
        self._started = time.time()
        # Each given whether the client is trusted with the children's output (`handle`).
        self._endpoints: dict[str, Callable[[bool], web.Response]] = {
            "health": self._health,
            "ready": self._ready,
            "status": self._status,
            "metrics": self._metrics,
        }

    async def handle(self, request: web.BaseRequest, path: str) -> web.StreamResponse:
        """Answer `request`, whose normalised path `path` is under the prefix."""
        name = path[len(self.prefix) :]
        if name.startswith("processes/"):
            return await self._process_action(request, path, name.split("/"))
        endpoint = self._endpoints.get(name)
        shown = self.dashboard is not None and (
            name in ("", "events", "requests") or name.startswith("requests/")
        )
        # Whether the client may read what the proxy knows of its children (their output).
        trusted = self.public or is_loopback(request.remote)
        private = (endpoint is not None or shown) and name not in OPEN and not self.public
        if private and not trusted:
            return web.json_response(
                {"error": f"{path} answers loopback clients only; start local-lambdas "
                          "with --admin-public to open it"}, status=403,
            )  # fmt: skip
        refused = _from_another_site(request, path, acts=request.method == "POST",
                                     tells=private)  # fmt: skip
        if refused is not None:
            return refused
        if shown:
            assert self.dashboard is not None
            return await self.dashboard.handle(request, name, path)
        if endpoint is None:
            known = ", ".join(self.prefix + name for name in ("", *self._endpoints))
            return web.json_response(
                {"error": f"no endpoint {path}; the proxy's own are {known}"}, status=404
            )
        if request.method not in ("GET", "HEAD"):
            answer = web.json_response(
                {"error": f"{request.method} is not allowed on {path}"}, status=405
            )
            answer.headers["Allow"] = "GET, HEAD"
            return answer
        return endpoint(trusted)

    async def _process_action(
        self, request: web.BaseRequest, path: str, parts: list[str]
    ) -> web.Response:
        """POST /_/processes/ID/restart."""
        if len(parts) != 3 or parts[2] != "restart":
            return web.json_response(
                {"error": f"no endpoint {path}; POST {self.prefix}processes/ID/restart"},
                status=404,
            )
        if not is_loopback(request.remote):  # whatever --admin-public says: it acts
            return web.json_response(
                {"error": f"{path} is accepted from loopback clients only"}, status=403
            )
        refused = _from_another_site(request, path, acts=True, tells=not self.public)
        if refused is not None:
            return refused
        if request.method != "POST":
            answer = web.json_response({"error": f"{path} takes POST"}, status=405)
            answer.headers["Allow"] = "POST"
            return answer
        process = parts[1]
        if process in self._supervisor.tasks:  # (run once: what a restart is, it has not)
            return web.json_response({"process": process, "error": (
                f"{process!r} is a <task>: it runs once, as the proxy starts, before what "
                "depends on it; restart local-lambdas to run it again"
            )}, status=409)  # fmt: skip
        if process not in self._supervisor.pools:
            known = ", ".join(self._supervisor.pools) or "none"
            meant = did_you_mean(process, self._supervisor.pools)
            return web.json_response(
                {"error": f"no process {process!r}; {meant}the processes are: {known}"},
                status=404,
            )
        disabled = self._supervisor.pools[process].disabled
        if disabled is not None:  # (--only): there is nothing to restart
            return web.json_response({"process": process, "error": disabled}, status=409)
        ready = await self._supervisor.restart(process)
        pool = self._supervisor.pools[process]
        body = {"process": process, "restarted": ready, "state": pool.state.value}
        if not ready:
            why = self._supervisor.failed_replacements.get(process) or pool.why_not_ready(said=True)
            body["error"] = (
                "the proxy is stopping"
                if self._supervisor.stopping
                else f"its replacement did not become ready ({why})"
            )
        return web.json_response(body, status=200 if ready else 503)

    def _health(self, told: bool) -> web.Response:
        uptime = round(time.time() - self._started, 3)
        return web.json_response({"status": "ok", "uptime_s": uptime})

    def _ready(self, told: bool) -> web.Response:
        waiting = self._supervisor.not_ready(said=told)  # (what `run` waits for, too)
        body = {"ready": not waiting, "not_ready": waiting}
        return web.json_response(body, status=503 if waiting else 200)

    def _status(self, told: bool) -> web.Response:
        return web.json_response(self.status())

    def status(self) -> dict[str, object]:
        """What /_/status answers (and the dashboard shows): for loopback clients, or any
        under --admin-public, as its children's last lines are."""
        pools = self._supervisor.pools
        processes = {pid: _status(self._supervisor, pool) for pid, pool in pools.items()}
        tasks = {
            name: {"state": run.state, "reason": run.reason or None, "seconds": run.seconds,
                   "last_output": list(run.output.lines)[-5:]}
            for name, run in self._supervisor.tasks.items()
        }  # fmt: skip
        return {"processes": processes, "tasks": tasks}

    def _metrics(self, told: bool) -> web.Response:
        from local_lambdas.admin import metrics  # prometheus_client: a tenth of the start, if here

        body = metrics.exposition(self._supervisor)
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


def _from_another_site(
    request: web.BaseRequest, path: str, *, acts: bool, tells: bool
) -> web.Response | None:
    """The 403 for a browser's request that another site made (see the module's docstring):
    one that `acts`, marked cross-site; one that `tells`, for a Host that is neither localhost
    nor an IP address."""
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    host = request.headers.get("Host")
    own = "only the dashboard's own page, or a client that is not a browser, may act here"
    if acts and site is not None and site not in ("same-origin", "none"):
        error = f"{path} refuses a {site} request: {own}"
    elif acts and origin is not None and origin.partition("://")[2] != host:
        error = f"{path} refuses a request from {origin[:100]}: {own}"
    elif tells and host is not None and not _local_name(host):
        error = (
            f"{path} answers requests for localhost or an IP address, not {host[:100]!r} (a site "
            "re-pointed at this machine could read it); start local-lambdas with "
            "--admin-public to open it"
        )
    else:
        return None
    return web.json_response({"error": error}, status=403)


def _local_name(host: str) -> bool:
    """Whether a Host header names localhost (or a name under .localhost) or an IP address,
    names no other site can be given."""
    name = host.rpartition("]")[0].lstrip("[") if host.startswith("[") else host.partition(":")[0]
    name = name.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _left(until: float) -> float | None:
    """The seconds until a time.monotonic() `until` that is still to come, else None."""
    left = until - time.monotonic()
    return round(left, 3) if left > 0 else None


def _reason(pool: Pool) -> str | None:
    """Why a process is not ready, as /_/ready says it to a loopback client less the state
    ("gave up after 6 failed starts...; its last output: ..." of a FATAL one), or why it is
    left out (--only); None while it is ready."""
    if pool.disabled is not None:
        return pool.disabled
    if pool.ready:
        return None
    return pool.why_not_ready(said=True).partition(": ")[2] or None


def _status(supervisor: Supervisor, pool: Pool) -> dict[str, object]:
    stats = supervisor.stats[pool.process.id]
    return {
        "state": pool.state.value,
        "reason": _reason(pool),
        "idle_s": round(time.monotonic() - pool.last_request, 3) if pool.sleeping else None,
        "depends_on": list(pool.process.depends_on),
        "mode": pool.process.communication_mode.value,
        "routes": list(pool.process.routes),
        "instances": [
            {
                "name": i.name,
                "state": i.state.value,
                "reason": i.reason or None,
                "pid": i.pid,
                "address": i.address or None,
                "restarts": i.restarts,
                "last_exit_code": i.last_exit,
                "last_exit_time": i.last_exit_time,
                "in_flight": i.in_flight,
                "requests": i.requests,
                "passed_over_s": _left(i.passed_over_until),
                "last_output": list(i.output.lines)[-5:],
                "output_dropped": supervisor.printer.dropped(i.name),
            }
            for i in pool.instances
        ],
        "requests": stats.requests,
        "errors": stats.errors,
        "in_flight": sum(i.in_flight for i in pool.instances),
        "queue": pool.waiting,
        "latency_ms": {"p50": stats.percentile_ms(0.5), "p99": stats.percentile_ms(0.99)},
        "cache": None if pool.cache is None else {
            "hits": pool.cache.hits, "misses": pool.cache.misses, "entries": len(pool.cache),
            "bytes": pool.cache.size, "max_bytes": pool.cache.max_bytes,
            "max_entries": pool.cache.max_entries,
        },
    }  # fmt: skip

"""The serving side of a run: aiohttp's low-level server and the fast lane in front of the
supervisor's children, with the admin endpoints, the dashboard and the request inspector.

Connections start in the fast lane (lane/fastlane.py), which answers most requests itself; every
request aiohttp's server gets goes to one function, aio/handler.py: the admin endpoints
(admin/endpoints.py) under their prefix, the proxy (proxy.py) for the rest. This module and what it
imports (aiohttp above all) are most of the proxy's loading time: a run loads it while its
children start (lifecycle.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from local_lambdas.admin.console_log import ConsoleLog
from local_lambdas.admin.dashboard import Dashboard
from local_lambdas.admin.endpoints import Admin
from local_lambdas.admin.inspector import Inspector
from local_lambdas.aio.handler import AioHandler
from local_lambdas.aio.server import Server
from local_lambdas.aio.site import Site
from local_lambdas.binding import is_loopback
from local_lambdas.client_limits import refusal
from local_lambdas.config import Settings
from local_lambdas.lane.fastlane import FastLane
from local_lambdas.output import Printer
from local_lambdas.proxy import Proxy
from local_lambdas.supervision.supervisor import Supervisor


@dataclass(frozen=True)
class Front:
    drain: Callable[[], Awaitable[None]]  # what a stop runs first: new requests get 503
    lane: FastLane | None  # None with --no-fast-lane
    recording: bool  # the request inspector keeps requests for the dashboard


@asynccontextmanager
async def listening(
    supervisor: Supervisor, settings: Settings, printer: Printer, console: ConsoleLog,
    sockets: list[socket.socket], context: ssl.SSLContext | None, url: str,
) -> AsyncIterator[Front]:  # fmt: skip
    """Serving on `sockets`, listening at --bind already (binding.py; `context`: HTTPS),
    reached at `url` from this machine; on the way out, no longer listening, once the
    requests in flight have finished (up to the shutdown timeout)."""
    admin = Admin(supervisor, settings.admin_prefix, public=settings.admin_public)
    recording = settings.inspector if settings.inspector is not None else is_loopback(settings.host)
    inspector = Inspector(secrets=settings.inspect_secrets) if recording else None
    dashboard = admin.dashboard = Dashboard(admin.status, inspector, console)
    supervisor.on_state = dashboard.state_changed
    proxy = Proxy(
        supervisor,
        access=printer.access_log.line if settings.verbosity != "quiet" else None,
        admin_prefix=admin.prefix,
        body_timeout=settings.client_body_timeout,
    )
    proxy.inspector = inspector

    async def drain() -> None:
        supervisor.begin_stop()
        await dashboard.close()  # open pages' event streams end
        # Open WebSockets close (1001, going away), event streams end, instead of holding
        # the stop up.
        for child in supervisor.children:
            relay = child.link.relay
            if relay is not None:
                await relay.end_streams()

    # aiohttp's low-level server: the proxy does its own routing, and an Application's
    # dispatcher cost 8% of the instructions per request (PERFORMANCE.md).
    server = Server(
        AioHandler(proxy, admin.handle).handle,
        new_id=proxy.ids.new_id,
        head_timeout=settings.client_header_timeout,
        send_timeout=settings.send_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        access_log=None,
    )
    runner = web.ServerRunner(
        server, handle_signals=False, shutdown_timeout=settings.shutdown_timeout
    )
    lane = FastLane(
        proxy,
        server,
        head_timeout=settings.client_header_timeout,
        send_timeout=settings.send_timeout,
        idle_timeout=settings.keepalive_timeout,
    )
    async with contextlib.AsyncExitStack() as teardown:
        teardown.callback(proxy.close)
        await runner.setup()
        teardown.push_async_callback(_stop_listening, runner, lane, settings.shutdown_timeout)
        for sock in sockets:  # (several for a name with several addresses, as localhost)
            site = Site(
                runner, sock, lane if settings.fast_lane else server,
                ssl_context=context, plain_refused=_plain_refused(proxy.ids.new_id),
            )  # fmt: skip
            await site.start()
        dashboard.url = url  # (for replays)
        yield Front(drain, lane if settings.fast_lane else None, recording)


def _plain_refused(new_id: Callable[[], str]) -> Callable[[str], bytes]:
    """The answer to plain HTTP on the HTTPS port (tls.Front), as nginx gives it: a 400."""

    def refused(peer: str) -> bytes:
        message = (
            "the plain HTTP request was sent to an HTTPS port: this port speaks HTTPS only, "
            "use https:// (curl: add -k for --tls self-signed)"
        )
        return refusal(400, message, new_id, peer)

    return refused


async def _stop_listening(runner: web.BaseRunner, lane: FastLane, timeout: float) -> None:
    """Stop listening, then wait (up to `timeout`) for the requests in flight on both lanes."""
    await asyncio.gather(runner.cleanup(), lane.shutdown(timeout))

"""The life cycle of one run: listening, children, stopping; and reloads.

`started` is one run, from binding to the last child stopped; commands.py says what happens
in between. Children stop on every way out: a signal, a failed bind, or an error. Reloads
(SIGHUP, --watch) go through `Reloader`. Connections start in the fast lane (fastlane.py),
which answers envelope-mode requests itself; every request aiohttp's server gets goes to one
function, aiohandler.py: the admin endpoints (admin.py) under their prefix, the proxy
(proxy.py) for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from local_lambdas import tls
from local_lambdas.admin import Admin, is_loopback
from local_lambdas.aiohandler import AioHandler
from local_lambdas.aioserver import Server, Site
from local_lambdas.client_limits import refusal
from local_lambdas.config import Manifest, Settings
from local_lambdas.dashboard import Dashboard
from local_lambdas.errors import ManifestError, StartupError
from local_lambdas.fastlane import FastLane
from local_lambdas.inspector import Inspector
from local_lambdas.output import Printer
from local_lambdas.proxy import Proxy
from local_lambdas.supervisor import Supervisor

log = logging.getLogger("local_lambdas.lifecycle")


class Reloader:
    """Re-reads the manifest and applies it; one reload at a time, never two queued."""

    def __init__(self, supervisor: Supervisor, load: Callable[[], Manifest]) -> None:
        self._supervisor = supervisor
        self._load = load
        self._tasks: set[asyncio.Task[None]] = set()

    def request(self) -> None:
        """From a signal handler: reload soon, in the background."""
        task = asyncio.create_task(self(True, []))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def __call__(self, reread: bool, restart: list[str]) -> None:
        manifest = self._supervisor.manifest
        if reread:
            log.info("reloading %s", manifest.path)
            try:
                manifest = self._load()
            except ManifestError as exc:
                for problem in exc.problems:
                    log.error("%s", problem)
                log.error(
                    "reload: the manifest has %d problem(s); still running the previous one",
                    len(exc.problems),
                )
                return
        if restart:
            log.info("files changed: restarting %s", ", ".join(restart))
        await self._supervisor.reload(manifest, restart=restart)

    async def finish(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(frozen=True)
class Started:
    url: str  # where a client on this machine reaches the proxy, e.g. http://127.0.0.1:3000
    supervisor: Supervisor
    reload: Reloader
    drain: Callable[[], Awaitable[None]]  # what a stop runs first: new requests get 503
    lane: FastLane | None  # None with --no-fast-lane
    recording: bool = False  # the request inspector keeps requests for the dashboard
    fingerprint: str | None = None  # --tls self-signed: the certificate's SHA-256


@asynccontextmanager
async def started(
    manifest: Manifest,
    settings: Settings,
    printer: Printer,
    *,
    load: Callable[[], Manifest] | None = None,
) -> AsyncIterator[Started]:
    """The proxy listening and its children starting; on the way out, draining, finishing the
    requests in flight (up to the shutdown timeout) and stopping every child.

    `load` reads the manifest again, for reloads (SIGHUP, and --watch in `settings`).
    """
    supervisor = Supervisor(manifest, settings, printer)
    admin = Admin(supervisor, settings.admin_prefix, public=settings.admin_public)
    recording = settings.inspector if settings.inspector is not None else is_loopback(settings.host)
    inspector = Inspector(secrets=settings.inspect_secrets) if recording else None
    dashboard = admin.dashboard = Dashboard(admin.status, inspector)
    supervisor.on_state = dashboard.state_changed
    proxy = Proxy(
        supervisor,
        access=printer.access if settings.verbosity != "quiet" else None,
        admin_prefix=admin.prefix,
        body_timeout=settings.client_body_timeout,
    )
    proxy.inspector = inspector
    reload = Reloader(supervisor, load or (lambda: manifest))

    async def drain() -> None:
        supervisor.stopping = True
        await dashboard.close()  # open pages' event streams end
        # Open WebSockets close (1001, going away) instead of holding the stop up.
        for child in supervisor.children:
            relay = child.link.relay
            if relay is not None:
                await relay.close_websockets()

    # aiohttp's low-level server: the proxy does its own routing, and an Application's
    # dispatcher cost 8% of the instructions per request (PERFORMANCE.md).
    server = Server(
        AioHandler(proxy, admin.handle).handle,
        new_id=proxy.new_id,
        head_timeout=settings.client_header_timeout,
        send_timeout=settings.send_timeout,
        access_log=None,
    )
    runner = web.ServerRunner(
        server, handle_signals=False, shutdown_timeout=settings.shutdown_timeout
    )
    lane = FastLane(proxy, server, settings.client_header_timeout, settings.send_timeout)
    # Teardown in the reverse order of set-up, each step whatever the ones before it raised:
    # the children are stopped last, and always.
    async with contextlib.AsyncExitStack() as teardown:
        teardown.push_async_callback(_stop_children, supervisor, proxy)
        printer.tap = dashboard.line
        teardown.callback(setattr, printer, "tap", None)
        teardown.push_async_callback(reload.finish)
        context, fingerprint = _tls(settings)
        await runner.setup()
        teardown.push_async_callback(_stop_listening, runner, lane, settings.shutdown_timeout)
        site = Site(
            runner, settings.host, settings.port, lane if settings.fast_lane else server,
            ssl_context=context, plain_refused=_plain_refused(proxy.new_id),
        )  # fmt: skip
        try:
            await site.start()
        except OSError as exc:
            # asyncio's strerror repeats the address ("error while attempting to bind...").
            why = os.strerror(exc.errno).lower() if exc.errno else exc.strerror
            if isinstance(exc, socket.gaierror) or (exc.errno or 0) < 0:  # the name's lookup
                why = f"{settings.host} is not a name of this machine ({exc.strerror})"
            raise StartupError(
                f"cannot listen on {settings.host}:{settings.port}: "
                f"{why}; choose another with --port PORT or --bind HOST:PORT"
            ) from exc
        host, port = runner.addresses[0][:2]
        scheme = "https" if context is not None else "http"
        url = f"{scheme}://{host}:{port}" if ":" not in host else f"{scheme}://[{host}]:{port}"
        # Where a client on this machine goes: a wildcard bind is reached on loopback (browsers
        # refuse http://0.0.0.0 now). The command of `run` gets it, and replays use it.
        local_url = url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")
        dashboard.url = local_url
        await supervisor.start()
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]  # asyncio or uvloop
        fields = {"event": "listening", "url": url, "event_loop": loop}
        log.info("listening on %s (event loop: %s)", url, loop, extra={"fields": fields})
        if fingerprint is not None:
            log.info(
                "TLS: a self-signed certificate for localhost, 127.0.0.1 and ::1 "
                "(browsers will warn); SHA-256 fingerprint %s", fingerprint,
                extra={"fields": {"event": "tls", "fingerprint": fingerprint}},
            )  # fmt: skip
        if not is_loopback(settings.host):
            opened = "open to every client (--admin-public)" if settings.admin_public else (
                f"answer loopback clients only, but for {admin.prefix}health and "
                f"{admin.prefix}ready (--admin-public opens them)")  # fmt: skip
            log.warning(
                "%s is not a loopback address: every route is reachable from the network; "
                "the admin endpoints %s", settings.host, opened,
                extra={"fields": {"event": "exposed", "host": settings.host}},
            )  # fmt: skip
        if settings.watch:
            from local_lambdas import watch  # watchfiles loads only when asked for

            stop_watching = asyncio.Event()
            watcher = asyncio.create_task(
                watch.watch(
                    manifest.path,
                    lambda: {p.id: p.working_dir for p in supervisor.manifest.processes},
                    reload,
                    socket_dir=settings.socket_dir,
                    ignore=settings.watch_ignore,
                    include=settings.watch_include,
                    stop=stop_watching,
                )
            )
            teardown.push_async_callback(_stop_watching, watcher, stop_watching)
        teardown.push_async_callback(drain)
        yield Started(
            local_url, supervisor, reload, drain, lane if settings.fast_lane else None,
            recording=inspector is not None, fingerprint=fingerprint,
        )  # fmt: skip
        log.info("stopping: finishing requests in flight, then the children")
    log.info("stopped")


def _tls(settings: Settings) -> tuple[ssl.SSLContext | None, str | None]:
    """The TLS context to listen with (None: plain HTTP), and a self-signed certificate's
    fingerprint; that certificate's files are gone once the context has read them, so a
    proxy killed with SIGKILL leaves no private key behind."""
    if settings.tls_self_signed:
        with tempfile.TemporaryDirectory(prefix="ll-tls-") as directory:
            cert, key, fingerprint = tls.self_signed(Path(directory))
            return tls.server_context(cert, key), fingerprint
    if settings.tls_cert is not None and settings.tls_key is not None:
        return tls.server_context(settings.tls_cert, settings.tls_key), None
    return None, None


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


async def _stop_watching(watcher: asyncio.Task[None], stop: asyncio.Event) -> None:
    stop.set()
    await asyncio.gather(watcher, return_exceptions=True)


async def _stop_children(supervisor: Supervisor, proxy: Proxy) -> None:
    await supervisor.stop()
    proxy.close()

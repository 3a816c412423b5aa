"""The aiohttp Application and the life cycle of one run: children, listening, stopping.

Children start in the app's cleanup context, so they stop on every way out: a signal, a
failed bind, or an error. `started` is one run, from binding to the last child stopped;
commands.py says what happens in between. Reloads (SIGHUP, --watch) go through `Reloader`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from local_lambdas.admin import admin_app
from local_lambdas.config import Manifest, Settings
from local_lambdas.errors import ManifestError, StartupError
from local_lambdas.output import Printer
from local_lambdas.proxy import Proxy
from local_lambdas.supervisor import Supervisor
from local_lambdas.transports.passthrough import PassthroughTransport

log = logging.getLogger("local_lambdas.app")

SUPERVISOR = web.AppKey("supervisor", Supervisor)


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


RELOAD = web.AppKey("reload", Reloader)


def build_app(
    manifest: Manifest,
    settings: Settings,
    printer: Printer,
    *,
    load: Callable[[], Manifest] | None = None,
) -> web.Application:
    """An Application that starts the manifest's children on startup and stops them on cleanup.

    `load` reads the manifest again, for reloads (SIGHUP, and --watch in `settings`).
    """
    supervisor = Supervisor(manifest, settings, printer)
    proxy = Proxy(supervisor, access=printer.access if settings.verbosity != "quiet" else None)
    reload = Reloader(supervisor, load or (lambda: manifest))

    async def children(app: web.Application) -> AsyncIterator[None]:
        await supervisor.start()
        stop_watching = asyncio.Event()
        watcher = None
        if settings.watch:
            from local_lambdas import watch  # watchfiles loads only when asked for

            watcher = asyncio.create_task(
                watch.watch(
                    manifest.path,
                    lambda: {p.id: p.working_dir for p in supervisor.manifest.processes},
                    reload,
                    socket_dir=settings.socket_dir,
                    ignore=settings.watch_ignore,
                    stop=stop_watching,
                )
            )
        try:
            yield
        finally:
            stop_watching.set()
            if watcher is not None:
                await asyncio.gather(watcher, return_exceptions=True)
            await reload.finish()
            await supervisor.stop()

    async def drain(app: web.Application) -> None:
        # Runs before aiohttp waits for the requests in flight: new ones now get 503, and
        # open WebSockets close (1001, going away) instead of holding the stop up.
        supervisor.stopping = True
        for child in supervisor.children:
            if isinstance(child.transport, PassthroughTransport):
                await child.transport.close_websockets()

    app = web.Application()
    app[SUPERVISOR] = supervisor
    app[RELOAD] = reload
    app.cleanup_ctx.append(children)
    app.on_shutdown.append(drain)
    # The admin endpoints are matched first, so no manifest route can shadow them.
    app.add_subapp(settings.admin_prefix.rstrip("/"), admin_app(supervisor))
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    return app


@dataclass(frozen=True)
class Started:
    app: web.Application
    url: str  # where the proxy listens, e.g. http://127.0.0.1:3000

    @property
    def supervisor(self) -> Supervisor:
        return self.app[SUPERVISOR]


@asynccontextmanager
async def started(
    manifest: Manifest,
    settings: Settings,
    printer: Printer,
    *,
    load: Callable[[], Manifest] | None = None,
) -> AsyncIterator[Started]:
    """The proxy listening and its children starting; on the way out, draining and stopping."""
    app = build_app(manifest, settings, printer, load=load)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=settings.shutdown_timeout
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {settings.host}:{settings.port}: "
                f"{exc.strerror}; choose another with --bind HOST:PORT"
            ) from exc
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        log.info("listening on %s", url, extra={"fields": {"event": "listening", "url": url}})
        yield Started(app, url)
        log.info("stopping: finishing requests in flight, then the children")
    finally:
        await runner.cleanup()
    log.info("stopped")

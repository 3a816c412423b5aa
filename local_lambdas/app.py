"""The aiohttp Application and the life cycle of one run: children, listening, stopping.

Children start in the app's cleanup context, so they stop on every way out: a signal, a
failed bind, or an error. `serve` is the whole run; it returns the process exit code.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from local_lambdas.config import Manifest, Settings
from local_lambdas.errors import StartupError
from local_lambdas.output import Printer
from local_lambdas.proxy import Proxy
from local_lambdas.supervisor import Supervisor

log = logging.getLogger("local_lambdas.app")

SUPERVISOR = web.AppKey("supervisor", Supervisor)


def build_app(manifest: Manifest, settings: Settings, printer: Printer) -> web.Application:
    """An Application that starts the manifest's children on startup and stops them on cleanup."""
    supervisor = Supervisor(manifest, settings, printer)
    proxy = Proxy(supervisor.children)

    async def children(app: web.Application) -> AsyncIterator[None]:
        await supervisor.start()
        try:
            yield
        finally:
            await supervisor.stop()

    app = web.Application()
    app[SUPERVISOR] = supervisor
    app.cleanup_ctx.append(children)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    return app


async def serve(manifest: Manifest, settings: Settings, printer: Printer) -> int:
    """Run until SIGINT or SIGTERM, then drain, stop the children and return 0."""
    app = build_app(manifest, settings, printer)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=settings.shutdown_timeout
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {settings.host}:{settings.port}: "
                f"{exc.strerror}; choose another with --bind HOST:PORT"
            ) from exc
        for process in manifest.processes:
            log.info(
                "%s -> %s (%s)",
                " ".join(process.routes),
                process.id,
                process.communication_mode.value,
            )
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        log.info("listening on %s; Ctrl+C stops", url, extra={"fields": {"url": url}})
        await stop.wait()
        log.info("stopping: finishing requests in flight, then the children")
    finally:
        await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0

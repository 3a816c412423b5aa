"""The life cycle of one run: listening, children, serving, stopping; and reloads.

`started` is one run, from binding to the last child stopped; commands/serve.py and
commands/run.py say what happens in between. It listens first (binding.py), then the
children start, and the serving side (front.py: aiohttp's server, the fast lane, the
dashboard) loads while they do: loading it is most of the proxy's start. Children stop on
every way out: a signal, a failed bind, or an error. Reloads (SIGHUP, --watch) go through
`Reloader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import platform
import socket
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from local_lambdas import __version__, binding, compiled, self_reload, tls
from local_lambdas.admin.console_log import ConsoleLog
from local_lambdas.config import Manifest, Settings
from local_lambdas.errors import ManifestError
from local_lambdas.output import Printer
from local_lambdas.supervision.supervisor import Supervisor

if TYPE_CHECKING:
    from local_lambdas.lane.fastlane import FastLane  # (the Started.lane annotation)

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

    async def __call__(self, reread: bool, restart: list[str], changed: str = "") -> None:
        """Reload (`reread` the manifest), restarting `restart`, set off by `changed`. A
        process not started (--only) is not restarted: its files changing is nothing."""
        pools = self._supervisor.pools
        restart = [id for id in restart if id not in pools or pools[id].disabled is None]
        if not (reread or restart):
            return
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
            named = f" ({changed})" if changed else ""
            log.info("files changed: restarting %s%s", ", ".join(restart), named)
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
    """The children starting and the proxy listening; on the way out, draining, finishing
    the requests in flight (up to the shutdown timeout) and stopping every child.

    `load` reads the manifest again, for reloads (SIGHUP, and --watch in `settings`).
    """
    supervisor = Supervisor(manifest, settings, printer)
    reload = Reloader(supervisor, load or (lambda: manifest))
    console = ConsoleLog()  # the dashboard's log, from the first line on
    # Teardown in the reverse order of set-up, each step whatever the ones before it raised:
    # the children are stopped last, and always.
    async with contextlib.AsyncExitStack() as teardown:
        teardown.push_async_callback(supervisor.stop)
        printer.tap = console.line
        teardown.callback(setattr, printer, "tap", None)
        teardown.push_async_callback(reload.finish)
        # Before any child starts or <task> runs: the TLS files read, the port listening.
        context, fingerprint = _tls(settings)
        sockets = binding.listen(settings.host, settings.port, also_ipv6=settings.also_ipv6)
        for sock in sockets:  # (the servers close them; until they have them, this does)
            teardown.callback(sock.close)
        url = _listening(settings, sockets[0], context is not None)
        supervisor.run_env["LOCAL_LAMBDAS_URL"] = settings.child_url or url
        await supervisor.start()
        _import_aiohttp()
        # The serving side loads on another thread, while the children start on this one;
        # a client that connects meanwhile waits in the backlog.
        await asyncio.to_thread(importlib.import_module, "local_lambdas.front")
        from local_lambdas.front import listening

        front = await teardown.enter_async_context(
            listening(supervisor, settings, printer, console, sockets, context, url)
        )
        if fingerprint is not None:
            log.info(
                "TLS: a self-signed certificate for localhost, 127.0.0.1 and ::1 "
                "(browsers will warn); SHA-256 fingerprint %s", fingerprint,
                extra={"fields": {"event": "tls", "fingerprint": fingerprint}},
            )  # fmt: skip
        if settings.watch:
            from local_lambdas.watch import watcher  # watchfiles loads only when asked for

            for line in self_reload.advice(supervisor.manifest.processes):
                log.warning(line)
            stop_watching = asyncio.Event()
            watching = asyncio.create_task(
                watcher.watch(
                    manifest.path,
                    lambda: {p.id: p.working_dir for p in supervisor.manifest.processes},
                    reload,
                    socket_dir=settings.socket_dir,
                    ignore=settings.watch_ignore,
                    include=settings.watch_include,
                    stop=stop_watching,
                    building=supervisor.order.ran_at,
                    unwatched=lambda: {
                        p.id for p in supervisor.manifest.processes if p.watch == "off"
                    },
                    supersede=supervisor.supersede,
                )
            )
            watching.add_done_callback(_watch_ended)
            teardown.push_async_callback(_stop_watching, watching, stop_watching)
        teardown.push_async_callback(front.drain)
        yield Started(
            url, supervisor, reload, front.drain, front.lane,
            recording=front.recording, fingerprint=fingerprint,
        )  # fmt: skip
        log.info("stopping: finishing requests in flight, then the children")
    log.info("stopped")


def _listening(settings: Settings, sock: socket.socket, tls: bool) -> str:
    """Says where the proxy listens (and, off loopback, who can reach it); the URL a client
    on this machine uses: a wildcard bind is reached on loopback (browsers refuse
    http://0.0.0.0 now). The command of `run` gets it, and replays use it."""
    url = binding.url(sock, "https" if tls else "http")
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]  # asyncio or uvloop
    fields = {"event": "listening", "url": url, "event_loop": loop}
    log.info("listening on %s (event loop: %s)", url, loop, extra={"fields": fields})
    log.debug("local-lambdas %s on Python %s, %s", __version__, platform.python_version(),
              compiled.STATE)  # fmt: skip
    if not binding.is_loopback(settings.host):
        prefix = settings.admin_prefix
        opened = "open to every client (--admin-public)" if settings.admin_public else (
            f"answer loopback clients only, but for {prefix}health and "
            f"{prefix}ready (--admin-public opens them)")  # fmt: skip
        log.warning(
            "%s is not a loopback address: every route is reachable from the network; "
            "the admin endpoints %s", settings.host, opened,
            extra={"fields": {"event": "exposed", "host": settings.host}},
        )  # fmt: skip
    return url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")


def _import_aiohttp() -> None:
    """aiohttp builds two client TLS contexts as it is imported, each reading the system's
    whole CA bundle: 35-100 ms of CPU by the machine's phase, a tenth of the proxy's start,
    which the children wait for. This process never verifies a server with them (its own
    client calls, the dashboard's replay and `check --boot`'s, go to itself with ssl=False;
    readiness and `restart` make their own contexts), so here they read an empty file.
    OpenSSL reads the file's name from the environment, which is the whole process's: so
    on this thread, the loop held, no child spawned meanwhile, put back at once."""
    if "aiohttp" in sys.modules:
        return
    told = os.environ.get(_CA_FILE)
    os.environ[_CA_FILE] = os.devnull
    try:
        import aiohttp  # noqa: F401
    finally:
        if told is None:
            del os.environ[_CA_FILE]
        else:
            os.environ[_CA_FILE] = told


_CA_FILE = "SSL_CERT_FILE"


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


def _watch_ended(watcher: asyncio.Task[None]) -> None:
    """Says so when --watch ends on an error, rather than leaving edits to go unseen."""
    if not watcher.cancelled() and (exc := watcher.exception()) is not None:
        log.error(
            "--watch stopped on an error (%s: %s); restart local-lambdas to watch again",
            type(exc).__name__,
            exc,
        )


async def _stop_watching(watcher: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Ends the watcher where it is (a restart it set off was ended by the stop's first
    step, Supervisor.begin_stop; a git it runs is not waited for)."""
    stop.set()
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)

"""What the command line can do with a loaded manifest, each returning an exit status:

serve        run until SIGINT/SIGTERM (SIGHUP reloads)
boot_check   start everything, probe each process once, report, stop

(`run`, which runs a command against the started manifest, is run.py's.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from local_lambdas import _compat
from local_lambdas.config import Manifest, Process, Settings
from local_lambdas.lifecycle import Started, started
from local_lambdas.loading_signals import held_hangup
from local_lambdas.output import Printer
from local_lambdas.run_signals import Echoes, exit_at_once, stoppable
from local_lambdas.supervision.states import State

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("local_lambdas.commands")


async def serve(
    manifest: Manifest, settings: Settings, printer: Printer, *, load: Callable[[], Manifest]
) -> int:
    stop = asyncio.Event()
    echo = Echoes()

    def stop_or_force(_signal: int) -> None:
        if echo():
            return
        if not stop.is_set():
            stop.set()
            return
        exit_at_once(printer)

    run: Started | None = None
    hung_up = _compat.hangup_stops()
    reload_when_started = False

    def reload() -> None:
        nonlocal reload_when_started
        if hung_up():  # the terminal closed: left running, it would hold its port unseen
            log.warning("the terminal closed (SIGHUP): stopping")
            stop.set()
        elif run is not None:
            run.reload.request()
        else:  # children may be ready and printing before it listens: once it does
            reload_when_started = True

    # Installed before the first child starts, so that a stop asked while they start is an
    # orderly one, and until the stop is over, so that a second Ctrl+C can cut it short.
    undo = _compat.on_signals(asyncio.get_running_loop(), stop_or_force, reload)
    if held_hangup():  # a `kill -HUP` while it loaded
        reload()
    code = 0
    try:
        async with started(manifest, settings, printer, load=load) as run:
            if reload_when_started:
                run.reload.request()
            if _compat.IS_WINDOWS:  # no SIGHUP there
                log.info("Ctrl+C stops; --watch reloads %s when it changes", manifest.path.name)
            else:
                log.info("Ctrl+C stops; kill -HUP %d reloads %s", os.getpid(), manifest.path.name)
            recording = "" if run.recording else " (requests are not recorded: --inspector)"
            log.info("dashboard: %s%s%s", run.url, settings.admin_prefix, recording,
                     extra={"fields": {"event": "dashboard",
                                       "url": run.url + settings.admin_prefix}})  # fmt: skip
            if not manifest.processes:
                log.warning(
                    "%s lists no <process>: every request but the dashboard's gets 404 "
                    "until one is added and the manifest reloaded",
                    manifest.path.name,
                )
            table = asyncio.create_task(_table_when_ready(run, printer, manifest))
            failed = asyncio.create_task(run.supervisor.failed.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({failed, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for waiting in (table, failed, stopped):
                waiting.cancel()
            if run.supervisor.failed.is_set() and not stop.is_set():
                log.error("stopping: %s", "; ".join(run.supervisor.failures))
                code = 1
    finally:
        undo()
    return code


@dataclass(frozen=True)
class Probe:
    process: str
    ready: bool
    detail: str  # "ready in 0.12s" or why not
    probe: str  # "GET /api -> 200 in 3.1 ms", or why none was sent


async def boot_check(
    manifest: Manifest, settings: Settings, printer: Printer, timeout: float
) -> int:
    """0 when every process became ready and answered its probe without a 5xx."""
    import aiohttp  # loaded by the run (lifecycle.py), not before its children start

    results: list[Probe] = []
    async with stoppable(printer), started(manifest, settings, printer) as run:
        run.supervisor.wake_all()
        await run.supervisor.wait_ready(timeout)
        # Our own proxy, maybe with a throwaway certificate (--tls self-signed): not verified.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
            for process in manifest.processes:
                results.append(await _probe(run, http, process, timeout))
        for task in run.supervisor.tasks.values():  # done by now, unless still held up
            done = task.state == "DONE"
            detail = f"done in {task.seconds:.2f}s" if done and task.seconds else task.reason
            results.append(Probe(f"{task.task.id} (task)", done, detail or task.state, "-"))
    printer.table(
        "check --boot", ["process", "ready", "probe"],
        [[r.process, r.detail, r.probe] for r in results],
    )  # fmt: skip
    return 0 if all(r.ready and " -> 5" not in r.probe for r in results) else 1


async def _probe(
    run: Started, http: aiohttp.ClientSession, process: Process, timeout: float
) -> Probe:
    pool = run.supervisor.pools[process.id]
    late = f"not ready within {timeout:g}s (--ready-timeout: give it longer if it compiles)"
    if process.upstream is not None:  # nothing here starts what it routes to
        late = f"not ready within {timeout:g}s: route-only, so start what serves it first"
    if pool.blocked or pool.disabled or not pool.instances:
        why = pool.blocked or pool.disabled or late
        return Probe(process.id, pool.disabled is not None, why, "not sent")
    if pool.state is State.STARTING:  # still starting when the time was up
        return Probe(process.id, False, f"{late}; {pool.why_not_ready(said=True)}", "not sent")
    if pool.state is not State.READY:
        return Probe(process.id, False, pool.why_not_ready(said=True), "not sent")
    ready = f"ready in {max(i.ready_seconds or 0 for i in pool.instances):.2f}s"
    if not process.routes:  # <communication_mode> none
        return Probe(process.id, True, ready, "none: nothing is routed to it")
    path = example_path(process.routes[0])
    started_at = time.monotonic()
    try:
        async with http.get(run.url + path) as reply:
            await reply.read()
            ms = (time.monotonic() - started_at) * 1000
            return Probe(process.id, True, ready, f"GET {path} -> {reply.status} in {ms:.1f} ms")
    except aiohttp.ClientError as exc:
        return Probe(process.id, True, ready, f"GET {path} failed: {exc}")


def example_path(route: str) -> str:
    """A path the route matches: /api/* -> /api, /dir/ -> /dir/, /exact -> /exact."""
    return (route[:-2] or "/") if route.endswith("/*") else route


async def _table_when_ready(run: Started, printer: Printer, manifest: Manifest) -> None:
    """While children start, a live line of who is ready (on a terminal); then one table of
    what serves what, once each process has started (a <build> or a <depends_on> first) and
    is ready, or its <startup_timeout> has passed."""
    longest = max((p.startup_timeout for p in manifest.processes), default=10.0)
    deadline = time.monotonic() + longest + 1
    with printer.progress() as show:
        while time.monotonic() < deadline:
            children = run.supervisor.children
            unstarted = [  # (no instance yet: building, or waiting for what it depends on)
                pool.process.id for pool in run.supervisor.pools.values()
                if not pool.instances and pool.state is State.STARTING
            ]  # fmt: skip
            if unstarted:
                deadline = time.monotonic() + longest + 1
            waiting = [c.name for c in children if c.state not in (State.READY, State.FATAL)]
            waiting += unstarted
            if not waiting:
                break
            count = sum(c.state is State.READY for c in children)
            total = len(children) + len(unstarted)
            show(f"starting: {count}/{total} ready; waiting for {', '.join(waiting)}")
            await asyncio.sleep(0.1)  # a display refresh, not a wait for readiness
    rows = []
    for pool in run.supervisor.pools.values():
        if not pool.instances:  # asleep until its first request, left out, or never built
            rows.append([" ".join(pool.process.routes) or "-", pool.process.id,
                         pool.process.communication_mode.value, "-", "-", pool.state.value,
                         "-"])  # fmt: skip
        for instance in pool.instances:
            ready = f"{instance.ready_seconds:.2f}s" if instance.state is State.READY else "-"
            rows.append(
                [
                    " ".join(pool.process.routes) or "-",
                    instance.name,
                    pool.process.communication_mode.value,
                    instance.address or "-",
                    str(instance.pid or "-"),
                    instance.state.value,
                    ready,
                ]
            )
    printer.table(
        f"serving on {run.url}",
        ["routes", "process", "mode", "address", "pid", "state", "ready in"],
        rows,
    )

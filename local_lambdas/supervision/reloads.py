"""Reloads (SIGHUP, --watch, `local-lambdas restart`): the Supervisor's, kept apart.

A reload compares the new manifest with the running one by process id: unchanged processes
keep running, and so do those changed only in how the proxy routes, bounds and answers their
requests (config.ROUTING_ONLY: <route>, <timeout>, <methods>...), which take the new ones
as the routes are swapped; changed, new, FATAL, EXITED or never started ones (and those a
restart names) get a new pool, started beside the old (in their order: one may depend on
another it adds), and a <task> it adds, or one that failed, runs once; once the new pools
are READY the routing table is swapped in one step, and the old pools drain and stop, the
next reload not waiting for them (but for one holding a <port> it wants, or a worker's old
copy). A replacement that cannot start is stopped, and the old one stays in service; a
process new altogether is added whatever became of it, as at start-up. A fixed <port> has
room for one process: its old pool stops first. A stop ends a reload where it is
(Supervisor.begin_stop); the pools it started, or retires, are the stop's to stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable

from local_lambdas.config import NO_LIMIT, ROUTING_ONLY, Manifest, Mode, Process
from local_lambdas.cors import Policy
from local_lambdas.supervision.pool import Pool
from local_lambdas.supervision.roster import DOWN, start_allowance
from local_lambdas.supervision.start_order import Reloading, StartOrder
from local_lambdas.supervision.states import State

log = logging.getLogger("local_lambdas.supervisor")


class Reloads:
    """The reloading half of the Supervisor, which sets what is declared here."""

    manifest: Manifest
    pools: dict[str, Pool]
    stopping: bool
    order: StartOrder
    _pool: Callable[[Process], Pool]  # a new pool for a process
    _policy: Callable[[Process], Policy | None]  # a process's CORS policy
    _install: Callable[[dict[str, Pool]], None]  # the pools and their routes, in one step

    def __init__(self) -> None:
        self._reloading = asyncio.Lock()
        # The pools a reload in progress started or is stopping, not (or no longer) in
        # `pools`: a stop that comes meanwhile stops them too.
        self._in_reload: list[Pool] = []
        self._reloads: set[asyncio.Future[None]] = set()  # under way (begin_stop ends them)
        # Pools replaced or removed, draining and stopping after their reload's lock is let
        # go (so that the next reload need not wait for them), until they have stopped: a
        # stop that comes meanwhile stops them at once.
        self.retiring: dict[Pool, asyncio.Task[None]] = {}
        # Why each process the last reload started did not become ready (a restart's answer).
        self.failed_replacements: dict[str, str] = {}

    async def reload(self, manifest: Manifest, *, restart: Iterable[str] = ()) -> None:
        """Run `manifest` instead, restarting only what changed (and the ids in `restart`).
        A stop ends it where it is (begin_stop); its caller then gets CancelledError."""
        work = asyncio.ensure_future(self._reload(manifest, set(restart)))
        self._reloads.add(work)
        work.add_done_callback(self._reloads.discard)
        await work

    async def _reload(self, manifest: Manifest, forced: set[str]) -> None:
        async with self._reloading:
            retiring = await self._one_at_a_time(manifest, forced)
        # The pools it replaced drain (up to their <timeout>) and stop (up to their
        # <stop_timeout>) with the lock let go: a reload that comes meanwhile (an edit saved
        # again) goes ahead rather than wait for them.
        await asyncio.gather(*retiring)

    async def _one_at_a_time(
        self, manifest: Manifest, forced: set[str]
    ) -> list[asyncio.Task[None]]:
        """A reload but for the wait for the pools it replaced to stop: their retirements."""
        if self.stopping:  # (a change seen, or a restart asked, as the proxy stops)
            return []
        old = self.pools
        fresh: dict[str, Pool] = {}
        retargeted: list[tuple[Pool, Process, set[str]]] = []  # kept: ROUTING_ONLY changed
        for process in manifest.processes:
            current = old.get(process.id)
            changed = set() if current is None else current.process.differences(process)
            if (
                current is None
                or process.id in forced
                or not changed <= ROUTING_ONLY
                or current.blocked is not None  # (what it needs, or its build, failed)
                or any(c.state in DOWN for c in current.instances)
            ):
                fresh[process.id] = self._pool(process)
            elif changed:
                retargeted.append((current, process, changed))
        self._in_reload = list(fresh.values())
        try:
            return await self._replace(manifest, old, fresh, retargeted)
        finally:
            if not self.stopping:  # (else they are the stop's to stop, if not yet)
                self._in_reload = []

    def supersede(self, ids: Collection[str]) -> None:
        """A file that set off the reload under way was saved again (a typo fixed while a
        slow build compiles the first save): its replacements in `ids` that are still
        starting stop being waited for, as if they had failed (the running ones serve on),
        so that the reload that comes next starts them anew from the newer file, now, not
        once a start of the older one is over."""
        for pool in self._in_reload:  # (a running one it replaces is ready, or ending)
            if pool.process.id in ids and pool.started and not pool.ready and not pool.ending:
                pool.cut_short()

    async def _replace(
        self, manifest: Manifest, old: dict[str, Pool], fresh: dict[str, Pool],
        retargeted: list[tuple[Pool, Process, set[str]]],
    ) -> list[asyncio.Task[None]]:  # fmt: skip
        """A reload's work (see reload): start the pools in `fresh` in place of those in
        `old`, and give those `retargeted` their new routes and limits as the new routes
        are installed; the retirements it begins of those it replaced. Those in the way (`first`),
        and those an earlier reload retires that still are, finish their requests and stop
        before their replacements start, once these are built: a <build> that fails leaves
        the running one in service, as for any other process. Requests for them wait
        meanwhile."""
        ids = {process.id for process in manifest.processes}
        first = {pool.id for pool in _in_the_way(old.values(), fresh, ids)}
        built = {id for id in first if id in fresh and fresh[id].process.build is not None}
        await asyncio.gather(*(self.order.build_ahead(fresh[id]) for id in built))
        startable = {i: p for i, p in fresh.items() if p.blocked is None}
        if built:
            first = {pool.id for pool in _in_the_way(old.values(), startable, ids)}
        if first:
            self._in_reload += [old[id] for id in first]
            self._install({
                id: fresh[id] if id in first else pool
                for id, pool in old.items() if id in fresh or id not in first
            })  # fmt: skip
            await asyncio.gather(*(old[id].retire() for id in first))
        lingering = _in_the_way(self.retiring, startable, ids=set())  # (all gone)
        await asyncio.gather(*(self.retiring[pool] for pool in lingering))
        if self.stopping:  # nothing is started once a stop began; it stops these pools
            return []
        reloading = Reloading(manifest, dict(fresh))  # (what they may wait for: all of them)
        self.order.run_tasks(reloading)  # those it adds, and those that failed
        for pool in fresh.values():
            if pool.blocked is None:
                self.order.start(pool, built=pool.process.id in built, reloading=reloading)
        ready = await asyncio.gather(*(_started_and_ready(pool) for pool in fresh.values()))
        if self.stopping:  # as above
            return []
        failed = [pool for pool, ok in zip(fresh.values(), ready, strict=True) if not ok]
        # Kept: those in the way (down now, saying why), and a new one, as at start-up: its
        # routes answer 503 with the reason (its build, what it needs, its exits), rather
        # than 404, and it goes on under its restart policy (an edit restarts it). The
        # others are stopped, the running one serving on.
        stopped = [p for p in failed if p.process.id in old and p.process.id not in first]
        self.failed_replacements = {
            pool.process.id: _failed_start(pool) if pool in stopped else pool.why_not_ready()
            for pool in failed
        }
        for pool in failed:
            if pool.superseded:  # (not a failure: the next reload starts it anew)
                log.info("reload: %s: %s", pool.process.id, _failed_start(pool))
                continue
            if pool.process.id in first:
                why = (
                    "its <port> has room for one"
                    if pool.process.port
                    else "a worker's copies never run side by side"
                )
                kept = f"the one it replaced is stopped ({why})"
            elif pool.process.id in old:
                kept = "the running one stays"
            else:
                kept = "its routes answer 503 saying why, as at start-up"
            log.error(
                "reload: %s did not become ready (%s); %s",
                pool.process.id,
                self.failed_replacements[pool.process.id],
                kept,
            )
        for pool in stopped:
            del fresh[pool.process.id]
        await asyncio.gather(*(pool.stop() for pool in stopped))
        pools = {}
        for process in manifest.processes:
            if process.id in fresh:
                pools[process.id] = fresh[process.id]
            elif process.id in old:
                pools[process.id] = old[process.id]
        for pool, process, changed in retargeted:
            said = ", ".join(f"<{_ELEMENT.get(name, name)}>" for name in sorted(changed))
            log.info("reload: %s: %s changed; its process runs on", pool.id, said)
            pool.retarget(process, self._policy(process))
        self.manifest = manifest
        self._install(pools)
        retired = [pool for pool in old.values() if pools.get(pool.process.id) is not pool]
        log.info(
            "reloaded: %d started, %d kept, %d stopped",
            len(fresh),
            len(pools) - len(fresh),
            len(retired),
        )
        return [self._retire(pool) for pool in retired if not pool.retired]

    def _retire(self, pool: Pool) -> asyncio.Task[None]:
        """`pool`'s retirement, begun, and in `retiring` until it is over (one a stop cuts
        short stays: the stop stops the pool)."""
        task = asyncio.ensure_future(pool.retire())
        self.retiring[pool] = task

        def over(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is None:
                self.retiring.pop(pool, None)

        task.add_done_callback(over)
        return task

    async def restart(self, process_id: str) -> bool:
        """Restart one process as a reload would (its replacement starts beside it and takes
        over once ready; with a fixed <port>, or a worker, in its place); whether the
        replacement became ready."""
        before = self.pools.get(process_id)
        try:
            await self.reload(self.manifest, restart=[process_id])
        except asyncio.CancelledError:
            if not self.stopping:
                raise
            return False  # the proxy stops: not to be
        pool = self.pools.get(process_id)
        if pool is None or pool is before or self.stopping:  # gone, kept, or not to be
            return False
        if pool.blocked is not None:  # its <build> failed (in its place: it has no instance)
            return False
        return all(c.state is State.READY for c in pool.instances)  # (asleep: none, ready)


# The element of a Process field whose name is not the element's.
_ELEMENT = {"routes": "route"}


def _in_the_way(old: Iterable[Pool], fresh: dict[str, Pool], ids: set[str]) -> list[Pool]:
    """The pools of `old` a reload must see stopped before it starts `fresh`: a fixed <port>
    has room for one process, so one that goes (replaced, or not in the manifest's `ids`)
    while a new one wants its port cannot wait for that one to be ready. A worker (mode
    none) has no requests to go on serving meanwhile, and two copies side by side would do
    its work twice (a scheduler firing, a watcher writing the same files): it stops first."""
    wanted = {pool.process.port for pool in fresh.values() if pool.process.port}
    return [
        pool for pool in old
        if (pool.id in fresh and pool.process.communication_mode is Mode.NONE)
        or (pool.process.port in wanted and (pool.id in fresh or pool.id not in ids))
    ]  # fmt: skip


def _failed_start(pool: Pool) -> str:
    """Why a replacement the reload stops did not become ready: a failed start as it failed
    (not "restarting in 0.1s": it is not to be), else its state and why."""
    if pool.superseded:
        return "its file was saved again as it started; the newer one starts instead"
    failing = next((c for c in pool.instances if c.state is State.BACKOFF), None)
    if failing is not None and failing.last_failure:
        return f"its start failed: {failing.last_failure}"
    return pool.why_not_ready()


async def _started_and_ready(pool: Pool) -> bool:
    """A reload's wait for a new pool: its <build> (bounded by its own timeout) and what it
    depends on first, then one start of its instances, judged as any start is (child_run):
    up to its <startup_timeout> of waiting, but as long as it works (compiling, as `cargo
    run` does after an edit: up to Busy.LIMIT times as long). A start that fails ends it,
    not the retries after. One that starts on request is ready asleep."""
    await pool.wait_for(
        lambda: pool.started or pool.sleeping or pool.ending or pool.blocked is not None
        or pool.disabled is not None, NO_LIMIT,
    )  # fmt: skip
    return await pool.wait_ready(start_allowance(pool.process), retries=False)

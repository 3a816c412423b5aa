"""A run's start order (supervisor.py's): what has no <depends_on> starts at once; the rest
once every process it names is READY and every task it names has exited 0 (a stop goes the
other way: `stopping_order`). A process waiting so has its routes already, and its requests
wait as for a starting one. When a dependency fails (a task that fails, a process given up
on, a <build> that fails) what depends on it is not started: its routes answer 503 with the
reason, `failures` says it, and `failed` is set. --only and --no-deps decide what is started
at all. The <task>s and <build>s run from here. A reload starts its new pools here too
(`Reloading`): what they depend on is looked for among them first, a <task> it adds runs
then, once, and a failure leaves what depends on it unstarted without ending the run.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial

from local_lambdas import _compat, variables
from local_lambdas.config import NO_LIMIT, Manifest, Settings, Task
from local_lambdas.output import Printer
from local_lambdas.supervision.orphan_watchdog import Watchdog
from local_lambdas.supervision.pool import Pool
from local_lambdas.supervision.roster import DOWN
from local_lambdas.supervision.tasks import TaskRun

log = logging.getLogger("local_lambdas.start_order")

_RUNS_KEPT = 64  # the last <build>s and <task>s whose times `ran_at` knows
# s: the longest a <build> may run (a cold `cargo build` of a large project takes minutes):
# a build still running then is stopped, and counts as failed.
BUILD_TIMEOUT = 30 * 60.0


@dataclass(frozen=True)
class Reloading:
    """A reload's start (reloads.py): its manifest, and the pools it starts."""

    manifest: Manifest
    fresh: dict[str, Pool]


class StartOrder:
    """Starts a run's pools and tasks in their order; `manifest` and `pools` give the
    run's current ones (a reload replaces them)."""

    def __init__(
        self, settings: Settings, printer: Printer, *, manifest: Callable[[], Manifest],
        pools: Callable[[], dict[str, Pool]], run_mark: str, run_env: Mapping[str, str],
        watchdog: Watchdog | None,
    ) -> None:  # fmt: skip
        self._settings = settings
        self._printer = printer
        self._manifest = manifest
        self._pools = pools
        self._run_mark = run_mark
        self._run_env = run_env
        self._watchdog = watchdog
        self.tasks: dict[str, TaskRun] = {}  # by task id
        self.failures: list[str] = []  # tasks that failed, and what did not start for them
        self.failed = asyncio.Event()
        self._waiters: set[asyncio.Task[None]] = set()
        self._ran: deque[list[float]] = deque(maxlen=_RUNS_KEPT)  # [began, ended] each

    def run_tasks(self, reloading: Reloading | None = None) -> None:
        """Run the manifest's <task>s, each once what it depends on is there; a reload's,
        those it adds, and those that failed (one that ran stays done: a reload runs none
        again)."""
        manifest = reloading.manifest if reloading is not None else self._manifest()
        runs = [TaskRun(task, self._printer) for task in manifest.tasks
                if task.id not in self.tasks or self.tasks[task.id].state == "FAILED"]  # fmt: skip
        self.tasks.update((run.task.id, run) for run in runs)  # (all known before any waits)
        for run in runs:
            if self._selected(run.task.id, manifest):
                needs = self._here(run.task.depends_on)
                task = partial(self._run_task, run, fatal=reloading is None)
                self._after(needs, run.task.id, task, reloading=reloading)
            else:
                run.finish(True)  # left out by --only: nothing waits for it

    async def cancel(self) -> None:
        """The run stops: the tasks running and the starts waiting end here."""
        for waiter in self._waiters:
            waiter.cancel()
        await asyncio.gather(*self._waiters, return_exceptions=True)

    def ran_at(self, when: float, slack: float) -> bool:
        """Whether one of the run's <build>s or <task>s was running at `when` (time.time(),
        as files' modification times are; `slack` seconds early counts): what they write
        is not an edit for --watch (watch/edits.py's Doings)."""
        return any(began - slack <= when <= ended for began, ended in self._ran)

    async def _timed(self, run: TaskRun, mark: str) -> None:
        """Run a <build> or <task>, noting when it ran (`ran_at`)."""
        window = [time.time(), math.inf]
        self._ran.append(window)
        try:
            await run.run(mark=mark, run_env=self._run_env, watchdog=self._watchdog)
        finally:
            window[1] = time.time()

    def _selected(self, name: str, manifest: Manifest) -> bool:
        """Whether --only (if given) takes `name`, itself or as something a taken one needs
        in `manifest` (with --no-deps, only the tasks: the processes needed run elsewhere)."""
        only = self._settings.only
        if not only:
            return True
        needs = {p.id: self._here(p.depends_on) for p in manifest.processes}
        needs.update({t.id: self._here(t.depends_on) for t in manifest.tasks})
        taken, todo = set(), list(only)
        while todo:
            item = todo.pop()
            if item not in taken:
                taken.add(item)
                todo.extend(needs.get(item, ()))
        return name in taken

    def _here(self, needs: tuple[str, ...]) -> tuple[str, ...]:
        """What of `needs` this proxy starts and waits for: everything, except with --no-deps
        the processes (a container per process, as `export` writes, where the engine
        starts them in order)."""
        if not self._settings.no_deps:
            return needs
        return tuple(need for need in needs if need in self.tasks)

    def start(self, pool: Pool, *, built: bool = False, reloading: Reloading | None = None) -> None:
        """Start `pool` once what it depends on is there, unless --only leaves it out (then
        its routes say why: 503); its <build> first, unless `built` (build_ahead ran it)."""
        manifest = reloading.manifest if reloading is not None else self._manifest()
        if not self._selected(pool.process.id, manifest):
            pool.disabled = (
                f"{pool.process.id} was not started: local-lambdas runs with "
                f"--only {','.join(self._settings.only)}"
            )
            return
        build = pool.process.build is not None and not built
        if not pool.process.depends_on and not build:
            if pool.process.start == "on-request":
                pool.sleep()  # its first request starts it (Pool.wake)
            else:
                pool.start()
            return

        async def start() -> None:
            if build and not await self.build_ahead(pool):
                return
            if pool.process.start == "on-request":
                pool.sleep()  # what it needs is there, built: its first request starts it
                return
            pool.start()

        needs = self._here(pool.process.depends_on)
        self._after(needs, pool.process.id, start, pool=pool, reloading=reloading)

    async def build_ahead(self, pool: Pool) -> bool:
        """Run the process's <build> (output as `ID build`); whether it succeeded. A failed
        one blocks the pool: at start-up its routes answer 503 with the reason; on a
        restart the running pool stays (reload, which runs it ahead, before the running
        one stops, for a process replaced in its place)."""
        process = pool.process
        executable, args = _compat.shell(process.build or "")
        build = Task(
            id=f"{process.id} build", executable=executable,
            args=tuple(arg.replace("$", "$$") for arg in args),  # (the shell's $s, as written)
            working_dir=process.working_dir, env=variables.before_start(process.env),
            environment=process.environment, timeout=BUILD_TIMEOUT,
        )  # fmt: skip
        run = TaskRun(build, self._printer, limit="the longest a <build> may run")
        pool.waiting_for = ("its <build>",)  # (what its status says meanwhile)
        await self._timed(run, f"{self._run_mark}.{process.id}-build.")
        if run.state == "DONE":
            return True
        pool.block(f"{process.id} was not started: its <build> failed: {run.cause}")
        return False

    def _after(
        self, needs: tuple[str, ...], name: str, then: Callable[[], Awaitable[None]],
        pool: Pool | None = None, reloading: Reloading | None = None,
    ) -> None:  # fmt: skip
        """Call `then` once everything `needs` names is there; if any of it fails, say so
        and never call it (nor when the run stops first). At start-up that fails the run;
        in a reload (`reloading`), what it would have replaced stays."""

        def fail(reason: str) -> None:
            failure = f"{name} was not started: {reason}"
            log.error("%s", failure, extra={"fields": {"event": "not_started",
                                                       "process": name}})  # fmt: skip
            if pool is not None:
                pool.block(failure)
            if name in self.tasks:
                self.tasks[name].finish(False, failure)
            if reloading is None:
                self.failures.append(failure)
                self.failed.set()

        async def wait_then() -> None:
            for need in needs:
                reason = await self._wait_for(need, reloading)
                if reason is not None:
                    return fail(reason)
            try:
                await then()
            except Exception as exc:  # a defect: said; what waits for it fails, never waits
                log.exception("%s: could not be started", name)
                fail(f"{type(exc).__name__}: {exc}")

        if pool is not None:
            pool.waiting_for = needs
        task = asyncio.create_task(wait_then(), name=f"start {name}")
        self._waiters.add(task)
        task.add_done_callback(self._waiters.discard)

    async def _wait_for(self, need: str, reloading: Reloading | None) -> str | None:
        """Wait until process or task `need` is there (a reload's new pool for it, if it
        starts one); None, or why it never will be."""
        run = self.tasks.get(need)
        if run is not None:
            return None if await run.done else run.reason
        fresh = reloading.fresh.get(need) if reloading is not None else None
        pool = fresh or self._pools()[need]
        while True:
            if pool.blocked is not None or pool.disabled is not None:
                return pool.blocked or pool.disabled
            if await pool.wait_ready(NO_LIMIT):
                return None
            if any(c.state in DOWN for c in pool.instances):
                return f"{need} is down ({pool.instances[0].reason})"
            if pool.ending:  # stopped, or replaced (reloads.py): wait for what replaced it
                now = self._pools().get(need)
                if now is None or now is pool or now.ending:
                    return f"{need} was stopped"
                pool = now

    async def _run_task(self, run: TaskRun, *, fatal: bool) -> None:
        """Run a <task>; one that fails at start-up fails the run (`fatal`)."""
        await self._timed(run, f"{self._run_mark}.{run.task.id}.")
        if run.state == "FAILED" and fatal:
            self.failures.append(run.reason)
            self.failed.set()


def stopping_order(pools: Iterable[Pool]) -> list[list[Pool]]:
    """`pools` in stopping order: each level depends on nothing in the levels after it."""
    left = {pool.process.id: pool for pool in pools}
    levels = []
    while left:
        needed = {need for pool in left.values() for need in pool.process.depends_on}
        level = [pool for name, pool in left.items() if name not in needed] or list(left.values())
        levels.append(level)
        for pool in level:
            del left[pool.process.id]
    return levels

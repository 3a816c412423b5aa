"""Everything one manifest runs: a pool per <process>, its <task>s, the routing table, the
watchdog, the stop.

The start order is start_order.py's (what has no <depends_on> first, the rest once what
they name is there); stopping goes in the reverse order.

Reloads and restarts are reloads.py's; the routing table and the pools are only ever
replaced whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from local_lambdas._compat import IS_LINUX, IS_WINDOWS, adoption, processes
from local_lambdas.config import Manifest, Process, Settings
from local_lambdas.cors import Policy, policy_for
from local_lambdas.errors import SHUTTING_DOWN, StartupError
from local_lambdas.output import Printer
from local_lambdas.router import Router
from local_lambdas.run_signals import killed_at_forced_exit
from local_lambdas.stats import ProcessStats
from local_lambdas.supervision.instance import Instance
from local_lambdas.supervision.launch import SocketNames
from local_lambdas.supervision.orphan_watchdog import Watchdog
from local_lambdas.supervision.pool import Pool
from local_lambdas.supervision.reloads import Reloads
from local_lambdas.supervision.start_order import StartOrder, stopping_order
from local_lambdas.supervision.states import State
from local_lambdas.supervision.tasks import TaskRun

log = logging.getLogger("local_lambdas.supervisor")

_REAP_EVERY = 2.0  # seconds between looks for what the children's sessions left (Linux)


class Supervisor(Reloads):
    def __init__(self, manifest: Manifest, settings: Settings, printer: Printer) -> None:
        super().__init__()
        self.manifest = manifest
        self.pools: dict[str, Pool] = {}
        self.router: Router[Pool] = Router([])
        self.stopping = False
        self.stats: dict[str, ProcessStats] = {}  # by process id; kept across reloads
        self._settings = settings
        self.printer = printer
        self._names = SocketNames(settings.socket_dir, plain=not settings.own_socket_dir)
        self._made: list[Path] = []  # the folders of a --socket-dir made for it, outermost first
        self._reaping: asyncio.TimerHandle | None = None  # (_reap_orphans)
        self._strays_told: set[tuple[int, int]] = set()  # (_reap_orphans)
        # In every child's environment, and so in every process descended from one: what
        # finds them all at the end, wherever they went (orphans.marked).
        self.run_mark = secrets.token_hex(6)
        killed_at_forced_exit(self.run_mark)
        # Sent with every request (docs/protocol.md, "The run's token"): a child can tell
        # the proxy from any other local program that found its port or socket.
        self.token = secrets.token_urlsafe(24)
        # What every child and task of the run finds in its environment besides its own;
        # LOCAL_LAMBDAS_URL once the proxy listens (lifecycle.started).
        self.run_env = {"LOCAL_LAMBDAS_TOKEN": self.token}
        self._watchdog = None if IS_WINDOWS else Watchdog()
        self.order = StartOrder(
            settings, printer, manifest=lambda: self.manifest, pools=lambda: self.pools,
            run_mark=self.run_mark, run_env=self.run_env, watchdog=self._watchdog,
        )  # fmt: skip
        # Called at every change of an instance's state (the dashboard shows it at once).
        self.on_state: Callable[[], None] = lambda: None

    @property
    def tasks(self) -> dict[str, TaskRun]:
        """The run's <task>s, by id."""
        return self.order.tasks

    @property
    def failures(self) -> list[str]:
        """Tasks that failed, and what did not start for them (start_order.py)."""
        return self.order.failures

    @property
    def failed(self) -> asyncio.Event:
        """Set once something failed to start for want of what it depends on."""
        return self.order.failed

    @property
    def children(self) -> list[Instance]:
        return [child for pool in self.pools.values() for child in pool.instances]

    def route(self, path: str) -> Pool | None:
        """The pool for a normalised path (router.resolve makes it from a target)."""
        return self.router.match(path)

    async def start(self) -> None:
        """Start every child at once; readiness is awaited separately (wait_ready)."""
        directory = self._settings.socket_dir
        try:
            if IS_WINDOWS:
                pass  # named pipes live in the pipe namespace, not in a directory
            elif self._settings.own_socket_dir:
                directory.mkdir(mode=0o700)
            else:
                self._made = _missing(directory)
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(
                f"cannot create the socket directory {directory}: {exc.strerror}; "
                "pass another with --socket-dir"
            ) from exc
        # Routes first: a request that comes while the watchdog starts waits for its child
        # (as it would for a starting child), rather than finding no route; /_/ready counts a
        # pool without instances as starting.
        self._install({p.id: self._pool(p) for p in self.manifest.processes})
        processes.become_subreaper()
        if self._watchdog is not None:
            await self._watchdog.start(
                self.run_mark, str(directory) if self._settings.own_socket_dir else None
            )
        self._reap_orphans()  # (once the watchdog can be told)
        self.order.run_tasks()
        for pool in self.pools.values():
            self.order.start(pool)

    def wake_all(self) -> None:
        """Start the processes that start on request: `run` and `check --boot` prove that
        they work (they may go idle again)."""
        for pool in self.pools.values():
            pool.wake()

    def _pool(self, process: Process) -> Pool:
        return Pool(
            process,
            self.printer,
            self._names,
            watchdog=self._watchdog,
            cache_bytes=process.cache or self._settings.default_cache,
            cache_entries=None if process.cache else self._settings.default_cache_entries,
            stats=self.stats.setdefault(process.id, ProcessStats()),
            run_mark=self.run_mark,
            run_env=self.run_env,
            cors=self._policy(process),
            on_state=lambda: self.on_state(),
        )

    def _policy(self, process: Process) -> Policy | None:
        return policy_for(process.cors, self._settings.cors)

    def _install(self, pools: dict[str, Pool]) -> None:
        self.pools = pools
        self.router = Router(
            (route, pool) for pool in pools.values() for route in pool.process.routes
        )

    async def wait_ready(self, timeout: float) -> list[Instance]:
        """Wait until every child is READY or given up on; the children that are not READY."""
        tasks = (asyncio.wait_for(asyncio.shield(run.done), timeout) for run in self.tasks.values())
        await asyncio.gather(
            *(pool.wait_ready(timeout) for pool in self.pools.values()), *tasks,
            return_exceptions=True,  # a task still running at the time-out: said by the caller
        )  # fmt: skip
        return [c for c in self.children if c.state is not State.READY]

    def not_ready(self, *, said: bool = False) -> dict[str, str]:
        """What is not ready yet, by id, and why: each process not READY (IDLE, asleep until
        a request, counts as ready; one not started yet, as its <build> runs, does not) and
        each <task> not done (a CI job's tests may need what it makes: a database seeded).
        With `said`, the line of a process's output that says why (Instance.account)."""
        waiting = {
            pid: pool.why_not_ready(said=said) for pid, pool in self.pools.items() if not pool.ready
        }
        waiting |= {
            name: f"{run.state} (task)" + (f": {run.cause}" if run.cause else "")
            for name, run in self.tasks.items() if run.state != "DONE"
        }  # fmt: skip
        return waiting

    def begin_stop(self) -> None:
        """A stop's first step, before the requests in flight finish: nothing starts from now
        on, a reload under way (a --watch change's <build>, an admin restart's wait for its
        replacement) ends now, not when it would have (what it started is the stop's to
        stop), and a request waiting for an instance to start gets 503."""
        self.stopping = True
        for work in self._reloads:
            work.cancel()
        for pool in {*self.pools.values(), *self._in_reload, *self.retiring}:
            pool.turn_away(SHUTTING_DOWN)

    def _reap_orphans(self) -> None:
        """What the children's sessions leave to this process, reaped every few seconds
        while it runs (adoption.reap_orphans); what runs below it with no mark told to the
        watchdog, which could not find it if this process were killed."""
        adoption.reap_orphans()
        if self._watchdog is not None:
            running = set(adoption.unmarked_descendants())
            for pid, start in running - self._strays_told:
                self._watchdog.stray(pid, start)
            self._strays_told = running
        if not self.stopping and IS_LINUX:
            loop = asyncio.get_running_loop()
            self._reaping = loop.call_later(_REAP_EVERY, self._reap_orphans)

    async def stop(self) -> None:
        self.stopping = True
        if self._reaping is not None:
            self._reaping.cancel()
        await self.order.cancel()
        # What depends on others stops first, as it may still be using them.
        for level in stopping_order(self.pools.values()):
            await asyncio.gather(*(pool.stop() for pool in level))
        # A reload's, started beside them or draining: each stops now (Roster: for good).
        await asyncio.gather(*(pool.stop() for pool in {*self._in_reload, *self.retiring}))
        # Anything descended from a child of this run that outlived its own child's stop.
        await adoption.reap_when_gone(processes.kill_marked(self.run_mark + "."), 1.0)
        if self._watchdog is not None:
            await self._watchdog.close()
        if self._settings.own_socket_dir:
            shutil.rmtree(self._settings.socket_dir, ignore_errors=True)
        for made in reversed(self._made):  # what this run made, if its sockets left it empty
            with contextlib.suppress(OSError):
                made.rmdir()


def _missing(directory: Path) -> list[Path]:
    """The folders of `directory`'s path that are not there yet, outermost first."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing[::-1]

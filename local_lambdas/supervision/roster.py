"""The instances of one manifest <process> over time: starting them (all at once, or on the
first request), putting them to sleep when idle, recycling one after <max_requests>,
retiring them after a reload, stopping them; and the waits on their changes. The pool
(pool.py) builds on it: which instance serves a request, and the process's state.

Recycling: after <max_requests> requests an instance is replaced. The replacement starts
beside it; only once it is READY does the old one stop taking work, finish what it has, and
stop. If the replacement cannot start, the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Final

from local_lambdas import _compat
from local_lambdas.config import Process
from local_lambdas.output import Printer
from local_lambdas.supervision.instance import Instance
from local_lambdas.supervision.launch import SocketNames
from local_lambdas.supervision.line import Line
from local_lambdas.supervision.orphan_watchdog import Watchdog
from local_lambdas.supervision.readiness import Busy
from local_lambdas.supervision.route_only import RouteOnly
from local_lambdas.supervision.states import State

log = logging.getLogger("local_lambdas.pool")  # pool.py's log: one object, one logger

DOWN: Final = (State.FATAL, State.EXITED)
FAILED_START: Final = (*DOWN, State.BACKOFF)  # down, or a start that failed


def start_allowance(process: Process) -> float:
    """The longest one start of `process` may take, as child_run judges a start: its
    <startup_timeout> of waiting, up to Busy.LIMIT times as long while it works (a JVM
    loading, `cargo run` compiling), and a second for that judgement to be made."""
    return process.startup_timeout * Busy.LIMIT + 1


class Roster:
    def __init__(
        self,
        process: Process,
        printer: Printer,
        names: SocketNames,
        *,
        watchdog: Watchdog | None,
        clock: Callable[[], float],
        run_mark: str,
        run_env: Mapping[str, str],
        on_state: Callable[[], None],
        give_back: Callable[[Instance], None],
    ) -> None:
        self.process = process
        self._on_state = on_state  # told of every instance's change of state
        self._run_mark = run_mark
        self._run_env = run_env  # (launch.prepare)
        self.instances: list[Instance] = []
        self.retired = False
        self.disabled: str | None = None  # why it was not started (--only), if it was not
        self.blocked: str | None = None  # why it never will be (a dependency failed)
        self.turned_away: str | None = None  # why requests waiting get 503 (turn_away)
        self.waiting_for: tuple[str, ...] = ()  # what it waits for before it starts
        self.started = False
        # <start>on-request</start> and <idle_timeout>: asleep until a request comes.
        self.sleeping = False
        self._woken = False  # woken before it first slept (its <build> or needs under way)
        self.last_request = clock()
        self._idle_timeout = process.idle_timeout
        self._idle_watch: asyncio.Task[None] | None = None
        self._printer = printer
        self._names = names
        self._watchdog = watchdog
        self._clock = clock
        self._changed = asyncio.Event()
        self._listeners = 0  # coroutines waiting on _changed
        self._loop = asyncio.get_running_loop()
        # Requests waiting for a slot (line.py); `give_back` frees one a request was
        # handed and could not use.
        self._line: Line[Instance] = Line(self._loop, give_back)
        self._waiting = 0  # of those, requests waiting for an instance
        self._tasks: set[asyncio.Task[None]] = set()
        # Instances taken out of service whose stop is still to come (draining): a stop of
        # the whole roster that cancels their removal stops them too, or they would run on.
        self._leaving: set[Instance] = set()
        self.ending = False  # stopping or retiring: no instance is to be started any more
        # A reload's replacement whose file was saved again as it started (cut_short).
        self.superseded = False

    # -- changes, and waits on them -------------------------------------------------------

    def _instance_changed(self) -> None:
        self._notify()
        self._on_state()

    def _notify(self) -> None:
        """Something changed: every waiter looks again."""
        if self._listeners:  # nobody waits: skip making a new event
            self._changed_set()
        self._line.wake_all()

    def _changed_set(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _changed_within(self, seconds: float) -> None:
        """Return at the next change of any instance or lease, or after `seconds`."""
        changed = self._changed
        self._listeners += 1
        try:
            async with _compat.timeout(seconds):
                await changed.wait()
        except asyncio.TimeoutError:
            pass
        finally:
            self._listeners -= 1

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self.ending:  # stopped (for good), or retired, before its start came
            return
        self.started = True
        self.sleeping = self._woken = False  # (a wake that came before is answered)
        self.last_request = self._clock()
        for index in range(1, self.process.instances + 1):
            self._add(index).start()
        if self._idle_timeout is not None and self._idle_watch is None:
            self._idle_watch = self._spawn(self._sleep_when_idle(self._idle_timeout))
        self._notify()

    def sleep(self) -> None:
        """Not started until a request comes (<start>on-request</start>); started now if
        woken before it could sleep."""
        if self._woken:
            self._woken = False
            self.start()
            return
        self.sleeping = True
        self._notify()

    def wake(self) -> None:
        """Start a sleeping process: a request came (or `run` proves it works). One not
        started yet (its <build> or what it depends on under way) starts then, rather than
        sleep: `run` and `check --boot` wake every process once, as they begin."""
        if self.sleeping:
            log.info("%s: starting on request", self.process.id)
            self.start()
        elif not self.started:
            self._woken = True

    async def _sleep_when_idle(self, idle: float) -> None:
        """Stop the instances, gracefully, once no request has come for `idle` seconds; the
        next request starts them again."""
        while True:
            await asyncio.sleep(max(0.05, min(idle / 4, 5.0)))  # a check, not a readiness wait
            quiet = self._clock() - self.last_request
            busy = any(c.in_flight for c in self.instances) or self._waiting
            if self.sleeping or busy or quiet < idle or not self.instances:
                continue
            log.info("%s: no request for %gs (<idle_timeout>): stopping until the next one",
                     self.process.id, idle)  # fmt: skip
            self.started = False
            await asyncio.gather(*(self._remove(c, drain=True) for c in list(self.instances)))
            self.sleep()

    def turn_away(self, reason: str) -> None:
        """The proxy stops: the requests waiting for an instance to start (none READY) get
        503 with `reason` at once, rather than hold the stop up for a start that may take
        minutes; those an instance serves, or waits to be free for, finish."""
        self.turned_away = reason
        self._notify()

    def block(self, reason: str) -> None:
        """It will not be started: what it depends on failed. Waiting requests get 503."""
        self.blocked = reason
        self._notify()

    def _add(self, index: int) -> Instance:
        pipe = None
        if self.process.communication_mode.uses_pipe:
            pipe = self._names.take(self.process.pipe_name)
        kind = Instance if self.process.upstream is None else RouteOnly
        child = kind(
            self.process,
            self._printer,
            index=index,
            pipe=pipe,
            on_change=self._instance_changed,
            watchdog=self._watchdog,
            clock=self._clock,
            run_mark=self._run_mark,
            run_env=self._run_env,
        )
        self.instances.append(child)
        return child

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds, checking it at every change; False on time out."""
        deadline = self._clock() + timeout
        while not predicate():
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False
            await self._changed_within(remaining)
        return True

    async def wait_ready(self, timeout: float, *, retries: bool = True) -> bool:
        """Wait until every instance is READY (True), or one is down or time is up (False);
        without `retries`, one that failed a start (BACKOFF) is down too, and one cut short
        (superseded) ends the wait. A process that is not to be started (disabled) is
        ready as it is."""
        if self.disabled is not None or self.sleeping:
            return True
        down = DOWN if retries else FAILED_START
        await self.wait_for(
            lambda: self.blocked is not None or self.ending or (self.started and (
                all(c.state is State.READY for c in self.instances)
                or any(c.state in down for c in self.instances)
                or (self.superseded and not retries)
            )),
            timeout,
        )  # fmt: skip
        return self.started and all(c.state is State.READY for c in self.instances)

    def cut_short(self) -> None:
        """A reload's wait for this replacement to start ends: its file was saved again, and
        a newer replacement is to start instead (Reloads.supersede)."""
        self.superseded = True
        self._notify()

    async def _recycle(self, old: Instance) -> None:
        if self.ending:  # a request that ends as the roster stops: nothing to replace
            return
        log.info("%s: recycling after %d requests (<max_requests>)", old.name, old.requests)
        if self.process.port:  # room for one process (see Supervisor.reload): in its place
            await self._remove(old, drain=True)
            if not self.ending:
                self._add(old.index).start()
            return
        new = self._add(old.index)
        new.start()
        await self.wait_for(
            lambda: new.state is State.READY or new.state in FAILED_START,
            start_allowance(self.process),
        )
        if new.state is State.READY:
            await self._remove(old, drain=True)
            return
        log.warning("%s: its replacement did not start; it keeps serving", old.name)
        await self._remove(new, drain=False)
        old.retiring = False
        old.requests = 0

    async def _remove(self, child: Instance, *, drain: bool) -> None:
        """Take `child` out of service; with `drain`, let its requests finish (bounded),
        its WebSockets and event streams ended at once (PassthroughTransport.end_streams):
        clients reconnect."""
        if child in self.instances:
            self.instances.remove(child)
        self._leaving.add(child)
        self._notify()
        if drain:
            relay = child.link.relay
            if relay is not None:  # a stream would hold the drain up to <timeout>
                await relay.end_streams(restart=True)
            await self.wait_for(lambda: child.in_flight == 0, self.process.timeout)
        await child.stop()
        self._leaving.discard(child)
        if child.pipe is not None:
            self._names.give_back(child.pipe)

    def _spawn(self, work: Coroutine[None, None, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def retire(self) -> None:
        """After a reload replaced this pool: waiting requests go to the new one; requests in
        flight finish (bounded by <timeout>); then every instance stops."""
        self.retired = True
        self._notify()
        await self._stop(drain=True)

    async def stop(self) -> None:
        await self._stop(drain=False)

    async def _stop(self, *, drain: bool) -> None:
        self.ending = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        leaving = [*self.instances, *self._leaving]
        await asyncio.gather(*(self._remove(c, drain=drain) for c in leaving))

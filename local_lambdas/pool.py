"""The instances of one manifest <process>: who serves a request, and how long it may wait.

A request leases one READY instance with a free slot (fewest in flight first, ties taken in
turn). When none has one (every instance starting, restarting, recycling or busy) the request
waits, up to the process's <queue_timeout>, with at most <max_queue> others; past either bound
it gets 503 with Retry-After. A FATAL or EXITED process answers 503 at once, with the reason.

Recycling: after <max_requests> requests an instance is replaced. The replacement starts
beside it; only once it is READY does the old one stop taking work, finish what it has, and
stop. If the replacement cannot start, the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Final

from local_lambdas import _compat
from local_lambdas.cache import Cache
from local_lambdas.config import Fate, Mode, Process
from local_lambdas.cors import Policy
from local_lambdas.errors import NotReady
from local_lambdas.instance import Instance, State
from local_lambdas.launch import SocketNames
from local_lambdas.line import Line
from local_lambdas.output import Printer
from local_lambdas.stats import ProcessStats
from local_lambdas.watchdog import Watchdog

log = logging.getLogger("local_lambdas.pool")

_DOWN: Final = (State.FATAL, State.EXITED)
_READY: Final = State.READY  # an Enum's member read from compiled code is slow: see http1


class PoolRetired(NotReady):
    """This pool was replaced by a reload: route the request again."""


class Pool:
    def __init__(
        self,
        process: Process,
        printer: Printer,
        names: SocketNames,
        *,
        watchdog: Watchdog | None = None,
        cache_bytes: int | None = None,
        cache_entries: int | None = None,
        stats: ProcessStats | None = None,
        clock: Callable[[], float] = time.monotonic,
        run_mark: str = "",
        token: str = "",
        cors: Policy | None = None,
        on_state: Callable[[], None] = lambda: None,
    ) -> None:
        self.process = process
        self._on_state = on_state  # told of every instance's change of state
        self.cors = cors  # None: CORS is off for its routes
        self._run_mark = run_mark
        self._token = token
        # Read on every request: plain attributes, not pydantic ones (a class with
        # __getattr__ makes every attribute read a slower, hooked one).
        self._slots = process.slots
        self._max_requests = process.max_requests
        self.methods = process.methods  # for Proxy.plan, on every request
        self.max_body_size = process.max_body_size
        self.relays = process.communication_mode is Mode.PASSTHROUGH  # (an Enum: see http1)
        self.fate = Fate.RELAY if self.relays else Fate.ENVELOPE
        self.id = process.id
        self.stats = stats or ProcessStats()
        # Pass-through answers stream and are never cached (the manifest refuses <cache>).
        self.cache = (
            Cache(cache_bytes, max_entries=cache_entries, clock=clock)
            if cache_bytes and process.communication_mode is not Mode.PASSTHROUGH
            else None
        )
        self.instances: list[Instance] = []
        self.retired = False
        self.disabled: str | None = None  # why it was not started (--only), if it was not
        self.blocked: str | None = None  # why it never will be (a dependency failed)
        self.waiting_for: tuple[str, ...] = ()  # what it waits for before it starts
        self.started = False
        # <start>on-request</start> and <idle_timeout>: asleep until a request comes.
        self.sleeping = False
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
        self._line = Line(self._loop)  # requests waiting for a slot (line.py)
        self._waiting = 0  # of those, requests waiting for an instance
        self._turn = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        """Requests waiting for an instance now (the queue)."""
        return self._waiting

    # -- requests ------------------------------------------------------------------------

    def try_acquire(self, avoid: tuple[Instance, int] | None = None) -> Instance | None:
        """`acquire` without waiting: an instance now, or None. The request path tries this
        first; a coroutine per request is worth saving there."""
        child = self._pick(avoid)
        if child is not None:
            child.in_flight += 1
            child.requests += 1
        return child

    async def acquire(self, avoid: tuple[Instance, int] | None = None) -> Instance:
        """A READY instance with a free slot, held for one request until `release`.

        `avoid` is an instance and generation the caller saw fail: that process is not used
        again (its restart, a new generation, is). An explicit pair rather than a context
        manager: this runs for every request, and the manager cost 4% of the proxy's time.
        """
        child = self.try_acquire(avoid)
        if child is not None:
            return child
        if self.sleeping:
            self.wake()
        if self.disabled is not None or self.blocked is not None:
            raise NotReady(self.disabled or self.blocked or "", retry_after=1)
        if self._waiting >= self.process.max_queue:
            raise NotReady(
                f"{self.process.id}: {self._waiting} requests are already waiting (<max_queue>)",
                retry_after=1,
            )
        deadline = self._clock() + self.process.queue_timeout
        while True:
            if self.retired:
                raise PoolRetired(f"{self.process.id} was reloaded")
            if self.blocked is not None:
                raise NotReady(self.blocked, retry_after=1)
            if self.sleeping:  # it went to sleep as this request came: wake it again
                self.wake()
            down = [c for c in self.instances if c.state in _DOWN]
            if down and len(down) == len(self.instances):
                raise NotReady(down[0].reason or f"{self.process.id} is down", retry_after=1)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise NotReady(
                    f"{self.process.id}: {self._why_busy()}; waited "
                    f"{self.process.queue_timeout:g}s (<queue_timeout>)",
                    retry_after=1,
                )
            self._waiting += 1
            try:
                if avoid is None:
                    await self._line.wait(self._loop.time() + remaining)
                else:  # a retry waits for the failed process's replacement: any change
                    await self._changed_within(remaining)
            finally:
                self._waiting -= 1
            child = self.try_acquire(avoid)
            if child is not None:
                return child

    def release(self, child: Instance) -> None:
        """Give back the slot `acquire` took (in a `finally`: exactly once per acquire)."""
        child.in_flight -= 1
        if self._idle_timeout is not None:
            self.last_request = self._clock()
        limit = self._max_requests
        if limit is not None and child.requests >= limit and not child.retiring:
            child.retiring = True  # now, not in the task: one replacement per instance
            self._spawn(self._recycle(child))
        if self._line:
            self._line.pass_turn()  # the slot goes to the first request still waiting
        if self._listeners:
            self._changed_set()

    def _pick(self, avoid: tuple[Instance, int] | None) -> Instance | None:
        best: Instance | None = None
        count = len(self.instances)
        for offset in range(count):
            child = self.instances[(self._turn + offset) % count]
            if (
                child.state is not _READY
                or child.transport is None
                or child.in_flight >= self._slots
                or (avoid is not None and (child, child.generation) == avoid)
            ):
                continue
            if best is None or child.in_flight < best.in_flight:
                best = child
        if best is not None:
            self._turn += 1
        return best

    # -- the process's state, as /_/status, /_/ready, run, check and reloads tell it -------

    @property
    def state(self) -> State:
        """The process's state: its least ready instance's; STARTING before it has any."""
        if self.disabled is not None:
            return State.STOPPED
        if self.blocked is not None:
            return State.FATAL
        if self.sleeping:
            return State.IDLE
        if not self.instances:
            return State.STARTING
        least = self._least_ready()
        return least.state if least else State.READY

    @property
    def ready(self) -> bool:
        """Whether nothing is to be waited for: READY, IDLE (starts on request) or left out."""
        return self.disabled is not None or self.state in (State.READY, State.IDLE)

    def why_not_ready(self) -> str:
        """The state, and why: what it waits for, or its least ready instance's account."""
        if self.blocked is not None:
            return f"FATAL: {self.blocked}"
        if self.disabled is not None:
            return f"STOPPED: {self.disabled}"
        if not self.started and self.waiting_for:
            return f"STARTING: waiting for {', '.join(self.waiting_for)}"
        least = self._least_ready()
        return least.account() if least is not None else self.state.value

    def _least_ready(self) -> Instance | None:
        """The first instance that is not READY, if any: it speaks for the process."""
        return next((i for i in self.instances if i.state is not State.READY), None)

    def _why_busy(self) -> str:
        if any(c.state is State.READY for c in self.instances):
            return f"every instance has {self.process.slots} requests in flight (<concurrency>)"
        states = sorted({c.state.value.lower() for c in self.instances})
        return f"not ready ({', '.join(states)})"

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
        self.started = True
        self.sleeping = False
        self.last_request = self._clock()
        for index in range(1, self.process.instances + 1):
            self._add(index).start()
        if self._idle_timeout is not None and self._idle_watch is None:
            self._idle_watch = self._spawn(self._sleep_when_idle(self._idle_timeout))
        self._notify()

    def sleep(self) -> None:
        """Not started until a request comes (<start>on-request</start>)."""
        self.sleeping = True
        self._notify()

    def wake(self) -> None:
        """Start a sleeping process: a request came (or `run` proves it works)."""
        if self.sleeping:
            log.info("%s: starting on request", self.process.id)
            self.start()

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
                     self.process.id, quiet)  # fmt: skip
            self.started = False
            await asyncio.gather(*(self._remove(c, drain=True) for c in list(self.instances)))
            self.sleep()

    def block(self, reason: str) -> None:
        """It will not be started: what it depends on failed. Waiting requests get 503."""
        self.blocked = reason
        self._notify()

    def _add(self, index: int) -> Instance:
        pipe = None
        if self.process.communication_mode.uses_pipe:
            pipe = self._names.take(self.process.pipe_name)
        child = Instance(
            self.process,
            self._printer,
            index=index,
            pipe=pipe,
            on_change=self._instance_changed,
            watchdog=self._watchdog,
            clock=self._clock,
            run_mark=self._run_mark,
            token=self._token,
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

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until every instance is READY (True), or one is down or time is up (False).
        A process that is not to be started (disabled) is ready as it is."""
        if self.disabled is not None or self.sleeping:
            return True
        await self.wait_for(
            lambda: self.blocked is not None or (self.started and (
                all(c.state is State.READY for c in self.instances)
                or any(c.state in _DOWN for c in self.instances)
            )),
            timeout,
        )  # fmt: skip
        return self.started and all(c.state is State.READY for c in self.instances)

    async def _recycle(self, old: Instance) -> None:
        log.info("%s: recycling after %d requests (<max_requests>)", old.name, old.requests)
        new = self._add(old.index)
        new.start()
        await self.wait_for(
            lambda: new.state is State.READY or new.state in _DOWN,
            self.process.startup_timeout + 1,
        )
        if new.state is State.READY:
            await self._remove(old, drain=True)
            return
        log.warning("%s: its replacement did not start; it keeps serving", old.name)
        await self._remove(new, drain=False)
        old.retiring = False
        old.requests = 0

    async def _remove(self, child: Instance, *, drain: bool) -> None:
        """Take `child` out of service; with `drain`, let its requests finish (bounded)."""
        if child in self.instances:
            self.instances.remove(child)
        self._notify()
        if drain:
            await self.wait_for(lambda: child.in_flight == 0, self.process.timeout)
        await child.stop()
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
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(self._remove(c, drain=drain) for c in list(self.instances)))

"""The instances of one manifest <process>: who serves a request, and how long it may wait;
the process's state, as /_/status, /_/ready, run, check and reloads tell it. Starting,
sleeping, recycling and stopping the instances is roster.py's (Pool builds on Roster).

A request leases one READY instance with a free slot (fewest in flight first, ties taken in
turn; one that let a request time out or gave an invalid answer is passed over for PASS_OVER
seconds while another can take the request, as nginx's `max_fails=1 fail_timeout=10s`: a
hung instance does not get every other request). When none has one (every instance
starting, restarting, recycling or busy) the request waits, up to the process's
<queue_timeout>, with at most <max_queue> others; past either bound it gets 503 with
Retry-After. A FATAL or EXITED process answers 503 at once, with the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Final

from local_lambdas.cache import Cache
from local_lambdas.config import Fate, Mode, Process
from local_lambdas.cors import Policy
from local_lambdas.errors import NotReady
from local_lambdas.output import Printer
from local_lambdas.stats import ProcessStats
from local_lambdas.supervision.instance import Instance
from local_lambdas.supervision.launch import NO_RUN_ENV, SocketNames
from local_lambdas.supervision.orphan_watchdog import Watchdog
from local_lambdas.supervision.roster import DOWN, Roster, log
from local_lambdas.supervision.states import State

_READY: Final = State.READY  # an Enum's member read from compiled code is slow: see http1
PASS_OVER: Final = 10.0  # seconds an instance that let a request time out is passed over


class PoolRetired(NotReady):
    """This pool was replaced by a reload: route the request again."""


class Pool(Roster):
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
        run_env: Mapping[str, str] = NO_RUN_ENV,
        cors: Policy | None = None,
        on_state: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(
            process, printer, names, watchdog=watchdog, clock=clock, run_mark=run_mark,
            run_env=run_env, on_state=on_state, give_back=self.release,
        )  # fmt: skip
        self.cors = cors  # None: CORS is off for its routes
        # Read on every request: plain attributes, not pydantic ones (a class with
        # __getattr__ makes every attribute read a slower, hooked one).
        self._slots = process.slots
        self._max_requests = process.max_requests
        self._max_queue = process.max_queue  # (these two on every request that waits)
        self._queue_timeout = process.queue_timeout
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
        self._turn = 0
        self.pass_over_seconds = PASS_OVER  # (a test shortens it)

    def retarget(self, process: Process, cors: Policy | None) -> None:
        """Take `process`, which differs from its own in config.ROUTING_ONLY alone (a
        reload): its requests routed, bounded and answered as that one says, its processes
        running on."""
        self.process = process
        self.cors = cors
        self.methods = process.methods
        self.max_body_size = process.max_body_size
        for child in self.instances:
            child.retarget(process)

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
        if self._waiting >= self._max_queue:
            raise NotReady(
                f"{self.process.id}: {self._waiting} requests are already waiting (<max_queue>)",
                retry_after=1,
            )
        now = self._loop.time()
        due = now + self._queue_timeout
        while True:
            if self.retired:
                raise PoolRetired(f"{self.process.id} was reloaded")
            refused = self.blocked or (None if self._serving() else self.turned_away)
            if refused is not None:
                raise NotReady(refused, retry_after=1)
            if self.sleeping:  # it went to sleep as this request came: wake it again
                self.wake()
            if now >= due:  # (first: a request that waited it out says so)
                raise NotReady(
                    f"{self.process.id}: {self._why_busy()}; waited "
                    f"{self.process.queue_timeout:g}s (<queue_timeout>)",
                    retry_after=1,
                )
            down = self._all_down()
            if down is not None:
                raise NotReady(down.account(), retry_after=1)  # "FATAL: gave up after ..."
            self._waiting += 1
            try:
                if avoid is None:
                    turn = self._line.join(due)
                    try:
                        handed = await turn
                    except asyncio.CancelledError:
                        self._line.leave(turn)
                        raise
                    if handed is not None:
                        return handed  # the slot a finished request passed on
                else:  # a retry waits for the failed process's replacement: any change
                    await self._changed_within(due - now)
            finally:
                self._waiting -= 1
            now = self._loop.time()
            child = self.try_acquire(avoid)
            if child is not None:
                return child

    def _serving(self) -> bool:
        """Whether an instance is READY: a request waiting for it to be free is served soon
        (a stop lets it), unlike one waiting for a start."""
        return any(child.state is _READY for child in self.instances)

    def _all_down(self) -> Instance | None:
        """The first instance, when every one is down: FATAL or EXITED, or its process not
        listening for longer than <queue_timeout> (a reloader waiting for a broken file's
        fix: a request would wait it out in vain); else None."""
        first = None
        now = self._clock()
        for child in self.instances:
            unheard = child.unheard_since
            quiet = unheard is not None and now - unheard > self._queue_timeout
            if child.state not in DOWN and not quiet:
                return None
            first = first or child
        return first

    def release(self, child: Instance) -> None:
        """Give back the slot `acquire` took (in a `finally`: exactly once per acquire): to
        the first request waiting, if the instance can take it, else free."""
        if self._idle_timeout is not None:
            self.last_request = self._clock()
        limit = self._max_requests
        if limit is not None and child.requests >= limit and not child.retiring:
            child.retiring = True  # now, not in the task: one replacement per instance
            self._spawn(self._recycle(child))
        if (
            self._line
            and child.state is _READY
            and child.link.open
            and child in self.instances  # not taken out of service (Roster._remove)
            and not (child.passed_over_until and self._another_takes(child))
            and self._line.pass_turn(child)
        ):
            child.requests += 1  # still in flight: now the first waiting request's
        else:
            child.in_flight -= 1
        if self._listeners:
            self._changed_set()

    def pass_over(self, child: Instance, why: str) -> None:
        """`child` let a request down as nginx counts a failed attempt (no answer within its
        <timeout>: hung, or at a breakpoint; an answer that is not one): new requests go to
        the other instances for `pass_over_seconds`, while one can take them."""
        now = self._clock()
        already = child.passed_over_until > now  # (said once, not for every failure)
        child.passed_over_until = now + self.pass_over_seconds
        if len(self.instances) > 1 and not already:
            log.warning(
                "%s: %s; new requests go to the other instances for %gs",
                child.name, why, self.pass_over_seconds,
            )  # fmt: skip

    def _another_takes(self, child: Instance) -> bool:
        """Whether another instance takes requests (READY, not passed over): the slot of one
        passed over is not handed to a request waiting in line then."""
        now = self._clock()
        return any(
            other is not child and other.state is _READY and other.link.open
            and other.passed_over_until <= now
            for other in self.instances
        )  # fmt: skip

    def _pick(self, avoid: tuple[Instance, int] | None) -> Instance | None:
        best: Instance | None = None
        passed_over: Instance | None = None  # the one to take if no other takes requests
        healthy = False  # another takes requests, if busy now: better to wait for it
        now = 0.0  # read once, and only if an instance was passed over
        count = len(self.instances)
        for offset in range(count):
            child = self.instances[(self._turn + offset) % count]
            if (
                child.state is not _READY
                or not child.link.open
                or (avoid is not None and (child, child.generation) == avoid)
            ):
                continue
            if child.passed_over_until:
                now = now or self._clock()
                if child.passed_over_until > now:
                    if child.in_flight < self._slots and (
                        passed_over is None or child.in_flight < passed_over.in_flight
                    ):
                        passed_over = child
                    continue
                child.passed_over_until = 0.0
            healthy = True
            if child.in_flight >= self._slots:
                continue
            if best is None or child.in_flight < best.in_flight:
                best = child
        if best is None and not healthy:
            best = passed_over
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

    def why_not_ready(self, *, said: bool = False) -> str:
        """The state, and why: what it waits for, or its least ready instance's account
        (with `said`, and what its output said: Instance.account)."""
        if self.blocked is not None:
            return f"FATAL: {self.blocked}"
        if self.disabled is not None:
            return f"STOPPED: {self.disabled}"
        if not self.started and self.waiting_for:
            return f"STARTING: waiting for {', '.join(self.waiting_for)}"
        least = self._least_ready()
        return least.account(said=said) if least is not None else self.state.value

    def _least_ready(self) -> Instance | None:
        """The first instance that is not READY, if any: it speaks for the process."""
        return next((i for i in self.instances if i.state is not State.READY), None)

    def _why_busy(self) -> str:
        """Why a request waited out its <queue_timeout>, as its 503 says."""
        least = self._least_ready()
        if least is not None:
            return least.account()  # "STARTING: ..."
        if all(child.in_flight >= self._slots for child in self.instances):
            return f"every instance has {self._slots} requests in flight (<concurrency>)"
        return "the process that failed this request did not restart nor listen again"

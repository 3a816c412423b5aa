"""The line of requests waiting for a slot of a process (pool.py), first come first served.

A released slot is handed to the first request still waiting, not freed for whoever asks
next: a request that arrives while others wait, or one woken a moment before it runs, would
otherwise take it, and the woken one go to the back of the line (under 1000 clients and 16
slots, a p50 of 7 ms beside a p99 of 1.5 s and clients timing out). A change of the
process's instances wakes them all, to look again. Each waits until its own time at most,
and one timer, for the soonest, serves the whole line: asyncio.timeout() would put one on
the loop's heap for every request that waits (PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Line(Generic[T]):
    """Requests waiting for a slot, in order. `give_back` takes a slot that was handed to a
    request cancelled before it could use it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, give_back: Callable[[T], None]) -> None:
        self._loop = loop
        self._give_back = give_back
        # Each waiting request's turn (the slot handed to it, None to look again), and when
        # it gives up (the loop's time).
        self._queue: deque[tuple[asyncio.Future[T | None], float]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0  # when it fires (TimerHandle.when() is a method call)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def join(self, due: float) -> asyncio.Future[T | None]:
        """A place at the end of the line, until handed a slot (`pass_turn`: the future's
        result is the slot), woken (`wake_all`) or the loop's clock reaches `due` (None: the
        caller looks again). The caller awaits it, and tells `leave` if that is cancelled.
        (A future, not a coroutine: a coroutine around it cost each waiting request 0.6k
        instructions more, 1% of it: PERFORMANCE.md.)"""
        turn: asyncio.Future[T | None] = self._loop.create_future()
        self._queue.append((turn, due))
        timer = self._timer
        if timer is None or due < self._timer_due:  # (a pool's come in order: one <queue_timeout>)
            if timer is not None:
                timer.cancel()
            self._set_timer(due)
        return turn

    def leave(self, turn: asyncio.Future[T | None]) -> None:
        """The wait for `turn` was cancelled: a slot handed to it meanwhile goes back."""
        if turn.done() and not turn.cancelled():
            handed = turn.result()
            if handed is not None:
                self._give_back(handed)

    def pass_turn(self, slot: T) -> bool:
        """Hand `slot` to the first request still waiting; False if none is."""
        queue = self._queue
        while queue:
            turn, _ = queue.popleft()
            if not turn.done():
                turn.set_result(slot)
                return True
        return False

    def wake_all(self) -> None:
        queue, self._queue = self._queue, deque()
        for turn, _ in queue:
            if not turn.done():
                turn.set_result(None)

    def _expire(self) -> None:
        """Wake the requests whose time is up (they give up), and set the timer for the
        soonest of the others."""
        self._timer = None
        now = self._loop.time()
        soonest: float | None = None
        for turn, due in self._queue:
            if turn.done():
                continue
            if due <= now:
                turn.set_result(None)
            elif soonest is None or due < soonest:
                soonest = due
        if soonest is not None:
            self._set_timer(soonest)

    def _set_timer(self, due: float) -> None:
        self._timer = self._loop.call_at(due, self._expire)
        self._timer_due = due

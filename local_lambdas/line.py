"""The line of requests waiting for a slot of a process (pool.py), first come first served.

A released slot wakes the first request still waiting, not all of them (the rest would only
find it taken, at a cost per request); a change of the process's instances wakes them all,
to look again. Each waits until its own time at most, and one timer, for the soonest,
serves the whole line: asyncio.timeout() would put one on the loop's heap for every request
that waits (PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
from collections import deque


class Line:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # Each waiting request's turn, and when it gives up (the loop's time).
        self._queue: deque[tuple[asyncio.Future[None], float]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0  # when it fires (TimerHandle.when() is a method call)

    def __bool__(self) -> bool:
        return bool(self._queue)

    async def wait(self, due: float) -> None:
        """Wait in line until woken (`pass_turn`, `wake_all`) or until the loop's clock
        reaches `due`; the caller looks again, in both cases."""
        turn = self._loop.create_future()
        self._queue.append((turn, due))
        timer = self._timer
        if timer is None or due < self._timer_due:  # (a pool's come in order: one <queue_timeout>)
            if timer is not None:
                timer.cancel()
            self._set_timer(due)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.pass_turn()  # woken, then cancelled: the slot goes to the next one
            raise

    def pass_turn(self) -> None:
        """Wake the first request still waiting."""
        queue = self._queue
        while queue:
            turn, _ = queue.popleft()
            if not turn.done():
                turn.set_result(None)
                return

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

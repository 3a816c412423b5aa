"""Per-request time limits that cost a dictionary entry each, not a timer each.

`asyncio.timeout()` puts a timer on the event loop's heap for every request and takes it off
again (heap operations that compare handles in Python): 11% of the proxy's instructions per
request in keep-alive mode (PERFORMANCE.md). Requests with the same limit (one Deadlines per
<timeout> value) end in the order they started: one timer, armed for the oldest, serves all.

    task = deadlines.start()       # or start(task), when the caller knows its task
    try:
        answer = await work()
    except asyncio.CancelledError:
        if deadlines.stop(task):
            raise TimeoutError from None   # the limit passed, not an outside cancellation
        raise
    deadlines.stop(task)   # on every other way out too (use try/finally)

A request whose limit passes is cancelled, like with asyncio.timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

_current_task: Final = asyncio.current_task  # a C-level constant, not two lookups per call


class Deadlines:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        # Oldest first: a dict keeps its keys in the order they came (an OrderedDict's
        # entry costs 300 instructions more to add and take out).
        self._running: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        # The loop of the first start(), kept: asyncio.current_task() without it asks
        # get_running_loop(), a getpid() system call each time on Python 3.11.
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, task: asyncio.Task[Any] | None = None) -> asyncio.Task[Any]:
        """Start the limit of `task`, the current one (given by a caller that knows it:
        asyncio.current_task is a Python function on 3.11); returns it, for `stop`."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if task is None:
            task = _current_task(loop)
            assert task is not None, "Deadlines.start() runs inside a task"
        deadline = loop.time() + self.seconds
        self._running[task] = deadline
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire, loop)
        return task

    def stop(self, task: asyncio.Task[Any]) -> bool:
        """End `task`'s limit. True when the limit had passed and `task` was cancelled for it
        alone: the caller turns its CancelledError into its own time-out error."""
        if self._running.pop(task, None) is not None:
            return False
        if task not in self._expired:
            return False
        self._expired.discard(task)
        # Cancelled for another reason as well (3.11+ counts requests): that one wins.
        uncancel = getattr(task, "uncancel", None)
        return uncancel is None or uncancel() == 0

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        while self._running:
            task, deadline = next(iter(self._running.items()))
            if deadline > now:
                self._timer = loop.call_at(deadline, self._expire, loop)
                return
            del self._running[task]
            self._expired.add(task)
            task.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

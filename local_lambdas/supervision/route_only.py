"""A route-only process (<upstream>; README, "Route-only processes"): a server local-lambdas
does not start, reached at its address. Its instance has the same states as a started
child's, the pool leases it alike, and nothing is spawned, restarted or stopped: STARTING
until the address accepts a connection, then READY until the proxy stops.
"""

from __future__ import annotations

import asyncio

from local_lambdas.supervision import readiness
from local_lambdas.supervision.instance import Instance
from local_lambdas.supervision.states import State


class RouteOnly(Instance):
    """The instance of a process with <upstream>."""

    async def _run_once(self) -> int | None:
        upstream = self.process.upstream
        self._not_ready = None
        self._set_state(State.STARTING, f"waiting for {upstream} to accept connections")
        address = self.process.upstream_address
        if not await readiness.wait_until_accepting(address, given_up=lambda: self._stopping):
            return None
        self.link.connect(address, lambda pid: False)
        self.generation += 1
        self.address = str(upstream)
        self._set_state(State.READY, f"ready: requests go to {upstream} (<upstream>)")
        stopped: BaseException | None = None  # (no wait in a finally block: see Instance._run)
        try:
            await asyncio.Event().wait()  # until the stop cancels this task
        except BaseException as cancelled:
            stopped = cancelled
        await self.link.close()
        if stopped is not None:
            raise stopped
        return None

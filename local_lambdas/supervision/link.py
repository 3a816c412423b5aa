"""A child's current process and the way to it while it serves: the transport of its mode
(an envelope mode's, or pass-through's relay), opened when the process became READY and
closed when it goes; and, after a failed exchange, whether that process still serves.

Instance (instance.py) sets the process, opens and closes the way, and stops the process
through it; the request cores (proxy.py, lane/answers.py) and the pool read it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from local_lambdas._compat import processes
from local_lambdas.config import Mode, Process
from local_lambdas.supervision import readiness
from local_lambdas.supervision.spawned import Spawned
from local_lambdas.transports import Transport, for_child
from local_lambdas.transports.closes import Closes

if TYPE_CHECKING:  # loaded with aiohttp's side (lifecycle.py), by the time a child serves
    from local_lambdas.transports.passthrough import PassthroughTransport

MAX_RESPONSE = 256 * 1024**2  # what a child may answer to one request, base64 included
_SETTLE_CHECKS, _SETTLE_STEP = 10, 0.005


class Link:
    """To one instance's current process: `transport` (envelope modes) or `relay`
    (pass-through, which answers the client itself), both None while it does not serve."""

    def __init__(self, process: Process, clock: Callable[[], float]) -> None:
        self.process = process
        self._clock = clock  # the instance's
        self.transport: Transport | None = None
        self.relay: PassthroughTransport | None = None
        self.proc: Spawned | None = None  # the process (None for an <upstream>)
        self.address: str | None = None  # where it listens, as connected to
        # While it serves (Instance): resolved when its process is seen to run on but no
        # longer listen (a dev server reloading itself), by still_serving, with the time it
        # was (the request that found it waits from then on).
        self.unheard: asyncio.Future[float] | None = None
        # Whether the child keeps the connections it answers on, learnt once for all its
        # restarts (transports/closes.py).
        self.closes = Closes(process.id)

    @property
    def open(self) -> bool:
        return self.transport is not None or self.relay is not None

    def connect(self, address: str, owned: Callable[[int], bool]) -> None:
        """The way to the child at `address`, now ready; `owned` tells whether a pid is
        the child's (the pipe modes check the peer of each connection)."""
        self.address = address
        if self.process.communication_mode is Mode.PASSTHROUGH:
            from local_lambdas.transports.passthrough import PassthroughTransport

            self.relay = PassthroughTransport(
                address, max_response=MAX_RESPONSE, closes=self.closes
            )
        else:
            self.transport = for_child(
                self.process.communication_mode, address, max_response=MAX_RESPONSE,
                owned=owned, closes=self.closes,
            )  # fmt: skip

    async def close(self) -> None:
        transport, relay, self.transport, self.relay = self.transport, self.relay, None, None
        if transport is not None:
            await transport.aclose()
        if relay is not None:
            await relay.aclose()

    async def still_serving(self) -> bool:
        """After a failed exchange: whether this process still runs and listens. One that
        runs on without listening resolves `unheard`: its instance is READY no longer.

        A dying process closes its sockets a moment before it can be seen to have exited, so
        this gives it a few milliseconds to be seen going (on the failure path only).
        """
        if self.process.upstream is not None:
            return True  # nothing of ours to see go: the retry goes to the same address
        proc, address = self.proc, self.address
        if proc is None or address is None:
            return False
        for _ in range(_SETTLE_CHECKS):
            if proc.exited.done() or not processes.process_running(proc.pid):
                return False
            await asyncio.sleep(_SETTLE_STEP)
        found = await readiness.listening(self.process, address, proc.owners)
        if found.unknown:
            return True  # the proxy is out of open files: it cannot tell, the child runs
        listening = bool(found)
        unheard = self.unheard
        if not listening and unheard is not None and not unheard.done():
            unheard.set_result(self._clock())
        return listening

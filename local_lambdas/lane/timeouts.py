"""The fast lane's clock on one client connection (connection.Connection): nginx's client
timeouts, as aiohttp's server keeps them too (aio/server.py).

A request that has begun to arrive must come whole in time: its head within
--client-header-timeout, each piece of its body within --client-body-timeout of the last.
A client too slow gets 408 and the connection closes; a streaming body that stops coming
fails its upload, which answers the client. The same clock ends a lingering close.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from local_lambdas.client_limits import timed_out
from local_lambdas.errors import ClientTooSlow

if TYPE_CHECKING:
    from local_lambdas.lane.connection import Connection


class ClientClock:
    """One connection's timer, and when its client last sent a byte."""

    def __init__(self, connection: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self._connection = connection
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._progress = 0.0  # a body's clock restarts with every read
        self.began = 0.0  # when the request timed last began to arrive (time.monotonic)

    @property
    def running(self) -> bool:
        return self._timer is not None

    def start(self, seconds: float) -> None:
        """Time the request arriving, unless it is timed already."""
        if self._timer is None:
            self._progress = self._loop.time()
            self.began = time.monotonic()
            self._timer = self._loop.call_later(seconds, self._expired)

    def heard(self) -> None:
        """The client sent bytes."""
        if self._timer is not None:
            self._progress = self._loop.time()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def after(self, seconds: float, then: Callable[[], None]) -> None:
        """`then` in `seconds`, in place of any request's timing (a lingering close's end)."""
        self.stop()
        self._timer = self._loop.call_later(seconds, then)

    def _rearmed(self, seconds: float) -> bool:
        """Whether a body's last bytes came less than `seconds` ago: then the clock runs on."""
        left = self._progress + seconds - self._loop.time()
        if left > 0:
            self._timer = self._loop.call_later(left, self._expired)
        return left > 0

    def _expired(self) -> None:
        """A client timeout: the head did not arrive whole in time, or the body stopped
        coming. The client gets 408 and the connection closes (aiohttp's server does the
        same, aio/server.py)."""
        self._timer = None
        connection = self._connection
        lane = connection.lane
        upload = connection.upload
        if upload is not None and not connection.closing:  # a streaming body stopped coming
            if not self._rearmed(lane.body_timeout):
                # (it stays: the connection is out of step, and closes after the 408)
                upload.fail(ClientTooSlow(lane.body_timeout))
            return
        transport = connection.transport
        if connection.closing or connection.busy or transport is None:
            return
        head = connection.awaiting_head
        seconds = lane.head_timeout if head else lane.body_timeout
        if not head and self._rearmed(seconds):  # the body's clock counts from its last bytes
            return
        # A body's request is routed: answered and counted as the route's (as aiohttp's side
        # does); a head's is not yet.
        if head or not connection.give_up(ClientTooSlow(seconds)):
            what = "the request head did not arrive" if head else "no byte of the request body came"
            message = f"{what} within {seconds:g}s"
            transport.write(timed_out(message, lane.proxy.ids.new_id, connection.peer))
        connection.closing = True
        transport.close()

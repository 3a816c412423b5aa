"""The fast lane's writing to one client: what a connection (connection.Connection,
built on this class) does while the client takes its answers at its own pace.

asyncio says when the client stops taking bytes (pause_writing) and starts again
(resume_writing); meanwhile a relayed answer stops reading its child (when_writable), a large
answer over TLS waits between its pieces (write_paced, client_limits.PIECE), and a client
that takes nothing for --send-timeout loses its connection (client_limits.SendTimeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from local_lambdas.client_limits import PIECE, SendTimeout

if TYPE_CHECKING:
    from local_lambdas.lane.fastlane import FastLane


class ClientWriter(asyncio.Protocol):
    """A client connection's writing side (see the module's docstring)."""

    def __init__(self, lane: FastLane) -> None:
        self.lane = lane
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.closing = False
        # Kept: asyncio.get_running_loop() makes a getpid() system call each time on 3.11.
        self._loop = asyncio.get_running_loop()
        self._writing_paused = False
        self._when_writable: list[Callable[[], None]] = []  # a relayed answer, waiting
        self._send_timeout: SendTimeout | None = None  # made when writing first pauses
        self._writable: asyncio.Future[None] | None = None  # write_paced, waiting to go on

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self.transport is not None:
            if self._send_timeout is None:
                self._send_timeout = SendTimeout(self.lane.send_timeout, self._loop)
            self._send_timeout.arm(self.transport, self.peer)

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._stop_send_timeout()
        self._wake_writer()
        waiting, self._when_writable = self._when_writable, []
        for then in waiting:
            then()
        self.writing_resumed()

    def writing_resumed(self) -> None:
        """The client takes bytes again, and those waiting for that are told: the connection
        may go on to its next request."""

    # -- where a relayed answer goes (relay_request.Client)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def write_paced(self, data: memoryview) -> None:
        """`data`, PIECE bytes at a time, each once the client has taken enough of the last
        (over TLS, where one large write would never pause writing: client_limits.PIECE); done
        when all is written or the connection is gone."""
        while data:
            if self._writing_paused:
                self._writable = self._loop.create_future()
                await self._writable
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            transport.write(data[:PIECE])
            data = data[PIECE:]

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    @property
    def writable(self) -> bool:
        return not self._writing_paused

    def when_writable(self, then: Callable[[], None]) -> None:
        self._when_writable.append(then)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _stop_send_timeout(self) -> None:
        if self._send_timeout is not None:
            self._send_timeout.disarm()

    def _wake_writer(self) -> None:
        """A paced write waiting for the client goes on (or ends: the connection is gone)."""
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

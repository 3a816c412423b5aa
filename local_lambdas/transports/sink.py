"""The two ends of an exchange with a child besides the child (transports/exchanging.py):
where its answer goes as it comes (`Sink`: the client's connection in the fast lane) and a
request body still arriving from the client (`Body`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from local_lambdas.transports.exchanging import Exchanging


class Sink(Protocol):
    """Where an answer goes (the client's connection in the fast lane)."""

    def head(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None: ...

    def body(self, data: bytes) -> None: ...

    def end(self) -> None: ...

    def flush(self) -> None:
        """What head, body and end gave is written now: each read of the child's connection
        ends with it, so that an answer read whole leaves in one write."""

    def broken(self, why: str) -> None:
        """The answer broke off after its head: the client must see an error, not an end."""

    @property
    def writable(self) -> bool:
        """False while the client cannot take more (then the child is not read)."""

    def when_writable(self, then: Callable[[], None]) -> None:
        """Call `then` once the client can take more."""

    def upgraded(
        self, reason: str, headers: list[tuple[str, str]], child: asyncio.Transport, rest: bytes
    ) -> None:
        """The child switched protocols (101) for an `upgrade` request: `child` is its
        connection, now the sink's, and `rest` what it sent after its head."""


class Body(Protocol):
    """A request body still arriving from the client (the fast lane's upload), written to
    the child as it comes: `start` gives it the exchange to write to (`write_body`, and
    `body_failed` when the client fails it); `pause` and `resume` follow the child's
    connection; `complete` once every byte went on."""

    def start(self, exchange: Exchanging) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    @property
    def complete(self) -> bool: ...

"""One-shot pipe transport over a Unix domain socket (docs/protocol.md, "Framing: one-shot pipe").

Per request: connect, write one JSON object, shut the writing side, read until the child
closes. The shutdown lets children that read to EOF work; children that stop reading once
the JSON parses work too. An answer that is whole JSON ended by a newline is taken without
waiting for the close: a child written for the keep-alive framing answers with a line and
waits for the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import cast

from local_lambdas import _compat
from local_lambdas.envelope import Request, Response
from local_lambdas.envelope_answer import CLOSED_FIRST, Answers, gather, note_unended, whole_json
from local_lambdas.errors import UNANSWERED, BadResponse, ChildUnreachable
from local_lambdas.transports.pipe_connect import connect_again

_Connect = Callable[
    [Callable[[], "_OneShot"], str], Awaitable[tuple[asyncio.Transport, "_OneShot"]]
]


class PipeTransport:
    def __init__(
        self, address: str, *, max_response: int, name: str,
        owned: Callable[[int], bool] | None = None,
    ) -> None:  # fmt: skip
        self._path = address
        self._name = name  # the process, as the log names it
        self._max_response = max_response
        self._owned = owned
        self._answers = Answers()
        # Kept from the first request: asyncio.get_running_loop() is a getpid() on 3.11.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connect: _Connect | None = None

    async def forward(self, request: Request) -> Response:
        limit = self._max_response
        loop = self._loop
        connect = self._connect
        if loop is None or connect is None:
            loop = self._loop = asyncio.get_running_loop()
            connect = self._connect = _compat.pipe_connector(loop, self._owned)
        protocol = lambda: _OneShot(limit, loop)  # noqa: E731 (one closure, for both calls)
        failed: OSError | None = None
        try:
            _, exchange = await connect(protocol, self._path)
        except OSError as exc:
            failed = exc  # (waited on below: compiled code must not wait in an except block)
        if failed is not None:
            _, exchange = await connect_again(
                failed, self._path, protocol, self._owned, self._name, loop
            )
        try:
            raw = await exchange.send(request.encode())
        except asyncio.CancelledError as cancelled:
            note_unended(cancelled, exchange.held, lines=False)
            raise
        finally:
            exchange.close()
        if not raw:
            raise ChildUnreachable(UNANSWERED)
        return self._answers.decode(raw)

    async def aclose(self) -> None:
        """Nothing is kept open between requests in one-shot mode."""


class _OneShot(asyncio.Protocol):
    """One connection: the request out, then everything the child sends until it closes.

    A Protocol rather than a stream pair: the answer's chunks are collected as they arrive,
    with no read loop waking for each (PERFORMANCE.md).
    """

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self._limit = limit
        self._buffer: bytes | bytearray = b""  # the answer so far (see envelope_answer.gather)
        self._answer: asyncio.Future[bytes | bytearray] = loop.create_future()
        self._transport: asyncio.Transport | None = None

    def send(self, message: bytes) -> asyncio.Future[bytes | bytearray]:
        """Write the request and end it; the future is the whole answer (maybe empty)."""
        assert self._transport is not None
        self._transport.write(message)
        # POSIX: shut the writing side, for children that read to end-of-file. Windows pipes
        # cannot half-close: there the child reads until the JSON parses.
        if self._transport.can_write_eof():
            self._transport.write_eof()
        return self._answer

    @property
    def held(self) -> bytes | bytearray:
        """The answer so far, not yet ended."""
        return self._buffer

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self._buffer = gather(self._buffer, data) if self._buffer else data
        if data.endswith(b"\n") and whole_json(self._buffer):
            # A whole answer and a newline: a child that keeps the connection open for the
            # next line (written for pipe-keepalive) would otherwise hold us to <timeout>.
            self._finish()
            return
        if len(self._buffer) > self._limit and not self._answer.done():
            sample = bytes(self._buffer[:1024])
            self._buffer = b""
            self._answer.set_exception(
                BadResponse(f"the answer is over {self._limit} bytes", sample)
            )
            self.close()

    def eof_received(self) -> bool:
        self._finish()
        return False  # close our end too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._answer.done():
            return
        # Windows: a child that disconnects its pipe instance ends its answer that way. And a
        # child may answer (say, an error) without reading all of the request, and close
        # (envelope_answer.CLOSED_FIRST).
        size = len(self._buffer)
        ended = exc is None or (
            size > 0
            and isinstance(exc, OSError)
            and (isinstance(exc, CLOSED_FIRST) or _compat.is_end_of_pipe(exc))
        )
        if ended:
            self._finish()
            return
        strerror = getattr(exc, "strerror", None) or exc
        what = "reset" if size == 0 else f"broken after {size} bytes of answer"
        self._answer.set_exception(ChildUnreachable(f"the connection was {what}: {strerror}"))

    def _finish(self) -> None:
        if not self._answer.done():
            self._answer.set_result(self._buffer)
            self._buffer = b""

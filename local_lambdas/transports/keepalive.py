"""Keep-alive pipe transport (docs/protocol.md, "Framing: keep-alive pipe"): one line of
compact JSON per message, many request/response pairs in order on each persistent
Unix-socket connection.

Connections are pooled per child instance; the pool that leases the instance bounds how many
requests are in flight, so this keeps at most that many connections. A connection carries one
request at a time. One that fails, breaks or is cancelled mid-exchange (a timeout) is closed,
never reused; an invalid but whole answer leaves the framing intact, so its connection stays.
An answer ended by the child closing the connection rather than by a newline is taken when it
is whole JSON, as a child reads a request (a one-shot child put in this mode still works,
one connection per request, and the log says so once). A kept connection the child closed
as a request went out gave nothing back: the request goes again on another, if idempotent
(Stale), or whatever it is if the child had closed it before (NotConnected); a child that
closes every connection after its answer line gets a connection per request too (closes.py).

Each connection is an asyncio Protocol rather than a stream pair: the answer's line is cut out
of the chunks as they arrive (one copy, newline searched in new bytes only) and handed to the
waiting request directly. This is the hot path of the fastest mode (PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from local_lambdas import _compat
from local_lambdas.envelope import SHOWN_BYTES, Request, Response
from local_lambdas.envelope_answer import (
    CLOSED_FIRST,
    Answers,
    cut_line,
    gather,
    note_unended,
    whole_json,
)
from local_lambdas.errors import (
    UNANSWERED,
    BadResponse,
    ChildUnreachable,
    NotConnected,
    Stale,
    add_note,
)
from local_lambdas.lane.http1 import RETRYABLE
from local_lambdas.transports.closes import Closes
from local_lambdas.transports.pipe_connect import connect_again

log = logging.getLogger("local_lambdas.keepalive")

# A 504's note when a new connection's first request timed out while the child answered on
# others: a child that serves one connection at a time, until it closes.
_ONE_AT_A_TIME = (
    "the child answered on other connections meanwhile but never on this new one: it seems "
    "to serve one connection at a time; a pipe-keepalive child must serve each connection "
    "the proxy opens (up to <concurrency>), or set <concurrency>1</concurrency>"
)


# What the log says of a child that closes each connection after one answer (closes.py).
_ONE_EACH = (
    "the child closes each connection after its answer: every request now opens a new one "
    "(a pipe-keepalive child keeps its connections open; a one-shot child's mode is "
    "<communication_mode>pipe</communication_mode>)"
)

# A Stale's cause: a child should keep its connections open in this mode.
_KEPT = (
    "on a kept connection, which the child may have closed as the request went out: a "
    "request that is not idempotent is not sent twice; a pipe-keepalive child keeps its "
    "connections open"
)


class KeepAlivePipeTransport:
    def __init__(
        self, address: str, *, max_response: int, owned: Callable[[int], bool] | None = None,
        closes: Closes | None = None,
    ) -> None:  # fmt: skip
        self._path = address
        self._max_response = max_response
        self._owned = owned
        self._idle: list[_Connection] = []
        self._closed = False
        self._answers = Answers()
        self._told_unasked = False  # that it sent what no request asked for
        self._answered = 0  # answers taken, on any connection (a 504 on a new one reads it)
        self._closes = closes or Closes(address)

    async def forward(self, request: Request) -> Response:
        message = request.encode(line=True)
        closes = self._closes
        while True:
            connection = self._idle_connection() or await self._connect()
            reusable = again = False
            answered = self._answered
            try:
                line = await connection.exchange(message)
                connection.answers += 1
                if connection.answers == 2:
                    closes.kept_on = True
                self._answered += 1
                if connection.ended_by_child and not closes.one_each:
                    closes.one_each = True  # (as Closes.dropped would find, said otherwise)
                    log.warning(
                        "%s: the child ends each answer by closing the connection, not with "
                        "a newline: every request opens a new one (a one-shot child? its "
                        "mode is <communication_mode>pipe</communication_mode>)",
                        closes.name,
                    )
                reusable = not closes.one_each
            except NotConnected:
                again = True  # a kept connection the child had closed: the request never went
                closes.dropped(connection.answers, _ONE_EACH)
            except Stale:
                # One it closed as the request went out: sent again on another if it may
                # be, as Upstream.send does (a retry at the proxy's level could meet
                # another such connection).
                closes.dropped(connection.answers, _ONE_EACH)
                if request.method not in RETRYABLE:
                    raise
                again = True
            except asyncio.CancelledError as cancelled:
                note_unended(cancelled, connection.held, lines=True)
                if not connection.answers and self._answered > answered:
                    add_note(cancelled, _ONE_AT_A_TIME)
                raise
            finally:
                if reusable and not self._closed:
                    self._idle.append(connection)
                else:
                    connection.close()
            if not again:
                break
        try:
            return self._answers.decode(line)
        except BadResponse as exc:
            raise cut_line(exc) from None

    def _idle_connection(self) -> _Connection | None:
        while self._idle and not self._closed:
            connection = self._idle.pop()
            # The child may have closed an idle connection: never send a request down it.
            if connection.usable:
                return connection
            unasked = connection.unasked
            if not unasked:
                self._closes.dropped(connection.answers, _ONE_EACH)
            elif not self._told_unasked:
                self._told_unasked = True
                log.warning(
                    "%s: the child sent %r, which no request asked for (two answer lines to "
                    "one request?); such a connection is closed, not reused: answer each "
                    "request line with exactly one line",
                    self._closes.name, unasked,
                )  # fmt: skip
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        if self._closed:
            raise ChildUnreachable("the child exited before the request was sent")
        limit = self._max_response
        protocol = lambda: _Connection(limit)  # noqa: E731 (one closure, for both calls)
        failed: OSError | None = None
        try:
            _, connection = await _compat.connect_pipe(self._path, protocol, self._owned)
        except OSError as exc:
            failed = exc  # (waited on below: compiled code must not wait in an except block)
        if failed is not None:
            _, connection = await connect_again(
                failed, self._path, protocol, self._owned, self._closes.name
            )
        return connection

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class _Connection(asyncio.Protocol):
    """One persistent connection: a line out, a line back."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._transport: asyncio.Transport | None = None
        self._buffer: bytes | bytearray = b""  # the answer so far, before its newline
        self._answer: asyncio.Future[bytes | bytearray] | None = None
        self._lost = False
        self.ended_by_child = False  # an answer ended by the child closing the connection
        self.answers = 0  # answers taken on it
        self._unasked = b""  # the start of a line that came with no request waiting
        self._loop = asyncio.get_running_loop()  # once: each call is a getpid() on 3.11

    @property
    def usable(self) -> bool:
        """Open and in step: nothing arrived that no request asked for."""
        return not self._lost and not self._buffer and self._transport is not None

    @property
    def held(self) -> bytes | bytearray:
        """The answer so far, before its newline."""
        return self._buffer

    @property
    def unasked(self) -> bytes:
        """The start of what arrived that no request asked for, if anything did."""
        return self._unasked or bytes(self._buffer[:SHOWN_BYTES])

    def exchange(self, message: bytes) -> asyncio.Future[bytes | bytearray]:
        """Send a request's line; the future is the answer's (a future, not a coroutine:
        one frame fewer on every resume of the request)."""
        assert self._transport is not None
        answer = self._answer = self._loop.create_future()
        self._transport.write(message)
        return answer

    def close(self) -> None:
        self._lost = True  # (connection_lost comes later: not usable from now on)
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; not an asyncio.Transport instance under every loop (uvloop's).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        # (One partition, not a find and two slices: a third of the cost. Without a newline
        # it gives `data` itself, not a copy.)
        head, newline, rest = data.partition(b"\n")
        if not newline:
            self._buffer = gather(self._buffer, data)
            if len(self._buffer) > self._limit:
                sample = bytes(self._buffer[:SHOWN_BYTES])
                self._buffer = b""
                self._fail(BadResponse(f"the answer is over {self._limit} bytes", sample))
            return
        line = gather(self._buffer, head) if self._buffer else head
        if len(line) <= 2 and not line.strip():
            # A blank line (an answer printed with a newline of its own, print(json + "\n")):
            # no answer, and nothing out of step.
            self._buffer = b""
            if rest:
                self.data_received(rest)
            return
        if rest and len(rest) <= 2 and not rest.strip():
            rest = b""  # (a blank line's start)
        self._buffer = rest
        answer, self._answer = self._answer, None
        if answer is None or answer.done():
            # A line nobody asked for (or for a request that gave up): out of step for good.
            self._unasked = bytes(line[:SHOWN_BYTES])
            self.close()
            return
        answer.set_result(line)

    def eof_received(self) -> bool:
        return False  # the child closed its end: close ours too (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        closed = exc is None or (
            isinstance(exc, OSError)
            and (
                _compat.is_end_of_pipe(exc)
                or (isinstance(exc, CLOSED_FIRST) and len(self._buffer) > 0)
            )
        )  # (an answer, then a close with the request unread: envelope_answer.CLOSED_FIRST)
        if self.answers and not self._buffer:
            # A kept connection that gave nothing back: the child closed it after its last
            # answer, as this request went out (Stale); before it, if the write failed
            # (EPIPE; on Windows a broken pipe is also how a read sees the child's close).
            if isinstance(exc, BrokenPipeError) and not _compat.is_end_of_pipe(exc):
                self._fail(NotConnected("the child had closed this kept connection"))
            else:
                self._fail(Stale(f"{UNANSWERED} ({_KEPT})"))
        elif not closed:
            reason = getattr(exc, "strerror", None) or exc
            self._fail(ChildUnreachable(f"the connection broke: {reason}"))
        elif (
            self._buffer
            and self._answer is not None
            and not self._answer.done()
            and whole_json(self._buffer)
        ):
            answer, self._answer = self._answer, None
            self.ended_by_child = True
            answer.set_result(self._buffer)
            self._buffer = b""
        elif self._buffer:
            got = f"after {len(self._buffer)} bytes of answer"
            self._fail(ChildUnreachable(f"the child closed the connection {got}"))
        else:
            self._fail(ChildUnreachable(UNANSWERED))

    def _fail(self, error: Exception) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)
        self.close()

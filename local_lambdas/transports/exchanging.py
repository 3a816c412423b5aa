"""One exchange's course on a connection to a child (transports/exchange.py's base, which
reads the answer): the request out and a streaming body fed on as the child takes it, the
time limit of the child's silences, and the exchange's end: finished (the connection kept
if the child would keep it), failed (raised to the caller before the answer's head went to
the sink, the client's connection broken after), handed over to the sink on a 101 to an
`upgrade` request, or, for an event stream, ended as the child would end it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from local_lambdas._compat import unsent
from local_lambdas.errors import ChildTimeout, ChildUnreachable, NotConnected
from local_lambdas.transports.child_connection import ChildConnection

if TYPE_CHECKING:
    import asyncio

    from local_lambdas.transports.sink import Body, Sink
    from local_lambdas.transports.upstream import Upstream


class Exchanging(ChildConnection):
    """A connection to a child carrying one exchange at a time (`run`); what reads the
    answer is the subclass's (exchange.Bare), which calls `_finish`, `_fail` and
    `_hand_over`."""

    def __init__(self, upstream: Upstream) -> None:
        super().__init__()
        self._upstream = upstream
        self._sink: Sink | None = None
        self._headers: list[tuple[str, str]] = []  # the answer's, as the sink got them
        self._head_only = False
        self._upgrade = False  # the request asks to switch protocols
        self._body: Body | None = None  # a request body still streaming to the child
        self._got = 0  # bytes of the answer received
        self.first = b""  # the answer's first bytes (Upstream.send)
        self._headed = False  # its head went to the sink
        self._done: asyncio.Future[None] | None = None
        self._stalled = False  # our writes of a streaming body wait for the child
        self._unsent = 0  # how many bytes waited for it at the last look (check)
        self.timeout: float | None = None
        self._reason = ""  # the answer's reason phrase
        self.reusable = False

    async def run(
        self, request: bytes, sink: Sink, timeout: float | None, head_only: bool, upgrade: bool,
        body: Body | None,
    ) -> None:  # fmt: skip
        if not self.usable:
            # Closed as it was made (the child killed with it in its listen queue, say):
            # the request never went out, so any request may go again elsewhere.
            raise NotConnected("the child closed the connection before the request went out")
        assert self._transport is not None
        self._sink, self._head_only, self.timeout = sink, head_only, timeout
        self._upgrade, self._body, self._stalled, self._unsent = upgrade, body, False, 0
        self._headers, self._got, self._headed, self.first = [], 0, False, b""
        self.reusable = False
        done = self._done = self.loop.create_future()
        self._transport.write(request)
        if body is not None:
            body.start(self)
        self._arm()
        try:
            await done
        finally:
            self._disarm()
            self._done = None
            self._sink = None
            self._body = None

    def write_body(self, data: bytes) -> bool:
        """The next bytes of a streaming body (Body); False, and dropped, once the connection
        is closing (the exchange has failed and says why; uvloop raises on a write to it)."""
        transport = self._transport
        if self._done is not None and transport is not None and not transport.is_closing():
            transport.write(data)
            return True
        return False

    def body_failed(self, error: Exception) -> None:
        """The client failed its body (it stopped sending): the exchange ends with `error`,
        or, once the answer has begun, the client's connection breaks."""
        self._fail(error, str(error))

    # -- the answer's time limit: <timeout> for each wait for the child's next bytes, the
    # first from when the request goes out (the connection made, or found `fresh`), and for
    # each wait for it to take more of a streaming body (nginx's proxy_send_timeout). The
    # upstream's sweeper looks (check); bytes arriving just note the time.

    def _arm(self) -> None:
        if self.timeout is not None:
            self._upstream.watch(self)

    def _disarm(self) -> None:
        self._upstream.unwatch(self)

    def check(self, now: float) -> None:
        """From the sweeper: end the exchange if the child has been silent too long."""
        assert self.timeout is not None
        body = self._body
        if self._paused or (body is not None and self._taking(body)):
            # The client is slow to read, or the body is still on its way to the child, who
            # takes it: the child's clock waits.
            self._progress = now
            return
        if now - self._progress < self.timeout:
            return
        if self._headed and (body is None or body.complete) and self._event_stream():
            # Silence is an event stream's nature (an event when something happens): it
            # lasts until the client leaves, the child ends it, or a stop or replacement.
            self._progress = now
            return
        self._disarm()
        if self._headed:
            self._fail(None, f"the child sent nothing for {self.timeout:g}s (its <timeout>)")
        elif body is not None and (not body.complete or self._unsent):
            self._fail(ChildTimeout(
                f"the child took no more of the request body for {self.timeout:g}s (its "
                "<timeout>)"
            ), "")  # fmt: skip
        else:
            self._fail(ChildTimeout(
                f"the child did not begin its answer within {self.timeout:g}s (its <timeout>)"
            ), "")  # fmt: skip

    def _taking(self, body: Body) -> bool:
        """Whether the child's clock waits for a streaming body: the client still sends it
        and our writes do not wait for the child, or fewer of its bytes wait for the child
        than at the last look, in our buffer and the kernel's (a slow reader drains the
        kernel's first, long before our writes resume, and goes on after the last is
        written)."""
        if not body.complete and not self._stalled:
            return True
        unsent, before = self._waiting_bytes(), self._unsent
        self._unsent = unsent
        return unsent < before

    def _waiting_bytes(self) -> int:
        transport = self._transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        return buffered + unsent(self._socket)

    def _event_stream(self) -> bool:
        """Whether the answer whose head went out is a Server-Sent Events stream."""
        return any(
            name.lower() == "content-type" and value.lower().startswith("text/event-stream")
            for name, value in self._headers
        )

    def end_event_stream(self) -> None:
        """End the answer here, as if the child had ended it, if it is a Server-Sent Events
        stream (its head relayed): the child is being replaced or the proxy stops, and the
        client's EventSource reconnects on its own."""
        done = self._done
        if self._headed and done is not None and not done.done() and self._event_stream():
            self._finish(reusable=False)

    def _fail(self, before: Exception | None, after: str) -> None:
        """End the exchange: `before` the head went out (raised to the caller), else the
        sink breaks the client's connection with `after`."""
        self.reusable = False
        self.close()
        done = self._done
        if done is None or done.done():
            return
        if self._headed:
            assert self._sink is not None
            self._sink.broken(after)
            done.set_result(None)
        else:
            done.set_exception(before or ChildUnreachable(after))

    def _finish(self, *, reusable: bool = False) -> None:
        done = self._done
        if done is None or done.done():
            return
        assert self._sink is not None
        self._sink.end()
        self.reusable = reusable and not self._lost
        if not self.reusable:
            self.close()
        done.set_result(None)

    def _hand_over(self, rest: bytes) -> None:
        """The 101 to an upgrade request: the connection goes to the sink, the exchange ends."""
        done, sink, transport = self._done, self._sink, self._transport
        if done is None or done.done() or sink is None or transport is None:
            return
        self._disarm()
        self._forget_socket()
        self._transport, self._lost, self.reusable = None, True, False  # no longer ours
        sink.upgraded(self._reason, self._headers, transport, rest)
        done.set_result(None)

    def pause_writing(self) -> None:
        self._stalled = True
        self._unsent = self._waiting_bytes()
        if self._body is not None:
            self._body.pause()  # the child cannot take more of the body: the client waits

    def resume_writing(self) -> None:
        self._stalled = False
        self._progress = self.loop.time()
        if self._body is not None:
            self._body.resume()

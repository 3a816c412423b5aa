"""A client connection in the fast lane: the asyncio Protocol that drives it. Which bytes
make a request and whether the lane takes it is lane_requests.py's (pure, with http1.py);
what is sent for it, lane_answers.py's; this module holds the timers, the connection's task,
writing, and hand-overs to aiohttp's server or a tunnel.

A connection carries one request at a time, answered by the connection's one task (a task
per request cost 2% of the lane's instructions): pipelined bytes wait, unparsed, until the
answer before them is written, so answers keep their order and a hand-over starts at a
request's first byte. A head that does not arrive whole within --client-header-timeout, or
a body that stops for --client-body-timeout, gets 408; a client that takes nothing of its
answer for --send-timeout loses its connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, cast

from local_lambdas import _compat
from local_lambdas.answer_heads import AnswerHeads
from local_lambdas.client_limits import PIECE, SendTimeout, timed_out
from local_lambdas.errors import ClientTooSlow
from local_lambdas.forwarding import own_address
from local_lambdas.lane_answers import answer
from local_lambdas.lane_requests import (
    AWAIT_BODY,
    AWAIT_HEAD,
    CONTINUE,
    ELSEWHERE,
    Message,
    Requests,
)
from local_lambdas.relay import RelayedHeads
from local_lambdas.relay_request import Forwarding, Upload

if TYPE_CHECKING:
    from local_lambdas.fastlane import FastLane

log = logging.getLogger("local_lambdas.fastlane")

_PAUSE_AT: Final = 1024**2  # pipelined bytes held while an answer is pending, before reading stops
# How long a client still sending a body its answer went out without is read, and what it
# sends dropped, before its connection closes (nginx's lingering close; _linger).
_LINGER: Final = 5.0


class Connection(asyncio.Protocol):
    """One client connection while the lane has it (see the module's docstring)."""

    def __init__(self, lane: FastLane) -> None:
        # (lane, transport, peer, scheme, closing, upload, relaying, forwarding, answers, relayed:
        # lane_answers.py's too)
        self.lane = lane
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        # Received, not yet handled, cut into requests.
        self._requests = Requests(lane.proxy, self._own_address)
        self.busy = False  # a request is being answered
        # Serves the connection's requests in turn, from its first: one task per connection,
        # not per request (PERFORMANCE.md). Between requests it waits on _waiter.
        self.task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[Message | None] | None = None
        # Kept: asyncio.get_running_loop() makes a getpid() system call each time on 3.11.
        self._loop = asyncio.get_running_loop()
        self.idle_since = self._loop.time()  # when the last answer was sent
        self._reading_paused = False
        self._writing_paused = False
        self._when_writable: list[Callable[[], None]] = []  # a relayed answer, waiting
        self.relaying = False  # a pass-through answer is being relayed
        self.scheme = "http"
        self.closing = False
        self._ended = False  # the client half-closed: answer what came whole, then close
        self._lingering = False  # answered, closing: what the client still sends is dropped
        self.upload: Upload | None = None  # a pass-through body streaming to the child
        self.forwarding = Forwarding()  # the client's headers as a pass-through child gets them
        self.answers = AnswerHeads()  # writes the heads of envelope modes' answers
        self.relayed = RelayedHeads()  # and of pass-through's
        self._held = False  # not read: an upload waits for the child (hold_reading)
        # A request that has begun to arrive but is not whole: the client timeouts' timer,
        # and when its last bytes came (the body's clock restarts with every read).
        self._timer: asyncio.TimerHandle | None = None
        self._progress = 0.0
        self._send_timeout: SendTimeout | None = None  # made when writing first pauses
        self._writable: asyncio.Future[None] | None = None  # write_paced, waiting to go on

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.lane.track(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as aiohttp does
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, (list, tuple)) else peer
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        if self.lane.stopping:
            self._hand_over()  # aiohttp answers 503 during a stop, then closes

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self._timer is not None:
            self._progress = self._loop.time()
        self._requests.feed(data)
        if self.upload is not None:
            self._take_upload()
        if not self.busy:
            self._advance()
        elif len(self._requests.buffer) > _PAUSE_AT and not self._reading_paused:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        """The client half-closed (`printf ... | nc -N`, ncat): nothing more will come. A
        request that came whole is still answered, with any whole ones pipelined after it,
        then the connection closes, as Node.js, Go and nginx's own answers do; with none
        (a head or a body cut short, or an idle connection), it closes now."""
        if self._lingering:
            return False  # the client is done: the connection closes
        if self.busy and self.upload is None and not self.closing and self.scheme == "http":
            self._ended = True  # (TLS has no half-close: asyncio warns of keeping it open)
            return True  # the transport stays open for the answer
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._stop_timer()
        self._stop_send_timeout()
        self.lane.forget(self)
        self._stop_waiting()
        if self.relaying and self.task is not None:
            self.task.cancel()  # nobody is left to relay to: the child's answer is dropped

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
        if not self.busy:
            self._advance()

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

    def adopt(self) -> tuple[asyncio.Transport, bytes, bool] | None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return None
        transport, rest = self._leave()
        return transport, rest, self._ended

    def _leave(self) -> tuple[asyncio.Transport, bytes]:
        """The connection leaves the lane (for aiohttp's server, or a tunnel): its transport,
        and the bytes the client sent after the last request the lane took."""
        transport = self.transport
        assert transport is not None
        self.closing = True
        self._stop_timer()
        self._stop_send_timeout()
        self._stop_waiting()
        self.lane.forget(self)
        self.transport = None
        return transport, self._requests.rest()

    # -- the lane ---------------------------------------------------------------------------

    def close_when_idle(self) -> None:
        self.closing = True
        if not self.busy and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _linger(self) -> None:
        """Close a connection whose client is still sending the body its answer went out
        without (a child that answered, or failed, before reading all of an upload), as
        nginx's lingering close does: the answer's end is marked by a half-close, and what
        comes after it is read and dropped until the client closes, for _LINGER seconds at
        most. Closed at once, the connection would reset the client's, whose system may
        then drop the answer before the client reads it."""
        transport = self.transport
        self.closing = self._lingering = True
        self.upload = None
        self._stop_timer()
        if transport is None or transport.is_closing():
            return
        if transport.can_write_eof():  # (TLS has none: the client's close, or the time)
            transport.write_eof()
        self._timer = self._loop.call_later(_LINGER, self.close)
        self._held = self._reading_paused = False
        transport.resume_reading()

    def _advance(self) -> None:
        """Hand the next request in the buffer, if the whole of it has arrived, to the
        connection's task (started by the first)."""
        if self.busy:
            return
        message = self._next_request()
        if message is None:
            return
        self.busy = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.set_result(message)
        else:
            self.task = self._loop.create_task(self._serve(message))

    def _stop_waiting(self) -> None:
        """The connection is over for the lane: its task, if waiting, ends."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._wake_writer()

    def _wake_writer(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _next_request(self) -> Message | None:
        """The next whole request received, if it is the lane's to answer now; a request
        that is not the lane's hands the connection to aiohttp."""
        if self.closing or self._writing_paused:
            return None
        requests = self._requests
        message = requests.next()
        while message is None:
            waiting = requests.waiting
            if waiting == CONTINUE:
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                message = requests.next()
                continue
            if waiting == AWAIT_HEAD:
                self._start_timer(self.lane.head_timeout)
            elif waiting == AWAIT_BODY:
                if self._timer is None:  # the head is here, its body not: the client may be
                    _compat.acknowledge_now(self.transport)  # waiting for our ACK to send it
                self._start_timer(self.lane.body_timeout)
            elif waiting == ELSEWHERE:
                self._hand_over()
            return None
        if self._timer is not None:
            self._stop_timer()
        if message.streams:  # the head alone: the body goes on as it comes
            self.upload = Upload(message.body_length, self)
            self._take_upload()
        return message

    def _take_upload(self) -> None:
        """The streaming body's bytes received go on; what follows them waits."""
        upload = self.upload
        if upload is None:
            return
        piece = self._requests.take(upload.left)
        if piece:
            upload.feed(piece)
        if upload.complete:
            self.upload = None
            self._stop_timer()
        else:
            self._start_timer(self.lane.body_timeout)

    def _own_address(self) -> str:
        return own_address(self.transport)

    def hold_reading(self, held: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or held == self._held:
            return
        self._held = held
        if held:
            transport.pause_reading()
        elif not self._reading_paused:
            transport.resume_reading()

    def _start_timer(self, seconds: float) -> None:
        if self._timer is None:
            self._progress = self._loop.time()
            self._timer = self._loop.call_later(seconds, self._timed_out)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _stop_send_timeout(self) -> None:
        if self._send_timeout is not None:
            self._send_timeout.disarm()

    def _timed_out(self) -> None:
        """A client timeout: the head did not arrive whole in time, or the body stopped
        coming. The client gets 408 and the connection closes (aiohttp's server does the
        same, aioserver.py)."""
        self._timer = None
        upload = self.upload
        if upload is not None and not self.closing:  # a streaming body stopped coming
            left = self._progress + self.lane.body_timeout - self._loop.time()
            if left > 0:
                self._timer = self._loop.call_later(left, self._timed_out)
            else:  # (it stays: the connection is out of step, and closes after the 408)
                upload.fail(ClientTooSlow(self.lane.body_timeout))
            return
        if self.closing or self.busy or self.transport is None:
            return
        head = self._requests.waiting == AWAIT_HEAD
        seconds = self.lane.head_timeout if head else self.lane.body_timeout
        if not head:  # the body's clock counts from its last bytes
            left = self._progress + seconds - self._loop.time()
            if left > 0:
                self._timer = self._loop.call_later(left, self._timed_out)
                return
        what = "the request head did not arrive" if head else "no byte of the request body came"
        message = f"{what} within {seconds:g}s"
        self.transport.write(timed_out(message, self.lane.proxy.new_id, self.peer))
        self.closing = True
        self.transport.close()

    async def _serve(self, message: Message) -> None:
        """The connection's task: answer its requests one after another, until it closes or
        is handed over."""
        while True:
            try:
                keep_alive = await answer(self, message)
            except Exception:  # a bug of ours: the connection is closed, not left hanging
                log.exception("%s %s: failed inside local-lambdas", message.method, message.target)
                self.abort()
                return
            except BaseException:
                self.abort()
                raise
            self.busy = False
            self.idle_since = self._loop.time()
            if not keep_alive:
                if self.upload is not None:
                    self._linger()
                else:
                    self.close_when_idle()
                return
            if self._reading_paused and self.transport is not None:
                self._reading_paused = False
                self.transport.resume_reading()
            found = self._next_request()
            if found is None:
                if self._ended:
                    self.close()
                    return
                if self.closing:
                    return
                self._waiter = self._loop.create_future()
                found = await self._waiter
                if found is None:
                    return
            self.busy = True
            message = found

    def _hand_over(self) -> None:
        """aiohttp's server takes this connection from the buffered request on."""
        transport, data = self._leave()
        self.lane.handed_over += 1
        handler = self.lane.aiohttp_server()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._reading_paused:
            transport.resume_reading()
        if data:
            handler.data_received(data)
        told: asyncio.Protocol = handler  # (aiohttp types its eof_received as returning None)
        if self._ended and not told.eof_received():  # aiohttp saw no end of its own
            transport.close()

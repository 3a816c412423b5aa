"""A client connection in the fast lane: the asyncio Protocol that drives it. Which bytes
make a request and whether the lane takes it is requests.py's (pure, with http1.py);
what is sent for it, answers.py's; how it is written to a client that takes it slowly,
writing.py's (the class Connection is built on); when a client is too slow to send
it, timeouts.py's. This module holds the connection's task, reading, and hand-overs to
aiohttp's server (FastLane.hand_over) or a tunnel.

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
from typing import TYPE_CHECKING, Final, cast

from local_lambdas import _compat
from local_lambdas.errors import ClientGone, ForwardError
from local_lambdas.forwarding import own_address
from local_lambdas.lane.answer_heads import AnswerHeads
from local_lambdas.lane.answers import answer, unfinished
from local_lambdas.lane.message import Message
from local_lambdas.lane.relay import RelayedHeads
from local_lambdas.lane.relay_request import Forwarding, Upload
from local_lambdas.lane.requests import AWAIT_BODY, AWAIT_HEAD, CONTINUE, ELSEWHERE, Requests
from local_lambdas.lane.timeouts import ClientClock
from local_lambdas.lane.writing import ClientWriter

if TYPE_CHECKING:
    from local_lambdas.lane.fastlane import FastLane

log = logging.getLogger("local_lambdas.fastlane")

_PAUSE_AT: Final = 1024**2  # pipelined bytes held while an answer is pending, before reading stops
# How long a client still sending a body its answer went out without is read, and what it
# sends dropped, before its connection closes (nginx's lingering close; _linger).
_LINGER: Final = 5.0


class Connection(ClientWriter):
    """One client connection while the lane has it (see the module's docstring)."""

    def __init__(self, lane: FastLane) -> None:
        # (lane, transport, peer, scheme, closing, upload, relaying, forwarding, answers, relayed:
        # answers.py's too)
        super().__init__(lane)
        # Received, not yet handled, cut into requests.
        self._requests = Requests(lane.proxy, self._own_address)
        self.busy = False  # a request is being answered
        # Serves the connection's requests in turn, from its first: one task per connection,
        # not per request (PERFORMANCE.md). Between requests it waits on _waiter.
        self.task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[Message | None] | None = None
        self.idle_since = self._loop.time()  # when the last answer was sent
        self._reading_paused = False
        self.relaying = False  # a pass-through answer is being relayed
        self.scheme = "http"
        self._ended = False  # the client half-closed: answer what came whole, then close
        self._lingering = False  # answered, closing: what the client still sends is dropped
        self.upload: Upload | None = None  # a pass-through body streaming to the child
        self.forwarding = Forwarding()  # the client's headers as a pass-through child gets them
        self.answers = AnswerHeads()  # writes the heads of envelope modes' answers
        self.relayed = RelayedHeads()  # and of pass-through's
        self._held = False  # not read: an upload waits for the child (hold_reading)
        # Times a request that has begun to arrive but is not whole (timeouts.py).
        self._clock = ClientClock(self, self._loop)

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
        self._clock.heard()
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
        self._clock.stop()
        self._stop_send_timeout()
        self.lane.forget(self)
        self._stop_waiting()
        self.give_up(ClientGone("the client left before its request body had all come"))
        if self.relaying and self.task is not None:
            self.task.cancel()  # nobody is left to relay to: the child's answer is dropped

    def writing_resumed(self) -> None:
        if not self.busy:
            self._advance()

    # -- leaving the lane

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
        self._clock.stop()
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
        self._clock.stop()
        if transport is None or transport.is_closing():
            return
        if transport.can_write_eof():  # (TLS has none: the client's close, or the time)
            transport.write_eof()
        self._clock.after(_LINGER, self.close)
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
                self._clock.start(self.lane.head_timeout)
            elif waiting == AWAIT_BODY:
                if not self._clock.running:  # the head is here, its body not: the client may
                    _compat.acknowledge_now(self.transport)  # be waiting for our ACK to send it
                self._clock.start(self.lane.body_timeout)
            elif waiting == ELSEWHERE:
                self._hand_over()
            return None
        self._clock.stop()
        if message.streams:  # the head alone: the body goes on as it comes
            self.upload = Upload(message.body_length, self)
            self._take_upload()
        return message

    def give_up(self, error: ForwardError) -> bool:
        """Answer and count the request whose body is still awaited, if any, with `error`
        (answers.unfinished); whether there was one."""
        return unfinished(self, self._requests.abandon(), error, self._clock.began)

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
            self._clock.stop()
        else:
            self._clock.start(self.lane.body_timeout)

    @property
    def awaiting_head(self) -> bool:
        """Part of a head has come, not all of it."""
        return self._requests.waiting == AWAIT_HEAD

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
        self.lane.hand_over(transport, data, self._reading_paused, self._ended)

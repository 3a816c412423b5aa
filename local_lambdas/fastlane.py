"""The fast lane: requests for the envelope modes answered on a bare asyncio Protocol, parsed
by httptools (llhttp, Node.js's parser), instead of by aiohttp's server, whose request and
response machinery was half of the proxy's time per request (PERFORMANCE.md).

The lane serves exactly one kind of request: an origin-form HTTP/1.0 or 1.1 request with no
body or a Content-Length one, routed to a process that takes its method and its size; a
pass-through one goes to the child in raw HTTP/1.1 and its answer comes back as it is
written (transports/upstream.py, relay.py); its body, over 1 MiB, streams on as it arrives
(relay.Upload), and its Expect: 100-continue is answered here. Anything else (the admin
endpoints, 404 and 405, a body over the limit, chunked uploads, Expect to an envelope mode,
upgrades but a pass-through WebSocket's (joined to the child's connection after its 101,
tunnel.py), a CORS request to an envelope mode (a pass-through one is the lane's),
anything llhttp rejects or the lane's 8 KiB head
bound, a head with a bare-LF line end, a second Host or Content-Length, a path
router.resolve refuses) is handed to aiohttp (aioserver.py), with its bytes, together with
the rest of the connection: one parser judges each request, and the answers to malformed
ones are the same JSON 400s in both. A head that does not arrive whole
within --client-header-timeout, or a body that stops for --client-body-timeout, gets 408.
`--no-fast-lane` hands every connection over at once.

Which bytes make a request and whether the lane takes it is lane_requests.py's (pure, with
http1.py); this module is the Protocol that drives it: timers, the connection's task,
writing, hand-overs. A connection carries one request at a time, answered by the
connection's one task (a task per request cost 2% of the lane's instructions): pipelined
bytes wait, unparsed, until the answer before them is written, so answers keep their order
and a hand-over starts at a request's first byte. Answers have the headers aiohttp would
write (tests compare the two).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Final, cast

from aiohttp import web

from local_lambdas.aioserver import timed_out
from local_lambdas.envelope import Response
from local_lambdas.errors import ChildUnreachable, ClientTooSlow, ForwardError
from local_lambdas.forwarding import own_address, strip_prefix
from local_lambdas.http1 import NO_BODY, RETRYABLE, answer_head
from local_lambdas.inspector import BODY
from local_lambdas.instance import Instance
from local_lambdas.lane_requests import (
    AWAIT_BODY,
    AWAIT_HEAD,
    CONTINUE,
    ELSEWHERE,
    Message,
    Requests,
)
from local_lambdas.proxy import Proxy, error_response
from local_lambdas.relay import Answer, Upload, child_request
from local_lambdas.transports.passthrough import PassthroughTransport
from local_lambdas.tunnel import Tunnel

log = logging.getLogger("local_lambdas.fastlane")

_now: Final = time.monotonic  # a C-level constant, not two lookups per call
_PAUSE_AT: Final = 1024**2  # pipelined bytes held while an answer is pending, before reading stops
_SWEEP_EVERY: Final = 60.0  # seconds between looks for idle connections


class FastLane:
    """The protocol factory for the listening socket; knows its open connections, to stop
    them. `aiohttp_server` makes the protocol a handed-over connection continues on."""

    def __init__(
        self,
        proxy: Proxy,
        aiohttp_server: web.Server,
        head_timeout: float = 60.0,
    ) -> None:
        self.proxy = proxy
        self.aiohttp_server = aiohttp_server
        self.head_timeout = head_timeout
        self.body_timeout = proxy.body_timeout
        self.stopping = False
        self.served = 0  # requests answered by the lane
        self.handed_over = 0  # connections given to aiohttp
        self.connections: set[_Connection] = set()
        self.tunnels: set[Tunnel] = set()  # pass-through WebSockets, after their 101
        # aiohttp's keep-alive timeout, so that a connection lasts as long in either lane.
        self.idle_timeout = 3630.0
        self._sweeper: asyncio.TimerHandle | None = None
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self._date = (0, "", "")

    def __call__(self) -> asyncio.Protocol:
        return _Connection(self)

    def track(self, connection: _Connection) -> None:
        """A connection is made. Not when its protocol is: over TLS a client whose handshake
        fails (plain HTTP on the HTTPS port) never connects, and would stay counted for ever,
        holding up every stop for its whole timeout."""
        self.connections.add(connection)
        self._all_closed.clear()
        if self._sweeper is None:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(_SWEEP_EVERY, self.sweep)

    def sweep(self) -> None:
        """Close the connections that have had nothing to do for `idle_timeout` seconds."""
        if self._sweeper is not None:
            self._sweeper.cancel()  # when called before its time
        self._sweeper = None
        loop = asyncio.get_running_loop()
        before = loop.time() - self.idle_timeout
        for connection in list(self.connections):
            if not connection.busy and connection.idle_since <= before:
                connection.close_when_idle()
        if self.connections and not self.stopping:
            self._sweeper = loop.call_later(_SWEEP_EVERY, self.sweep)

    def forget(self, connection: _Connection) -> None:
        self.connections.discard(connection)
        if not self.connections:
            self._all_closed.set()

    def date(self) -> str:
        """The Date header's value, made once a second."""
        now = int(time.time())
        if self._date[0] != now:
            value = formatdate(now, usegmt=True)
            self._date = (now, value, f"Date: {value}\r\n")
        return self._date[1]

    def date_line(self) -> str:
        """The Date header's line (see `date`)."""
        self.date()
        return self._date[2]

    async def shutdown(self, timeout: float) -> None:
        """Close idle connections now, the others once their answer is written; after
        `timeout` seconds, close what is left."""
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections):
            connection.close_when_idle()
        for tunnel in list(self.tunnels):
            tunnel.stop()
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout)
        except asyncio.TimeoutError:
            for connection in list(self.connections):
                connection.abort()


class _Connection(asyncio.Protocol):
    def __init__(self, lane: FastLane) -> None:
        self._lane = lane
        self._transport: asyncio.Transport | None = None
        self._peer: str | None = None
        # Received, not yet handled, cut into requests.
        self._requests = Requests(lane.proxy, self._own_address)
        self.busy = False  # a request is being answered
        # Serves the connection's requests in turn, from its first: one task per connection,
        # not per request (PERFORMANCE.md). Between requests it waits on _waiter.
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[Message | None] | None = None
        # Kept: asyncio.get_running_loop() makes a getpid() system call each time on 3.11.
        self._loop = asyncio.get_running_loop()
        self.idle_since = self._loop.time()  # when the last answer was sent
        self._reading_paused = False
        self._writing_paused = False
        self._when_writable: list[Callable[[], None]] = []  # a relayed answer, waiting
        self._relaying = False  # a pass-through answer is being relayed
        self._scheme = "http"
        self._closing = False
        self._upload: Upload | None = None  # a pass-through body streaming to the child
        self._held = False  # not read: an upload waits for the child (hold_reading)
        # A request that has begun to arrive but is not whole: the client timeouts' timer,
        # and when its last bytes came (the body's clock restarts with every read).
        self._timer: asyncio.TimerHandle | None = None
        self._progress = 0.0

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._lane.track(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as aiohttp does
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, (list, tuple)) else peer
        if transport.get_extra_info("sslcontext") is not None:
            self._scheme = "https"
        if self._lane.stopping:
            self._hand_over()  # aiohttp answers 503 during a stop, then closes

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            self._progress = self._loop.time()
        self._requests.feed(data)
        if self._upload is not None:
            self._take_upload()
        if not self.busy:
            self._advance()
        elif len(self._requests.buffer) > _PAUSE_AT and not self._reading_paused:
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._stop_timer()
        self._lane.forget(self)
        self._stop_waiting()
        if self._relaying and self._task is not None:
            self._task.cancel()  # nobody is left to relay to: the child's answer is dropped

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiting, self._when_writable = self._when_writable, []
        for then in waiting:
            then()
        if not self.busy:
            self._advance()

    # -- where a relayed answer goes (relay.Client)

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    @property
    def writable(self) -> bool:
        return not self._writing_paused

    def when_writable(self, then: Callable[[], None]) -> None:
        self._when_writable.append(then)

    def adopt(self) -> tuple[asyncio.Transport, bytes] | None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return None
        return self._leave()

    def _leave(self) -> tuple[asyncio.Transport, bytes]:
        """The connection leaves the lane (for aiohttp's server, or a tunnel): its transport,
        and the bytes the client sent after the last request the lane took."""
        transport = self._transport
        assert transport is not None
        self._closing = True
        self._stop_timer()
        self._stop_waiting()
        self._lane.forget(self)
        self._transport = None
        return transport, self._requests.rest()

    # -- the lane ---------------------------------------------------------------------------

    def close_when_idle(self) -> None:
        self._closing = True
        if not self.busy and self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

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
            self._task = self._loop.create_task(self._serve(message))

    def _stop_waiting(self) -> None:
        """The connection is over for the lane: its task, if waiting, ends."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _next_request(self) -> Message | None:
        """The next whole request received, if it is the lane's to answer now; a request
        that is not the lane's hands the connection to aiohttp."""
        if self._closing or self._writing_paused:
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
                self._start_timer(self._lane.head_timeout)
            elif waiting == AWAIT_BODY:
                self._start_timer(self._lane.body_timeout)
            elif waiting == ELSEWHERE:
                self._hand_over()
            return None
        if self._timer is not None:
            self._stop_timer()
        if message.streams:  # the head alone: the body goes on as it comes
            self._upload = Upload(message.body_length, self)
            self._take_upload()
        return message

    def _take_upload(self) -> None:
        """The streaming body's bytes received go on; what follows them waits."""
        upload = self._upload
        if upload is None:
            return
        piece = self._requests.take(upload.left)
        if piece:
            upload.feed(piece)
        if upload.complete:
            self._upload = None
            self._stop_timer()
        else:
            self._start_timer(self._lane.body_timeout)

    def _own_address(self) -> str:
        return own_address(self._transport)

    def hold_reading(self, held: bool) -> None:
        transport = self._transport
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

    def _timed_out(self) -> None:
        """A client timeout: the head did not arrive whole in time, or the body stopped
        coming. The client gets 408 and the connection closes (aiohttp's server does the
        same, aioserver.py)."""
        self._timer = None
        upload = self._upload
        if upload is not None and not self._closing:  # a streaming body stopped coming
            left = self._progress + self._lane.body_timeout - self._loop.time()
            if left > 0:
                self._timer = self._loop.call_later(left, self._timed_out)
            else:  # (it stays: the connection is out of step, and closes after the 408)
                upload.fail(ClientTooSlow(self._lane.body_timeout))
            return
        if self._closing or self.busy or self._transport is None:
            return
        head = self._requests.waiting == AWAIT_HEAD
        seconds = self._lane.head_timeout if head else self._lane.body_timeout
        if not head:  # the body's clock counts from its last bytes
            left = self._progress + seconds - self._loop.time()
            if left > 0:
                self._timer = self._loop.call_later(left, self._timed_out)
                return
        what = "the request head did not arrive" if head else "no byte of the request body came"
        message = f"{what} within {seconds:g}s"
        self._transport.write(timed_out(message, self._lane.proxy.new_id, self._peer))
        self._closing = True
        self._transport.close()

    async def _serve(self, message: Message) -> None:
        """The connection's task: answer its requests one after another, until it closes or
        is handed over."""
        while True:
            try:
                keep_alive = await self._answer(message)
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
                self.close_when_idle()
                return
            if self._reading_paused and self._transport is not None:
                self._reading_paused = False
                self._transport.resume_reading()
            found = self._next_request()
            if found is None:
                if self._closing:
                    return
                self._waiter = self._loop.create_future()
                found = await self._waiter
                if found is None:
                    return
            self.busy = True
            message = found

    async def _answer(self, message: Message) -> bool:
        """Answer one request; whether the connection stays open."""
        started = _now()
        proxy = self._lane.proxy
        request_id = proxy.identify(message.request_id, message.headers)
        keep_alive = message.keep_alive
        if message.pool.relays:
            return await self._relay(message, request_id, started)
        try:
            response = await proxy.answer(
                message.pool, message.method, message.target, message.path, message.headers,
                message.body, self._peer, request_id,
            )  # fmt: skip
        except Exception:
            log.exception("%s %s: failed inside local-lambdas", message.method, message.target)
            text = "local-lambdas failed while answering; its log has the details"
            response = error_response(500, text, message.pool.process, request_id)
            keep_alive = False
        keep_alive = keep_alive and not self._lane.stopping
        self._write(response, message, request_id, keep_alive)
        proxy.finish(
            message.pool, message.method, message.target, response.status, started, request_id,
            (message.headers, message.body), (response.headers, response.body),
        )  # fmt: skip
        self._lane.served += 1
        return keep_alive

    async def _relay(self, message: Message, request_id: str, started: float) -> bool:
        """A pass-through request: sent to the child in raw HTTP/1.1 (transports/upstream.py),
        its answer written here as it comes (relay.py); whether the connection stays open."""
        proxy = self._lane.proxy
        pool = message.pool
        process = pool.process
        target, prefix = strip_prefix(message.target, process.strip_prefix, message.path)
        request = child_request(
            message.method, target, message.headers, message.body, client=self._peer,
            scheme=self._scheme, token=proxy.token, request_id=request_id, prefix=prefix,
            upgrade=message.upgrade,
        )  # fmt: skip
        keep_alive = message.keep_alive and not self._lane.stopping
        upload = self._upload if message.streams else None
        answer = Answer(
            self, version=message.version, keep_alive=keep_alive, request_id=request_id,
            prefix=prefix, method=message.method, keep=BODY if proxy.inspector is not None else 0,
            cors=None if pool.cors is None else (pool.cors, message.origin), upload=upload,
            date=self._lane.date(),
        )  # fmt: skip
        head_only = message.method == "HEAD"
        sent = (message.headers, None if message.streams else message.body)  # streamed: not kept

        async def exchange(child: Instance) -> None:
            relay = child.transport
            assert isinstance(relay, PassthroughTransport)
            if upload is not None and upload.started:  # a retry: the body is gone
                raise ChildUnreachable("the child dropped the connection during the upload")
            await relay.upstream.send(
                request, answer, timeout=process.timeout, head_only=head_only,
                idempotent=message.method in RETRYABLE, upgrade=message.upgrade is not None,
                body=upload,
            )  # fmt: skip
            tunnel = answer.tunnel
            if tunnel is not None:  # a WebSocket: its instance stays in use while it lasts
                self._lane.tunnels.add(tunnel)
                try:
                    await tunnel.ended
                finally:
                    self._lane.tunnels.discard(tunnel)

        self._relaying = True
        try:
            await proxy.attempt(pool, message.method, message.target, message.path, exchange)
        except asyncio.CancelledError:
            if self._closing:  # the client left (connection_lost): not an error
                log.debug("[%s] the client left before its answer was sent", request_id)
                proxy.finish(
                    pool, message.method, message.target, answer.status, started, request_id,
                    sent, (answer.headers, answer.kept),
                )  # fmt: skip
            raise
        except ForwardError as exc:
            # A body not read to its end leaves the connection out of step: it closes.
            keep_alive = keep_alive and self._upload is None
            response = proxy.failure(exc, process, request_id)
            self._write(response, message, request_id, keep_alive)
            proxy.finish(
                pool, message.method, message.target, response.status, started, request_id,
                sent, (response.headers, response.body),
            )  # fmt: skip
            return keep_alive
        finally:
            self._relaying = False
        proxy.finish(
            pool, message.method, message.target, answer.status, started, request_id,
            sent, (answer.headers, answer.kept),
        )  # fmt: skip
        self._lane.served += 1
        return answer.keep_alive and self._upload is None

    def _write(self, response: Response, message: Message, request_id: str, keep: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # the client left; its answer goes nowhere, as with aiohttp
        status = response.status
        sent = response.body if message.method != "HEAD" and status not in NO_BODY else b""
        data = answer_head(
            status, response.headers, request_id, version=message.version,
            length=len(response.body), sent=bool(sent), keep=keep, date=self._lane.date_line(),
        )  # fmt: skip
        if len(sent) < 65536:
            transport.write(data + sent)
        else:  # a large body is not copied once more to join it to its head
            transport.write(data)
            transport.write(sent)

    def _hand_over(self) -> None:
        """aiohttp's server takes this connection from the buffered request on."""
        transport, data = self._leave()
        self._lane.handed_over += 1
        handler = self._lane.aiohttp_server()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._reading_paused:
            transport.resume_reading()
        if data:
            handler.data_received(data)

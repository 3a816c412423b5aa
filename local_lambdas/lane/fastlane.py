"""The fast lane: requests for the envelope modes answered on a bare asyncio Protocol, parsed
by httptools (llhttp, Node.js's parser), instead of by aiohttp's server, whose request and
response machinery was half of the proxy's time per request (PERFORMANCE.md).

The lane serves exactly one kind of request: an origin-form HTTP/1.0 or 1.1 request with no
body or a Content-Length one, routed to a process that takes its method and its size; a
pass-through one goes to the child in raw HTTP/1.1 (relay_request.py, transports/upstream.py)
and its answer comes back as it is written (relay.py); its body, over 1 MiB, streams on as it
arrives (relay_request.Upload), and its Expect: 100-continue is answered here. Anything else
(the admin endpoints, 404 and 405, a body over the limit, chunked uploads, Expect to an
envelope mode, upgrades but a pass-through WebSocket's (joined to the child's connection after
its 101, tunnel.py), a CORS request to an envelope mode (a pass-through one is the lane's),
anything llhttp rejects or the lane's 8 KiB head bound, a head with a bare-LF line end, a
second Host or Content-Length, a Host that is no host, a request line of another version or
protocol (judged at its end, head_rules.request_line_fault), a path router.resolve refuses) is
handed to aiohttp (aio/server.py), with its bytes, together with the rest of the connection: one
parser judges each request, and the answers to malformed ones are the same JSON 400s in both.
`--no-fast-lane` hands every connection over at once.

A connection is driven by connection.py (writing: writing.py; client timeouts:
timeouts.py), its requests cut by requests.py, and answered by answers.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from email.utils import formatdate
from typing import Final

from aiohttp import web

from local_lambdas._compat import limits
from local_lambdas.lane.connection import Connection
from local_lambdas.lane.tunnel import Tunnel
from local_lambdas.proxy import Proxy

log = logging.getLogger("local_lambdas.fastlane")

_SWEEP_EVERY: Final = 60.0  # the most seconds between looks for idle connections
_time: Final = time.time  # called, not looked up in the module, each request


class FastLane:
    """The protocol factory for the listening socket; knows its open connections, to stop
    them. `aiohttp_server` makes the protocol a handed-over connection continues on."""

    def __init__(
        self,
        proxy: Proxy,
        aiohttp_server: web.Server,
        *,
        head_timeout: float,
        send_timeout: float,
        idle_timeout: float,
    ) -> None:
        """The three client timeouts are the run's Settings (--client-header-timeout,
        --send-timeout, --keepalive-timeout), whose defaults are the only ones."""
        self.proxy = proxy
        self.aiohttp_server = aiohttp_server
        self.head_timeout = head_timeout
        self.send_timeout = send_timeout
        self.body_timeout = proxy.body_timeout
        self.stopping = False
        self.served = 0  # requests answered by the lane
        self.handed_over = 0  # connections given to aiohttp
        self.connections: set[Connection] = set()
        self.tunnels: set[Tunnel] = set()  # pass-through WebSockets, after their 101
        # --keepalive-timeout, as aiohttp's server is given it: a connection lasts as long
        # in either lane. Looked for by a sweep, not a timer per request: closed within a
        # fifth of it past it (a minute at most; 50 ms at least, however short it is).
        self.idle_timeout = idle_timeout
        self._sweep_every = min(_SWEEP_EVERY, max(0.05, idle_timeout / 5))
        self._sweeper: asyncio.TimerHandle | None = None
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self._told_full = False  # that the open files near their limit
        self._date = self._date_line = ""  # the Date header's value and line, until:
        self._date_until = 0.0

    def __call__(self) -> asyncio.Protocol:
        return Connection(self)

    def track(self, connection: Connection) -> None:
        """A connection is made. Not when its protocol is: over TLS a client whose handshake
        fails (plain HTTP on the HTTPS port) never connects, and would stay counted for ever,
        holding up every stop for its whole timeout."""
        self.connections.add(connection)
        self._all_closed.clear()
        if not len(self.connections) & 7 and not self._told_full:  # a look every 8th
            self._near_the_open_files_limit()
        if self._sweeper is None:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(self._sweep_every, self.sweep)

    def _near_the_open_files_limit(self) -> None:
        """Say once when the process nears its limit of open files: past it uvloop closes
        new clients unanswered, and says nothing (asyncio's loop leaves them waiting, and
        cli._unaccepted_said_once says so)."""
        counted = limits.open_files()
        if counted is not None and counted[0] * 10 >= counted[1] * 9:
            self._told_full = True
            log.warning(
                "%d of the %d files this process may open are open (%d clients connected): "
                "past the limit new clients are closed unanswered or wait; raise it (ulimit -n, or "
                "a container's nofile limit)",
                counted[0], counted[1], len(self.connections),
            )  # fmt: skip

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
            self._sweeper = loop.call_later(self._sweep_every, self.sweep)

    def hand_over(
        self, transport: asyncio.Transport, data: bytes, paused: bool, ended: bool
    ) -> None:
        """aiohttp's server takes a connection that leaves the lane, from the request `data`
        begins with; `paused`: the lane had stopped reading it; `ended`: its client
        half-closed."""
        self.handed_over += 1
        handler = self.aiohttp_server()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if paused:
            transport.resume_reading()
        if data:
            handler.data_received(data)
        told: asyncio.Protocol = handler  # (aiohttp types its eof_received as returning None)
        if ended and not told.eof_received():  # aiohttp saw no end of its own
            transport.close()

    def forget(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if not self.connections:
            self._all_closed.set()

    def date(self) -> str:
        """The Date header's value, made once a second."""
        if _time() >= self._date_until:
            self._new_date()
        return self._date

    def date_line(self) -> str:
        """The Date header's line (see `date`)."""
        if _time() >= self._date_until:
            self._new_date()
        return self._date_line

    def _new_date(self) -> None:
        second = int(_time())
        self._date = formatdate(second, usegmt=True)
        self._date_line = f"Date: {self._date}\r\n"
        self._date_until = second + 1.0

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

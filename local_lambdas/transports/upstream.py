"""A pass-through child spoken to in raw HTTP/1.1, for the fast lane (lane/fastlane.py): its
keep-alive connections pooled, one exchange at a time on each (exchanging.py and
exchange.py: the request's bytes out, the answer to a `Sink` as it comes).

`Upstream.send` takes an idle connection, or makes one within <timeout>, and keeps it again
once its answer ended cleanly, for as long as the child would keep it idle
(ChildConnection.fresh); one idle past that is closed within a second, as nginx closes its
idle ones after `keepalive_timeout` (a thread-per-connection server holds a thread for each,
and one that serves one connection at a time waits on it). A kept connection that gives
nothing back was most likely closed by the child while idle: an idempotent request without
a streamed body is sent again on another, anything else is ChildUnreachable (nginx's rule).
A child that closes each connection after one answer without saying so gets a connection
per request (closes.py). At most MAX_IDLE are kept idle, as nginx's `keepalive` bounds them.
The exchanges under a time limit are looked at by one timer per pool, a quarter of the limit
apart; the idle connections by another, while there are any.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from local_lambdas import _compat
from local_lambdas.errors import ChildTimeout, ChildUnreachable, NotConnected, Stale
from local_lambdas.forwarding import Origin
from local_lambdas.transports.closes import Closes
from local_lambdas.transports.exchange import Bare
from local_lambdas.transports.exchange_headers import Exchange
from local_lambdas.transports.exchanging import Exchanging
from local_lambdas.transports.sink import Body, Sink

log = logging.getLogger("local_lambdas.upstream")

MAX_IDLE: Final = 64  # idle connections kept per child (the benchmark's nginx: keepalive 64)
IDLE_SWEEP: Final = 1.0  # seconds between looks for idle connections past their time
# What the log says of a child that closes each connection after one answer (closes.py).
_ONE_EACH: Final = (
    "the child closes each connection after its answer without saying so (Connection: "
    "close): every request now opens a new one, since one sent on a kept connection as the "
    "child closed it got nothing back, and a POST cannot be sent twice"
)


class Upstream:
    """The connections to one child at HOST:PORT; idle ones are kept for the next request."""

    def __init__(
        self, host: str, port: int, *, headers: bool = True, most: int = 1 << 62,
        closes: Closes | None = None,
    ) -> None:  # fmt: skip
        """`headers`: whether the answers' headers are read and given to the sink (else
        it gets none: see Bare); `most`: the bytes an answer may take, head included, past
        which its connection is closed (a sink that keeps it whole: the `http` envelope's;
        a streamed one has none)."""
        self.most = most
        self._host = host
        self._port = port
        # Its address as its redirects name it (forwarding.put_back).
        self.origin: Origin = ((f"[{host}]" if ":" in host else host).lower(), port)
        self._exchange: type[Bare] = Exchange if headers else Bare
        self._idle: list[Bare] = []
        self._closed = False
        # The exchanges under a time limit, and one timer that looks at them all, a quarter
        # of a limit apart (not a timer per request: a heap push and a cancel each).
        self._timed: set[Exchanging] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._idle_sweeper: asyncio.TimerHandle | None = None  # while any are kept idle
        self._told_unasked = False
        self._closes = closes or Closes(f"{host}:{port}")
        self.name = self._closes.name  # the process, as the log names it
        # The answer head its connections last kept (exchange_headers.Exchange), and its
        # headers: connections that keep the same head share one list of the same tuples.
        self.heads: tuple[bytes, list[tuple[str, str]]] = (b"", [])

    def unasked(self) -> None:
        """A connection got bytes after its answer ended: said once (nginx warns of it too);
        the connection is closed by the caller, so no client gets them."""
        if not self._told_unasked:
            self._told_unasked = True
            log.warning(
                "%s: the child sent bytes after its answer ended: that connection is "
                "closed, not reused; an answer's body must be as long as its Content-Length "
                "says, and a 204, a 304 or an answer to HEAD has none",
                self.name,
            )  # fmt: skip

    def watch(self, exchange: Exchanging) -> None:
        self._timed.add(exchange)
        if self._sweeper is None:
            assert exchange.timeout is not None
            # A tenth of the limit (a second at most): a 504 within 10% of <timeout>, not
            # the 25% that a quarter left (a 2 s limit answered at 2.5 s).
            self._sweep_every = min(1.0, max(0.05, exchange.timeout / 10))
            loop = exchange.loop
            self._sweeper = loop.call_at(loop.time() + self._sweep_every, self._sweep, loop)

    def unwatch(self, exchange: Exchanging) -> None:
        self._timed.discard(exchange)

    def end_event_streams(self) -> None:
        """End every Server-Sent Events answer in flight (Exchanging.end_event_stream). Every
        pass-through exchange has a time limit (--no-timeouts makes it NO_LIMIT), so those
        in flight are the watched ones."""
        for exchange in list(self._timed):
            exchange.end_event_stream()

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeper = None
        now = loop.time()
        for exchange in list(self._timed):
            exchange.check(now)
        if self._timed:
            self._sweeper = loop.call_at(now + self._sweep_every, self._sweep, loop)

    async def send(
        self, request: bytes, sink: Sink, *, timeout: float | None, head_only: bool = False,
        idempotent: bool = False, upgrade: bool = False, body: Body | None = None,
    ) -> bytes:  # fmt: skip
        """One exchange (see the module's docstring); `timeout` bounds each wait for the
        child's bytes (None: the caller bounds the whole). A kept connection that gives
        nothing back was most likely closed by the child while idle: an `idempotent`
        request is sent again on another; any other gets ChildUnreachable, since the child
        may have acted on it before closing (nginx's rule for non-idempotent requests).
        A `body` streams after `request` (the head); it is never sent twice. Returns the
        answer's first bytes as they came (its head, whole as a rule: see raw_header)."""
        while self._idle:
            exchange = self._idle.pop()
            if not exchange.usable:
                self._closes.dropped(exchange.answers, _ONE_EACH)
                continue
            if not exchange.fresh():
                exchange.close()  # idle too long: the child may be closing it this moment
                continue
            try:
                await exchange.run(request, sink, timeout, head_only, upgrade, body)
            except Stale as stale:
                self._closes.dropped(exchange.answers, _ONE_EACH)
                if idempotent and body is None:
                    continue
                raise ChildUnreachable(str(stale)) from None
            except BaseException:
                exchange.close()  # cancelled mid-answer, say: never used again
                raise
            self._keep(exchange)
            return exchange.first
        # Asked for only here: get_running_loop() is a getpid() system call on Python 3.11.
        loop = asyncio.get_running_loop()
        make = self._exchange
        # The connect runs on its own, never cancelled midway: one cancelled as the child
        # accepts it (the request's client gone) could leave its socket open on uvloop, and
        # a child that serves one connection at a time waiting on it for good. A request
        # that stops waiting (its client gone, its <timeout>) leaves the connection to be
        # closed once made (_close_unused).
        connecting = asyncio.ensure_future(
            loop.create_connection(lambda: make(self), self._host, self._port)
        )
        try:
            # A child that does not accept (stopped at a breakpoint, its backlog full) leaves
            # the connect waiting for the kernel's retries, two minutes: <timeout> bounds it.
            # Not with wait_for, which on Python 3.11 returns a connection made as the
            # request is cancelled and drops the cancel.
            if timeout is None:
                _, exchange = await asyncio.shield(connecting)
            else:
                async with _compat.timeout(timeout):
                    _, exchange = await asyncio.shield(connecting)
        except asyncio.TimeoutError:  # (before OSError: on 3.11 it is the builtin one)
            connecting.add_done_callback(_close_unused)
            raise ChildTimeout(
                f"the child did not accept a connection within {timeout:g}s (its <timeout>)"
            ) from None
        except OSError as exc:
            raise NotConnected(
                f"cannot connect to {self._host}:{self._port}: {exc.strerror or exc}"
            ) from exc
        except BaseException:
            connecting.add_done_callback(_close_unused)
            raise
        try:
            await exchange.run(request, sink, timeout, head_only, upgrade, body)
        except Stale as stale:  # (one name per exception type: mypyc holds it to one type)
            raise ChildUnreachable(str(stale)) from None
        except BaseException:
            exchange.close()
            raise
        self._keep(exchange)
        return exchange.first

    def _keep(self, exchange: Bare) -> None:
        exchange.answers += 1
        closes = self._closes
        if exchange.answers == 2:
            closes.kept_on = True
        if (
            exchange.reusable
            and not self._closed
            and len(self._idle) < MAX_IDLE
            and not closes.one_each
        ):
            self._idle.append(exchange)
            if self._idle_sweeper is None:
                loop = exchange.loop
                self._idle_sweeper = loop.call_at(loop.time() + IDLE_SWEEP, self._let_go, loop)
        else:
            exchange.close()

    def _let_go(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the idle connections past their time (see the module's docstring)."""
        self._idle_sweeper = None
        now = loop.time()
        kept: list[Bare] = []
        for exchange in self._idle:
            if exchange.usable and not exchange.stale(now):
                kept.append(exchange)
            else:
                exchange.close()
        self._idle = kept
        if kept:
            self._idle_sweeper = loop.call_at(now + IDLE_SWEEP, self._let_go, loop)

    def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._idle_sweeper is not None:
            self._idle_sweeper.cancel()
            self._idle_sweeper = None
        idle, self._idle = self._idle, []
        for exchange in idle:
            exchange.close()


def _close_unused(connecting: asyncio.Future[tuple[asyncio.Transport, Bare]]) -> None:
    """A connect no request waits for any more: its connection, once made, closed."""
    if not connecting.cancelled() and connecting.exception() is None:
        connecting.result()[0].close()

"""The fast lane's requests, cut from the bytes one connection receives (fastlane.py): bytes
in, a request or a reason to wait out. No I/O, no clock: the lane's asyncio Protocol feeds
it and acts on what it says (a timer while a head or a body is awaited, 100 Continue, the
connection to aiohttp's server), and tests drive it with tables (tests/units/test_lane_requests.py).

llhttp (httptools) judges every head and counts every body byte, so that it is ready for the
request after; http1.HeadReader reads the head, Proxy.plan routes it, message.lane_takes
says whether the lane answers it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import httptools

from local_lambdas.envelope import Repeats
from local_lambdas.head_rules import EXTENSION_METHOD, as_http11
from local_lambdas.lane.http1 import ENVELOPE, HAND_OVER, RELAY, WAIT, HeadReader, head_end
from local_lambdas.lane.message import Message, lane_takes
from local_lambdas.proxy import Proxy

# Why Requests.next found no request to answer now (its `waiting`):
IDLE: Final = 0  # nothing received: a kept-alive connection between requests
AWAIT_HEAD: Final = 1  # part of a head: more may complete it
AWAIT_BODY: Final = 2  # a head the lane takes, its body not all here
CONTINUE: Final = 3  # a head that asked for 100 Continue: send it, then ask again
ELSEWHERE: Final = 4  # not the lane's: aiohttp's server takes the connection from here (`rest`)


class Requests:
    """What one connection received and the lane has not taken, from a request's first byte.

    `proxy` plans each request (Proxy.plan; a native call, where a bound method passed in
    cost 2% of the lane's instructions); `address` gives the address the client reached, for
    the Host of an HTTP/1.0 request that has none (the child is spoken to in HTTP/1.1)."""

    def __init__(self, proxy: Proxy, address: Callable[[], str]) -> None:
        # Bytes while it is one whole chunk (the usual request), a bytearray while a long
        # body arrives in pieces.
        self.buffer: bytes | bytearray = b""
        self.waiting = IDLE  # why `next` last found nothing
        self._proxy = proxy
        self._address = address
        self._parser = httptools.HttpRequestParser(self)
        self._heads = HeadReader()
        self._message: Message | None = None  # a head whose body is still arriving
        # The last head llhttp took whole, with no body and its connection kept: the same
        # bytes again (a client repeating its request, as a poller, a smoke test or a
        # benchmark does) would leave llhttp where a request begins, as they found it, so
        # they are not fed to it again.
        self._plain = b""
        # The request read from `_plain` once it came twice, its header list as read (the
        # one handed out is the caller's to extend), and the routes it was planned by: the
        # same head again, routed by the same routes, is the same request (Proxy.plan
        # depends on nothing else; a reload installs new routes), so it is not read nor
        # planned again.
        self._last: Message | None = None
        self._last_headers: tuple[tuple[str, str], ...] = ()
        self._router: object = None

    def feed(self, data: bytes) -> None:
        buffer = self.buffer
        if not buffer:
            self.buffer = data
        elif isinstance(buffer, bytearray):
            buffer += data
        else:
            self.buffer = bytearray(buffer) + data

    def next(self) -> Message | None:
        """The next request, when the whole of it is here (a streaming one: its head) and it
        is the lane's; else None, and `waiting` says why."""
        buffer = self.buffer
        if not buffer:
            self.waiting = IDLE
            return None
        message = self._message
        if message is None:
            plain = self._plain
            if plain and buffer[: len(plain)] == plain:  # the last head again (see __init__)
                message = self._read(plain)  # (a whole head: its first empty line ends it)
            else:
                end = head_end(buffer)
                if end <= WAIT:
                    self.waiting = ELSEWHERE if end == HAND_OVER else AWAIT_HEAD
                    return None
                head = buffer[:end]
                message = self._read(head if isinstance(head, bytes) else bytes(head))
            if message is None:
                self.waiting = ELSEWHERE
                return None
            self._message = message
            if message.continues:  # asked for once the request is known to be the lane's
                self.waiting = CONTINUE
                return None
        if message.streams:
            self._cut(message.head_length)
            self._message = None
            return message
        end = message.head_length + message.body_length
        if len(buffer) < end:
            self.waiting = AWAIT_BODY
            return None
        if message.body_length:
            message.body = bytes(memoryview(buffer)[message.head_length : end])
            self._parser.feed_data(message.body)  # counted, to be ready for the next
        self._cut(end)
        self._message = None
        return message

    def abandon(self) -> Message | None:
        """The request whose body is still awaited, if any, forgotten: it will not come."""
        message = self._message if self.waiting == AWAIT_BODY else None
        self._message = None
        return message

    def take(self, most: int) -> bytes:
        """Up to `most` bytes of a streaming body, as far as they have come."""
        buffer = self.buffer
        if not buffer:
            return b""
        piece = bytes(buffer[:most])
        self._cut(len(piece))
        self._parser.feed_data(piece)  # counted, to be ready for the next
        return piece

    def rest(self) -> bytes:
        """All that is left, for the server or tunnel that takes the connection over."""
        data, self.buffer = bytes(self.buffer), b""
        return data

    def _cut(self, end: int) -> None:
        self.buffer = self.buffer[end:] if len(self.buffer) > end else b""

    def _read(self, data: bytes) -> Message | None:
        """The request of the head `data`, at the buffer's start, if the lane takes it; None
        leaves it to aiohttp's server."""
        head_length = len(data)
        switching = False  # llhttp saw Connection: upgrade with an Upgrade header
        router: object = None  # the routes that plan a head seen before (see __init__)
        if data == self._plain:  # (see __init__)
            router = self._proxy.supervisor.router
            last = self._last
            if last is not None and router is self._router:
                return last.again(list(self._last_headers))
        else:
            self._plain = b""
            self._last = None
            line_end = data.find(b"\r\n")
            if line_end > 0 and data[line_end - 1] > ord("1"):  # not 1.0 nor 1.1: 1.2 to 1.9?
                data = as_http11(data, data)
            try:
                try:
                    self._parser.feed_data(data)
                except httptools.HttpParserInvalidMethodError:
                    # llhttp knows the methods it was built with; nginx (and RFC 9110) takes
                    # any other, and so does the child. The head is judged, and its body
                    # counted, with a method llhttp knows in its place: neither depends on
                    # the method.
                    space = data.find(b" ")
                    if not EXTENSION_METHOD.fullmatch(data, 0, max(space, 0)):
                        raise
                    self._parser = httptools.HttpRequestParser(self)
                    self._parser.feed_data(b"GET" + data[space:])
            except httptools.HttpParserUpgrade:
                switching = True
            except httptools.HttpParserError:
                return None
        head = self._heads.read(data)
        if head is None:
            return None
        method, target, version, headers, noted, length, keep_alive = head
        if method == "OPTIONS":  # perhaps a CORS preflight: Proxy.plan tells
            origin, asked = noted.get("origin"), noted.get("access-control-request-method")
            plan = self._proxy.plan(method, target, length, origin, asked)
        else:
            plan = self._proxy.plan(method, target, length)
        pool = plan.pool
        fate = plan.fate
        if not lane_takes(fate, method, version, length, noted, switching):
            return None
        if "host" not in noted and pool is not None and pool.relays:
            headers.append(("Host", self._address()))
        message = Message(
            pool, method, target, plan.path, version, headers, self._heads.block,
            noted.get("x-request-id"), noted.get("origin"), head_length, length, keep_alive,
            noted.get("upgrade"), "expect" in noted,
            None if fate is RELAY or fate is ENVELOPE else plan,
        )  # fmt: skip
        if length == 0 and keep_alive and not switching:
            if router is not None:  # kept from its second time: a head that repeats
                self._last, self._last_headers, self._router = message, tuple(headers), router
                message.repeats = Repeats()  # (its JSON's, for it and those `again`)
            self._plain = data
        return message

"""Pass-through's request as the child gets it (docs/protocol.md, "Pass-through"): its head
(`child_request`, from the client's headers `forwarded`, or from a connection's `Forwarding`
while the client repeats its header block) and a body too large to hold, streamed to the child
as it comes (`Upload`); relay.py relays the answer.

The rules are pass-through's (forwarding.py; transports/passthrough.py keeps them for
aiohttp's side): the target as sent less <strip_prefix>, `Host` as sent (or an absolute-form
target's host: aio/handler.py), headers less hop-by-hop ones, `X-Forwarded-For`/`-Proto`/`-Host`
from the connection, `X-Forwarded-Prefix` when a prefix was stripped, the run's token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final, Protocol

from local_lambdas.envelope import TOKEN_HEADER
from local_lambdas.forwarding import FROM_CLIENT_DROPPED, lowered, named_by
from local_lambdas.transports.exchanging import Exchanging

Headers = list[tuple[str, str]]


class Client(Protocol):
    """The client's connection, as the answer writes to it and an upload reads it."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    @property
    def writable(self) -> bool: ...

    def when_writable(self, then: Callable[[], None]) -> None: ...

    def adopt(self) -> tuple[asyncio.Transport, bytes, bool] | None:
        """The client's connection, for a tunnel, with what the client sent after its
        request and whether it has half-closed (nothing more will come); None when the
        client has left."""

    def hold_reading(self, held: bool) -> None:
        """Stop (True) or go on (False) reading the client: an upload waits for the child."""


# The client's headers as a child gets them: head lines of the end-to-end ones (less
# X-Forwarded-For), and the X-Forwarded-For and Host the client sent ("" when none).
Forwarded = tuple[str, str, str]


def forwarded(headers: Headers) -> Forwarded:
    """The client's `headers` as the child gets them (see the module's docstring)."""
    lines, forwarded_for, host, _ = _lines(headers)
    return "".join(lines), forwarded_for, host


def _lines(headers: Headers) -> tuple[list[str], str, str, list[str]]:
    """Each header's line as the child gets it ("" for one dropped: hop-by-hop, the
    proxy's own, or named by a Connection header), the X-Forwarded-For and Host sent ("" for
    none), and the names the Connection headers name."""
    lines = []
    forwarded_for = host = ""
    named: list[str] = []
    for name, value in headers:
        lower = lowered(name)
        if lower == "connection":
            named += named_by(value)
            lines.append("")
        elif lower in FROM_CLIENT_DROPPED:
            lines.append("")
        elif lower == "x-forwarded-for":
            forwarded_for = value
            lines.append("")
        else:
            if lower == "host":
                host = value
            lines.append(f"{name}: {value}\r\n")
    if named:  # (rare: Connection usually names keep-alive or close)
        for at in range(len(headers)):
            if lowered(headers[at][0]) in named:
                lines[at] = ""
        forwarded_for = "" if "x-forwarded-for" in named else forwarded_for
        host = "" if "host" in named else host
    return lines, forwarded_for, host, named


class Forwarding:
    """`forwarded` for one connection of the fast lane, kept for its repeated header block
    (http1.HeadReader hands back the same block while a client repeats it): a request whose
    block is the last one's costs no reading of its headers (with the head made in one
    f-string below: 95.4k -> 86.8k instructions per pass-through request).
    What the lane adds to a block's headers is the same on every request of a connection (a
    Host for an HTTP/1.0 client that sent none) or what `forwarded` drops (X-Request-Id).

    A block that changed (a browser's new trace id or cookie) keeps the line of each header
    that is the very one of the last block at the same place (HeadReader hands back what it
    read then for the lines that did not change); only the others are written, unless one
    of them, old or new, is a Host, X-Forwarded-For or Connection: then the block is read
    whole."""

    __slots__ = ("_block", "_forwarded", "_headers", "_lines", "_named")

    def __init__(self) -> None:
        self._block: str | None = None
        self._forwarded: Forwarded = ("", "", "")
        # The last block's headers, each one's line as the child gets it, and the names its
        # Connection headers name.
        self._headers: Headers = []
        self._lines: list[str] = []
        self._named: list[str] = []

    def of(self, block: str, headers: Headers) -> Forwarded:
        if block is self._block:
            return self._forwarded
        self._block = block
        lines = self._changed(headers)
        if lines is None:
            lines, forwarded_for, host, self._named = _lines(headers)
        else:
            _, forwarded_for, host = self._forwarded
        self._forwarded = ("".join(lines), forwarded_for, host)
        self._headers, self._lines = headers.copy(), lines  # (the caller's may grow)
        return self._forwarded

    def _changed(self, headers: Headers) -> list[str] | None:
        """The last block's lines with those of the headers that changed written anew; None
        when that cannot tell (see the class's docstring)."""
        # (Items read as Any: mypyc would make each a new tuple, never the one kept.)
        given: list[Any] = headers
        last: list[Any] = self._headers
        if len(given) != len(last) or not last:
            return None
        lines = self._lines.copy()
        for at in range(len(given)):
            header = given[at]
            if header is last[at]:
                continue
            name: str = header[0]
            value: str = header[1]
            lower = lowered(name)
            if lower in _READ_WHOLE or lowered(last[at][0]) in _READ_WHOLE:
                return None
            dropped = lower in FROM_CLIENT_DROPPED or lower in self._named
            lines[at] = "" if dropped else f"{name}: {value}\r\n"
        return lines


# Headers whose coming or going changes more than their own line.
_READ_WHOLE: Final = frozenset({"host", "x-forwarded-for", "connection"})


def child_request(
    method: str, target: str, headers: Forwarded, body: bytes, *, client: str | None,
    scheme: str, token: str, request_id: str, prefix: str | None, upgrade: str | None = None,
) -> bytes:  # fmt: skip
    """The request's bytes for the child (HTTP/1.1, its connection kept alive); `headers`,
    the client's, `forwarded`; `upgrade`, the protocol the client asks to switch to
    (Upgrade and Connection are hop-by-hop: they are the proxy's to send again)."""
    # The rules of passthrough.to_child, written out as lines: the lane's hot path makes
    # no list of pairs to join afterwards (6k instructions per request).
    lines, forwarded_for, host = headers
    client = client or ""
    forwarded_for = f"{forwarded_for}, {client}" if forwarded_for else client
    more = ""  # (the usual request has none of these: one string is built, not three)
    if prefix:
        more = f"X-Forwarded-Prefix: {prefix}\r\n"
    if upgrade:
        more += f"Connection: Upgrade\r\nUpgrade: {upgrade}\r\n"
    data = (
        f"{method} {target} HTTP/1.1\r\n{lines}X-Forwarded-For: {forwarded_for}\r\n"
        f"X-Forwarded-Proto: {scheme}\r\nX-Forwarded-Host: {host}\r\n"
        f"X-Request-Id: {request_id}\r\n{more}{TOKEN_HEADER}: {token}\r\n\r\n"
    ).encode("utf-8", "surrogateescape")
    return data + body if body else data


_AHEAD: Final = 1024**2  # upload bytes held before the child takes them, before the client waits


class Upload:
    """A pass-through request's body of `size` bytes, streamed to the child as the client
    sends it (an exchange.Body): the lane `feed`s it, the exchange writes it. The client is
    not read while more than _AHEAD bytes wait for the exchange to start, or while the
    child cannot take more. Never sent twice: `started` says it went to a child once."""

    def __init__(self, size: int, client: Client) -> None:
        self.left = size  # bytes still to come from the client
        self._client = client
        self._early: list[bytes] = []  # before an exchange took it
        self._early_size = 0
        self._to: Exchanging | None = None
        self.failure: Exception | None = None  # the client stopped sending

    @property
    def complete(self) -> bool:
        return self.left == 0

    @property
    def started(self) -> bool:
        return self._to is not None

    def feed(self, data: bytes) -> None:
        self.left -= len(data)
        if self._to is not None:
            self._to.write_body(data)
            return
        self._early.append(data)
        self._early_size += len(data)
        if self._early_size > _AHEAD:
            self._client.hold_reading(True)

    def start(self, exchange: Exchanging) -> None:
        self._to = exchange
        early, self._early, self._early_size = self._early, [], 0
        for data in early:
            exchange.write_body(data)
        if self.failure is not None:
            exchange.body_failed(self.failure)
        self._client.hold_reading(False)

    def fail(self, error: Exception) -> None:
        """The client stopped sending (its body timeout)."""
        if self.failure is not None:
            return
        self.failure = error
        if self._to is not None:
            self._to.body_failed(error)

    def pause(self) -> None:
        self._client.hold_reading(True)

    def resume(self) -> None:
        self._client.hold_reading(False)

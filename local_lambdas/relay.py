"""Pass-through in the fast lane (fastlane.py): the request as the child gets it, and the
child's answer written to the client as it comes (the Sink of transports/exchange.py).

The rules are pass-through's (docs/protocol.md, "Pass-through"; transports/passthrough.py
keeps them for aiohttp's side): the target as sent less <strip_prefix>, `Host` as sent,
headers less hop-by-hop ones, `X-Forwarded-For`/`-Proto`/`-Host` from the connection,
`X-Forwarded-Prefix` when a prefix was stripped, the run's token; the answer's headers as
the child sent them (less hop-by-hop ones, redirects put back under the prefix) with the
request's `X-Request-Id`, and nothing added but a `Date` when the child sent none (as
RFC 9110 asks of a proxy) and, on a route with <cors>, the proxy's CORS headers in place
of the child's (cors.py). Only the framing is the client's own: the
child's length when it gave one, else chunks for HTTP/1.1 and the connection's end for
HTTP/1.0.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final, Protocol

from local_lambdas.cors import Policy
from local_lambdas.envelope import HOP_BY_HOP, TOKEN_HEADER
from local_lambdas.forwarding import (
    FROM_CLIENT_DROPPED,
    REDIRECTS,
    end_to_end,
    lowered,
    named_by,
    under_prefix,
)
from local_lambdas.http1 import NO_BODY
from local_lambdas.transports.exchange import Bare
from local_lambdas.tunnel import Tunnel

log = logging.getLogger("local_lambdas.relay")

Headers = list[tuple[str, str]]
# Hop-by-hop, and X-Request-Id: the proxy's, the request's id.
_FROM_CHILD_DROPPED: Final = HOP_BY_HOP | {"x-request-id"}


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
    chunked: bool = False,
) -> bytes:  # fmt: skip
    """The request's bytes for the child (HTTP/1.1, its connection kept alive); `headers`,
    the client's, `forwarded`; `upgrade`, the protocol the client asks to switch to
    (Upgrade and Connection are hop-by-hop: they are the proxy's to send again); `chunked`,
    a body that follows in chunks (the head only is returned, with its Transfer-Encoding)."""
    # The rules of passthrough.to_child, written out as lines: the lane's hot path makes
    # no list of pairs to join afterwards (6k instructions per request).
    lines, forwarded_for, host = headers
    client = client or ""
    forwarded_for = f"{forwarded_for}, {client}" if forwarded_for else client
    head = (
        f"{method} {target} HTTP/1.1\r\n{lines}X-Forwarded-For: {forwarded_for}\r\n"
        f"X-Forwarded-Proto: {scheme}\r\nX-Forwarded-Host: {host}\r\n"
        f"X-Request-Id: {request_id}\r\n"
    )
    if prefix:
        head += f"X-Forwarded-Prefix: {prefix}\r\n"
    if upgrade:
        head += f"Connection: Upgrade\r\nUpgrade: {upgrade}\r\n"
    if chunked:
        head += "Transfer-Encoding: chunked\r\n"
    data = f"{head}{TOKEN_HEADER}: {token}\r\n\r\n".encode("utf-8", "surrogateescape")
    return data + body if body else data


def answer_headers(
    headers: Headers, request_id: str, prefix: str | None,
    cors: tuple[Policy, str | None] | None, date: str | None = None,
) -> tuple[Headers, bool]:  # fmt: skip
    """The child's answer headers as the client gets them (see the module's docstring), and
    whether they give the body's length; the framing is the caller's. `date`, when given, is
    the Date an answer without one gets (RFC 9110 6.6.1: a proxy adds it; aiohttp's server
    does it itself)."""
    out: Headers = []
    length = False
    for lower, name, value in end_to_end(headers, _FROM_CHILD_DROPPED):
        if lower == "content-length":
            length = True
        elif lower == "date":
            date = None
        elif prefix and lower in REDIRECTS:
            value = under_prefix(lower, value, prefix)
        out.append((name, value))
    if date is not None:
        out.append(("Date", date))
    out.append(("X-Request-Id", request_id))
    if cors is not None:  # the proxy's CORS headers, not the child's
        policy, origin = cors
        out = policy.answer(origin, out)
    return out, length


class RelayedHeads:
    """The last relayed answer's head on one client connection, kept while the child
    repeats it (http1.AnswerHeads' idea, for pass-through): an answer whose status, reason
    and headers equal the last one's, byte for byte, to a request like the last (the same
    version, keep-alive, method kind, prefix and Date to add), is written from the kept text
    with its own X-Request-Id. Reckoning the head cost 14k instructions of a pass-through
    request's 85k. A child that changes a header on every answer (a Content-Length that
    varies, a fresh cookie) pays the full reckoning and the keeping (about 1k), as does
    each connection's first answer after its Date changes, once a second."""

    __slots__ = ("_after", "_before", "_date", "_head_only", "_headers", "_keep", "_lines",
                 "_prefix", "_reason", "_status", "_version", "at", "chunked", "keep_alive",
                 "out")  # fmt: skip

    def __init__(self) -> None:
        self._status = 0
        self._reason = self._version = ""
        self._headers: Headers = []
        self._keep = self._head_only = False
        self._prefix: str | None = None
        self._date: str | None = None
        self.out: Headers = []  # the headers written, the request's id at `at`
        self.at = 0
        self.chunked = self.keep_alive = False  # how the answer was framed, and what after
        self._lines: list[str] = []  # the head's lines, cut in two at the id when next used
        self._before = self._after = ""

    def fits(
        self, status: int, reason: str, headers: Headers, version: str, keep: bool,
        head_only: bool, prefix: str | None, date: str | None,
    ) -> bool:  # fmt: skip
        """Whether an answer is the kept one's twin (then `out`, `at`, `chunked` and
        `keep_alive` are its own, and `text` writes it)."""
        return (
            status == self._status and headers == self._headers and reason == self._reason
            and version == self._version and keep == self._keep
            and head_only == self._head_only and prefix == self._prefix and date == self._date
        )  # fmt: skip

    def text(self, request_id: str) -> str:
        if self._lines:  # the first time it is used
            at, lines = self.at + 1, self._lines  # (the status line comes first)
            self._before = "".join(lines[:at]) + "X-Request-Id: "
            self._after = "\r\n" + "".join(lines[at + 1 :])
            self._lines = []
        return f"{self._before}{request_id}{self._after}"

    def keep(
        self, status: int, reason: str, headers: Headers, version: str, keep: bool,
        head_only: bool, prefix: str | None, date: str | None, out: Headers, at: int,
        lines: list[str], chunked: bool, keep_alive: bool,
    ) -> None:  # fmt: skip
        """Keep an answer's head: what it was made from (`headers` a copy: trailers are
        added to the child's list), the headers written (`out`, the id at `at`), their
        `lines` and the framing chosen."""
        self._status, self._reason, self._headers, self._version = status, reason, headers, version
        self._keep, self._head_only, self._prefix, self._date = keep, head_only, prefix, date
        self.out, self.at, self._lines = out, at, lines
        self.chunked, self.keep_alive = chunked, keep_alive


class Client(Protocol):
    """The client's connection, as the answer writes to it."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    @property
    def writable(self) -> bool: ...

    def when_writable(self, then: Callable[[], None]) -> None: ...

    def adopt(self) -> tuple[asyncio.Transport, bytes] | None:
        """The client's connection, for a tunnel, with what the client sent after its
        request; None when the client has left."""

    def hold_reading(self, held: bool) -> None:
        """Stop (True) or go on (False) reading the client: an upload waits for the child."""


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
        self._to: Bare | None = None
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

    def start(self, exchange: Bare) -> None:
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


class Answer:
    """The child's answer, written to `client` as it comes (a Sink). After the exchange:
    `status` (0 when no head came), `headers` as sent, `kept` (the first `keep` bytes of the
    body, for the inspector) and `keep_alive` (whether the client's connection can go on)."""

    def __init__(
        self, client: Client, *, version: str, keep_alive: bool, request_id: str,
        prefix: str | None, keep: int, method: str, cors: tuple[Policy, str | None] | None = None,
        upload: Upload | None = None, date: str | None = None, heads: RelayedHeads | None = None,
    ) -> None:  # fmt: skip
        self._client = client
        self._heads = heads if cors is None else None  # (the CORS headers follow the origin)
        self._date = date  # for an answer without one
        self._version = version
        self.keep_alive = keep_alive
        self._request_id = request_id
        self._prefix = prefix
        self._room = keep
        self._kept: list[bytes] = []
        self._head_only = method == "HEAD"
        self._cors = cors
        self._upload = upload  # the request's body, when it streams
        self._chunked = False
        # What is written at the next flush (the end of a read of the child, or the answer's
        # end): a small answer read whole leaves in one write, not one for its head and one
        # for its body (a system call, and a TCP segment for the client to read, fewer).
        self._pending: list[bytes] = []
        self.status = 0
        self.headers: Headers = []
        self.tunnel: Tunnel | None = None  # after a 101

    @property
    def kept(self) -> bytes:
        return b"".join(self._kept)

    @property
    def writable(self) -> bool:
        return self._client.writable

    def when_writable(self, then: Callable[[], None]) -> None:
        self._client.when_writable(then)

    def head(self, status: int, reason: str, headers: Headers) -> None:
        if self._upload is not None and not self._upload.complete:
            self.keep_alive = False  # answered before the whole body came: the rest is unread
        request_id, heads, keep = self._request_id, self._heads, self.keep_alive
        version, head_only, prefix, date = self._version, self._head_only, self._prefix, self._date
        if heads is not None and heads.fits(
            status, reason, headers, version, keep, head_only, prefix, date
        ):
            out = heads.out.copy()
            out[heads.at] = ("X-Request-Id", request_id)
            self.status, self.headers = status, out
            self._chunked, self.keep_alive = heads.chunked, heads.keep_alive
            self._pending.append(heads.text(request_id).encode("utf-8", "surrogateescape"))
            return
        out, length = answer_headers(headers, request_id, self._prefix, self._cors, self._date)
        if status == 204 and length:  # RFC 9110 8.6: never on a 204 (aiohttp's side drops it)
            out = [(name, value) for name, value in out if name.lower() != "content-length"]
        at = len(out) - 1  # X-Request-Id's place (when no CORS headers are added)
        if not (length or self._head_only or status in NO_BODY):
            if self._version == "1.1":
                self._chunked = True
                out.append(("Transfer-Encoding", "chunked"))
            else:
                self.keep_alive = False  # HTTP/1.0: the end of the connection ends it
        if not self.keep_alive and self._version == "1.1":
            out.append(("Connection", "close"))
        elif self.keep_alive and self._version == "1.0":
            out.append(("Connection", "keep-alive"))
        self.status, self.headers = status, out
        lines = [f"HTTP/{self._version} {status} {reason}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in out)
        lines.append("\r\n")
        if heads is not None:
            heads.keep(status, reason, headers.copy(), version, keep, head_only, prefix, date,
                       out, at, lines, self._chunked, self.keep_alive)  # fmt: skip
        self._pending.append("".join(lines).encode("utf-8", "surrogateescape"))

    def body(self, data: bytes) -> None:
        if self._room > 0:
            piece = data[: self._room]
            self._kept.append(piece)
            self._room -= len(piece)
        if self._chunked:
            self._pending += (b"%x\r\n" % len(data), data, b"\r\n")
        else:
            self._pending.append(data)

    def end(self) -> None:
        if self._chunked:
            self._pending.append(b"0\r\n\r\n")
        self.flush()

    def flush(self) -> None:
        pending = self._pending
        if pending:
            self._pending = []
            self._client.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def upgraded(
        self, reason: str, headers: Headers, child: asyncio.Transport, rest: bytes
    ) -> None:
        """The child's 101 goes to the client as the child wrote it (X-Request-Id added), then
        the two connections are joined (tunnel.py)."""
        self.keep_alive = False
        client = self._client.adopt()
        if client is None:
            child.close()
            return
        transport, early = client
        self.status, self.headers = 101, [*headers, ("X-Request-Id", self._request_id)]
        lines = [f"HTTP/1.1 101 {reason}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
        lines.append("\r\n")
        transport.write("".join(lines).encode("utf-8", "surrogateescape"))
        self.tunnel = Tunnel(transport, child)
        self.tunnel.start(early, rest)

    def broken(self, why: str) -> None:
        log.warning("[%s] %s", self._request_id, why)
        self.keep_alive = False
        self.flush()  # what came first
        self._client.close()  # the client sees a short answer, an error, not an end

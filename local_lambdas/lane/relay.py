"""Pass-through in the fast lane (fastlane.py): the child's answer written to the client as it
comes (the Sink of transports/exchange.py); relay_request.py makes the request.

The rules are pass-through's (docs/protocol.md, "Pass-through"; transports/passthrough.py
keeps them for aiohttp's side): the answer's headers as the child sent them (less hop-by-hop
ones, redirects to the child put back under the proxy) with the request's `X-Request-Id`,
and nothing added but a `Date` when the child sent none (as RFC 9110 asks of a proxy) and,
on a route with <cors>, the proxy's CORS headers in place of the child's (cors.py). Only
the framing is the client's own: the child's length when it gave one, else chunks for
HTTP/1.1 and the connection's end for HTTP/1.0.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from local_lambdas.cors import Policy
from local_lambdas.envelope import HOP_BY_HOP
from local_lambdas.forwarding import REDIRECTS, Origin, cookie_put_back, end_to_end, put_back
from local_lambdas.lane.http1 import NO_BODY
from local_lambdas.lane.relay_request import Client, Headers, Upload
from local_lambdas.lane.tunnel import Tunnel

log = logging.getLogger("local_lambdas.relay")

# Hop-by-hop, and X-Request-Id: the proxy's, the request's id.
_FROM_CHILD_DROPPED: Final = HOP_BY_HOP | {"x-request-id"}


def answer_headers(
    headers: Headers, request_id: str, prefix: str | None, origin: Origin | None,
    cors: tuple[Policy, str | None] | None, date: str | None = None,
) -> tuple[Headers, bool]:  # fmt: skip
    """The child's answer headers as the client gets them (see the module's docstring), and
    whether they give the body's length; the framing is the caller's. `prefix` and `origin`
    are forwarding.put_back's. `date`, when given, is the Date an answer without one gets
    (RFC 9110 6.6.1: a proxy adds it; aiohttp's server does it itself)."""
    out: Headers = []
    length = False
    for lower, name, value in end_to_end(headers, _FROM_CHILD_DROPPED):
        if lower == "content-length":
            length = True
        elif lower == "date":
            date = None
        elif lower in REDIRECTS:
            value = put_back(lower, value, prefix, origin)
        elif prefix and lower == "set-cookie":
            value = cookie_put_back(value, prefix)
        out.append((name, value))
    if date is not None:
        out.append(("Date", date))
    out.append(("X-Request-Id", request_id))
    if cors is not None:  # the proxy's CORS headers, not the child's
        policy, asked_from = cors
        out = policy.answer(asked_from, out)
    return out, length


class RelayedHeads:
    """The last relayed answer's head on one client connection, kept while the child
    repeats it (answer_heads.AnswerHeads' idea, for pass-through): an answer whose status, reason
    and headers equal the last one's, byte for byte, to a request like the last (the same
    version, keep-alive, method kind, prefix, child and Date to add), is written from the kept text
    with its own X-Request-Id. Reckoning the head cost 14k instructions of a pass-through
    request's 85k. A child that changes a header on every answer (a Content-Length that
    varies, a fresh cookie) pays the full reckoning and the keeping (about 1k), as does
    each connection's first answer after its Date changes, once a second."""

    __slots__ = ("_after", "_before", "_date", "_head_only", "_headers", "_keep", "_lines",
                 "_origin", "_prefix", "_reason", "_status", "_version", "at", "chunked",
                 "keep_alive",
                 "out")  # fmt: skip

    def __init__(self) -> None:
        self._status = 0
        self._reason = self._version = ""
        self._headers: Headers = []
        self._keep = self._head_only = False
        self._prefix: str | None = None
        self._origin: Origin | None = None
        self._date: str | None = None
        self.out: Headers = []  # the headers written, the request's id at `at`
        self.at = 0
        self.chunked = self.keep_alive = False  # how the answer was framed, and what after
        self._lines: list[str] = []  # the head's lines, cut in two at the id when next used
        self._before = self._after = ""

    def fits(
        self, status: int, reason: str, headers: Headers, version: str, keep: bool,
        head_only: bool, prefix: str | None, origin: Origin | None, date: str | None,
    ) -> bool:  # fmt: skip
        """Whether an answer is the kept one's twin (then `out`, `at`, `chunked` and
        `keep_alive` are its own, and `text` writes it)."""
        return (
            status == self._status and headers == self._headers and reason == self._reason
            and version == self._version and keep == self._keep
            and head_only == self._head_only and prefix == self._prefix
            and origin == self._origin and date == self._date
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
        head_only: bool, prefix: str | None, origin: Origin | None, date: str | None,
        out: Headers, at: int,
        lines: list[str], chunked: bool, keep_alive: bool,
    ) -> None:  # fmt: skip
        """Keep an answer's head: what it was made from (`headers` a copy: trailers are
        added to the child's list), the headers written (`out`, the id at `at`), their
        `lines` and the framing chosen."""
        self._status, self._reason, self._headers, self._version = status, reason, headers, version
        self._keep, self._head_only, self._prefix, self._date = keep, head_only, prefix, date
        self._origin = origin
        self.out, self.at, self._lines = out, at, lines
        self.chunked, self.keep_alive = chunked, keep_alive


class Answer:
    """The child's answer, written to `client` as it comes (a Sink). After the exchange:
    `status` (0 when no head came), `headers` as sent, `kept` (the first `keep` bytes of the
    body, for the inspector) and `keep_alive` (whether the client's connection can go on)."""

    def __init__(
        self, client: Client, *, process: str, version: str, keep_alive: bool, request_id: str,
        prefix: str | None, keep: int, method: str, cors: tuple[Policy, str | None] | None = None,
        upload: Upload | None = None, date: str | None = None, heads: RelayedHeads | None = None,
    ) -> None:  # fmt: skip
        self._client = client
        self._heads = heads if cors is None else None  # (the CORS headers follow the origin)
        self._date = date  # for an answer without one
        self._version = version
        self.keep_alive = keep_alive
        self._request_id = request_id
        self._process = process  # as the log names it
        self._prefix = prefix
        self.origin: Origin | None = None  # the child's address, once it is chosen
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
        origin = self.origin
        if heads is not None and heads.fits(
            status, reason, headers, version, keep, head_only, prefix, origin, date
        ):
            out = heads.out.copy()
            out[heads.at] = ("X-Request-Id", request_id)
            self.status, self.headers = status, out
            self._chunked, self.keep_alive = heads.chunked, heads.keep_alive
            self._pending.append(heads.text(request_id).encode("utf-8", "surrogateescape"))
            return
        out, length = answer_headers(headers, request_id, prefix, origin, self._cors, date)
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
            heads.keep(status, reason, headers.copy(), version, keep, head_only, prefix,
                       origin, date, out, at, lines, self._chunked, self.keep_alive)  # fmt: skip
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
        transport, early, half_closed = client
        self.status, self.headers = 101, [*headers, ("X-Request-Id", self._request_id)]
        lines = [f"HTTP/1.1 101 {reason}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
        lines.append("\r\n")
        transport.write("".join(lines).encode("utf-8", "surrogateescape"))
        self.tunnel = Tunnel(transport, child)
        self.tunnel.start(early, rest, client_done=half_closed)

    def broken(self, why: str) -> None:
        log.warning("%s: [%s] %s", self._process, self._request_id, why)
        self.keep_alive = False
        self.flush()  # what came first
        self._client.close()  # the client sees a short answer, an error, not an end

"""HTTP/1.x request heads as the fast lane reads them (fastlane.py): functions and a small
per-connection object over strings and bytes, no I/O, table-tested (tests/units/test_lane_heads.py);
the lane's Protocol only drives them.

`head_end` finds a request head in what a connection received. `HeadReader` reads a head
llhttp has already judged with one decode and a split, which costs a fifth of what a Python
callback per header did, says whether the lane can read it, and keeps what it made for the
connection's next head, which is usually the same (message.lane_takes says whether
the lane answers it once routed). The heads of the lane's own answers are answer_heads.py's.
"""

from __future__ import annotations

from typing import Any, Final

from local_lambdas.config import Fate
from local_lambdas.head_rules import (
    MAX_HEAD,
    bad_header_line,
    bare_line_end,
    never_a_request,
    odd_request_line,
    request_line_fault,
    valid_host,
)

# An Enum's members are read through its class's __getattr__ (800 instructions each, from
# compiled code): the hot path compares with these C-level constants instead.
# (Other module-level names here are Final for the same reason: a C constant, not a lookup.)
RELAY: Final = Fate.RELAY
ENVELOPE: Final = Fate.ENVELOPE
NO_ROUTE: Final = Fate.NO_ROUTE
MOVED: Final = Fate.MOVED
NOT_ALLOWED: Final = Fate.NOT_ALLOWED
PREFLIGHT: Final = Fate.PREFLIGHT
MAX_HEADERS: Final = 128  # aiohttp's default
# Request headers that decide whether the lane takes a request, by their lower-case names.
_NOTED: Final = frozenset({"host", "x-request-id", "content-length", "transfer-encoding",
                    "expect", "upgrade", "connection", "origin",
                    "access-control-request-method"})  # fmt: skip
# Header names as clients usually spell them (Title-Case, or lower-case), each with its
# lower-case form when it is one of _NOTED, else "": the usual header costs one lookup,
# not a lower() and a set lookup of a new string (browsers send a dozen).
_SPELT: Final = {
    spelt: (lower if lower in _NOTED else "")
    for lower in (*_NOTED, "user-agent", "accept", "accept-encoding", "accept-language",
                  "cookie", "referer", "cache-control", "pragma", "content-type",
                  "authorization", "if-none-match", "if-modified-since", "sec-fetch-site",
                  "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user", "sec-ch-ua",
                  "sec-ch-ua-mobile", "sec-ch-ua-platform", "upgrade-insecure-requests",
                  "dnt", "priority", "x-forwarded-for", "x-requested-with", "keep-alive")
    for spelt in (lower, "-".join(part.capitalize() for part in lower.split("-")))
}  # fmt: skip
NO_BODY: Final = frozenset({204, 304})  # statuses whose answers have no body
# What the access log, the statistics and the inspector give a request whose client left
# before its answer went out: nginx's "client closed request".
CLIENT_CLOSED: Final = 499
# Methods that nginx retries on another attempt when nothing came back: safe to send twice.
RETRYABLE: Final = frozenset({"GET", "HEAD", "OPTIONS"})


# A request head the lane takes: method, target (as sent: an origin-form path and query),
# version ("1.1" or "1.0"), headers (names as the client spelt them), the _NOTED ones by
# lower-case name (Connection lines joined), the body's length (Content-Length), and whether
# the connection stays open after the answer. A tuple, not an object: this is made for every
# request, and a class's __init__ is one more Python call.
Head = tuple[str, str, str, list[tuple[str, str]], dict[str, str], int, bool]


_Fields = tuple[tuple[tuple[str, str], ...], dict[str, str], int, str, bool]


class HeadReader:
    """Reads the request heads of one connection: the head, or None when the lane leaves it
    to aiohttp's parser (another version, a second Host or Content-Length, a body not sent
    with Content-Length, a target that is not a path, HTTP/1.1 without Host, an odd request
    line llhttp lets through: runs of spaces, empty lines first). An upgrade or an Expect is
    the caller's to judge (among the noted headers). Every head has passed llhttp, which
    judges it strictly (CRLF line ends only, no obs-fold, token names, no control characters
    in values), so one decode and a split read it.

    A client sends the same header block request after request on a kept-alive connection
    (a page's fetches, an HTTP library's session, a load generator): the last block read is
    kept with what was read from it, and a head whose block is the same, byte for byte, has
    only its request line read (HPACK's idea, for HTTP/1.1): with ab's four headers, 3.5k
    instructions where a whole reading costs 15k. Of a block that differs, the lines that
    begin and end it as they began and ended the last one (every header but a changing
    cookie or trace id, as a browser's fetches send them) are taken as they were read then,
    and only the lines between are split and read: with Chromium's fifteen headers, one of
    them changing on every request, a head costs about 18k instructions (PERFORMANCE.md)
    where reading every line took 41.7k."""

    __slots__ = ("_fields", "_headers", "_lowers", "_noted", "_starts", "_text", "block")

    def __init__(self) -> None:
        # The last block read (from the request line's CRLF to the end): the same object
        # while the connection repeats it, for what its reader derives from it (relay_request.py).
        self.block = ""
        # What was read from it: the headers, the noted ones, the body's length, and whether
        # the connection stays open after a request of that version.
        self._fields: _Fields = ((), {}, 0, "", False)
        # The last block read whole, where each of its header lines starts (each with the
        # CRLF before it; then where the empty line's starts), the header read from each,
        # each one's noted lower-case name ("" for a name the lane does not look at), and
        # the noted headers. (The headers typed Any: mypyc would make each a new tuple where
        # it is stored or read.)
        self._text = "\r\n\r\n"  # (a block without header lines)
        self._starts: list[int] = [0]
        self._headers: list[Any] = []
        self._lowers: list[str] = []
        self._noted: dict[str, str] = {}

    def read(self, head: bytes) -> Head | None:
        text = head.decode("utf-8", "surrogateescape")
        line_end = text.find("\r\n")
        request_line = text[:line_end].split(" ")
        if len(request_line) != 3 or text[0] == "\n":  # (an empty line first: LF alone)
            return None
        method, target, version = request_line
        # (llhttp also takes RTSP/1.0 and HTTP/2.0; the absolute form is aiohttp's.)
        if version not in ("HTTP/1.1", "HTTP/1.0") or not target.startswith("/"):
            return None
        version = version[5:]
        block = self.block
        if len(text) - line_end == len(block) and text.endswith(block):
            kept, noted, length, kept_version, keep = self._fields
            headers = list(kept)  # the caller's to extend (Host, X-Request-Id)
            if version != kept_version:
                keep = keep_alive(version, noted.get("connection"))
        else:
            block = text[line_end:]
            fields = self._read_fields(block)
            if fields is None:
                return None
            headers, noted = fields
            given = noted.get("content-length")
            length = 0 if given is None else int(given)
            keep = keep_alive(version, noted.get("connection"))
            self.block = block
            self._fields = (tuple(headers), noted, length, version, keep)
        if version == "1.1" and "host" not in noted:
            return None
        return method, target, version, headers, noted, length, keep

    def _read_fields(self, block: str) -> tuple[list[tuple[str, str]], dict[str, str]] | None:
        """The header lines of a head (from its request line's CRLF to its empty line): the
        headers as spelt, and the _NOTED ones by lower-case name (Connection lines joined);
        None for more than MAX_HEADERS, a second Host or Content-Length, a Host that is no
        host, or Transfer-Encoding. The noted dict is kept for the connection's next head:
        read it, never change it. The lines that begin and end the block as they began and ended the
        last one are taken as they were read then (found by halving, a comparison of text
        each time); only the lines between are split and read."""
        old, starts = self._text, self._starts
        count = len(starts) - 1
        # The most first lines of the last block that begin this one, each a whole line.
        first, most = 0, count
        while first < most:
            k = (first + most + 1) // 2
            n = starts[k]
            if block.startswith(old[:n]) and len(block) > n and block[n] == "\r":
                first = k
            else:
                most = k - 1
        at = starts[first]
        # The most last lines (each begins with its CRLF: a line's start) that end it.
        fewest, rest = first, count
        while fewest < rest:
            k = (fewest + rest) // 2
            tail = old[starts[k] :]
            if len(block) - len(tail) >= at and block.endswith(tail):
                rest = k
            else:
                fewest = k + 1
        stop = len(block) - (len(old) - starts[rest])
        middle: list[int] = []
        headers: list[Any] = []
        lowers: list[str] = []
        if stop > at:
            for line in block[at + 2 : stop].split("\r\n"):
                at += 2 + len(line)
                middle.append(at)
                name, _, value = line.partition(":")
                found = _SPELT.get(name)
                if found is None:
                    found = name.lower()
                    if found not in _NOTED:
                        found = ""
                lowers.append(found)
                headers.append((name, value.strip(" \t")))
        if first + len(headers) + count - rest > MAX_HEADERS:
            return None
        # The noted headers are the last block's while no noted line came or went.
        same_noted = count and not "".join(lowers) and not "".join(self._lowers[first:rest])
        if first or rest < count:
            kept_headers, kept_lowers = self._headers, self._lowers
            headers, middle_headers = kept_headers[:first], headers
            headers.extend(middle_headers)
            lowers, middle_lowers = kept_lowers[:first], lowers
            lowers.extend(middle_lowers)
            if rest < count:
                headers.extend(kept_headers[rest:])
                lowers.extend(kept_lowers[rest:])
        noted = self._noted if same_noted else _noted(headers, lowers)
        if noted is None:
            return None
        new_starts = starts[: first + 1]
        new_starts.extend(middle)
        if rest < count:
            shift = stop - starts[rest]
            new_starts.extend([start + shift for start in starts[rest + 1 :]])
        self._text, self._starts = block, new_starts
        self._headers, self._lowers, self._noted = headers, lowers, noted
        if "transfer-encoding" in noted:
            return None
        return headers.copy(), noted  # (the caller's to extend; ours kept for the next block)


def _noted(headers: list[Any], lowers: list[str]) -> dict[str, str] | None:
    """The noted headers by lower-case name, Connection lines joined; None for a second
    Host, Content-Length or other noted name, or a Host nginx refuses (aiohttp's side
    judges those)."""
    noted: dict[str, str] = {}
    for at in range(len(lowers)):
        lower = lowers[at]
        if not lower:  # a name the lane does not look at
            continue
        value: str = headers[at][1]
        if lower not in noted:
            noted[lower] = value
        elif lower == "connection":  # every Connection line is one list
            noted[lower] += "," + value
        else:
            return None
    host = noted.get("host")
    if host is not None and not valid_host(host):
        return None  # aiohttp's side answers it
    return noted


# head_end's answers when no whole head is there to read:
WAIT: Final = 0
HAND_OVER: Final = -1


def head_end(buffer: bytes | bytearray) -> int:
    """Where the head at the start of `buffer` ends (after its empty line); WAIT while more
    may complete it; HAND_OVER when the lane must not wait for it: longer than MAX_HEAD, a
    line ended by a bare LF (or a CR alone), which would never end it here, a start that
    can never be a request, a request line refused or of an odd shape, or a header line
    llhttp refuses, whole or as far as it came (aiohttp's parser judges these at once)."""
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end != -1:
        return end + 4
    if (
        len(buffer) > MAX_HEAD or bare_line_end(buffer) or never_a_request(buffer)
        or request_line_fault(buffer) is not None or odd_request_line(buffer)
        or bad_header_line(buffer)
    ):  # fmt: skip
        return HAND_OVER
    return WAIT


def keep_alive(version: str, connection: str | None) -> bool:
    """RFC 9112 9.3 (llhttp's own answer is gone once a bodiless message is complete)."""
    if connection is None:
        return version == "1.1"
    said = connection.lower()
    if said == "keep-alive" or said == "close":  # a single token, as clients send it
        return said == "keep-alive"
    tokens = {token.strip() for token in said.split(",")}
    return "keep-alive" in tokens if version == "1.0" else "close" not in tokens

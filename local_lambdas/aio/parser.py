"""aiohttp's request parser held to the rules the fast lane keeps (lane/requests.py), for
aiohttp's server (server.py): fed a head at a time so that requests that came whole before
garbage in the same read are answered first; a method llhttp was not built with goes through
(as GET, given back its own); HTTP versions other than 1.0 and 1.1 are 505, a Host that is no
host 400, a Transfer-Encoding other than `chunked` alone 501, a target over MAX_TARGET bytes
414, a header over MAX_FIELD or more than MAX_HEADERS headers 431, a target's raw UTF-8
percent-encoded, a request line judged as soon as it is whole, and each refusal told in one
line of words (llhttp's where they are clear); an HTTP/1.0 request with a Transfer-Encoding
is 400 (RFC 9112 section 6.1: faulty framing), as nginx answers it.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError, InvalidURLError, LineTooLong
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import _ErrInfo

from local_lambdas.head_rules import (
    EXTENSION_METHOD,
    LONGEST_METHOD,
    as_http11,
    request_line_fault,
    valid_host,
    with_target_escaped,
)
from local_lambdas.lane.http1 import MAX_HEADERS

MAX_TARGET, MAX_FIELD = 8191, 8190  # bytes in a request's target; in a header's name or value

_CRLF2 = b"\r\n\r\n"
_SERVED = frozenset({(1, 0), (1, 1)})  # HTTP versions; others are 505, as nginx answers
# A head's start that may be the beginning of a method: held until the method is whole.
_METHOD_SO_FAR = re.compile(rb"(?:\r\n)?[A-Z_-]{0,%d}" % LONGEST_METHOD)

# The HTTP methods aiohttp's llhttp is built with (each checked; httptools' llhttp takes
# RTSP's too, PLAY or SETUP, which aiohttp's refuses): any other goes through as GET.
_LLHTTP_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH "
    b"SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY "
    b"SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY PRI".split()
)


class HeadParser:
    """aiohttp's request parser, fed a head at a time so that a parse error keeps the
    requests completed before it; everything else is the parser's own."""

    def __init__(self, parser: Any) -> None:
        self._parser = parser
        self._failed = False
        self.body_awaited = False  # the last feed read a head whose body has not come whole
        # What came of the next head, not yet whole; None while a body may come first.
        self._head: bytes | None = b""
        self._held = b""  # a head's first bytes, its method not yet whole (_stand_in)
        self._body: Any = None  # the body of the last request, while it is still to come
        # Each read is cut where a message ends, so that what follows is judged as a head's
        # start: at a Content-Length body's end (the bytes of it still to come), and at
        # each CRLF CRLF, which ends a head and a chunked body, one begun in the last read
        # (its last bytes, up to 3, while no cut ends it) included.
        self._left = 0
        self._ending = b""
        self._method: str | None = None  # the next head's, if GET stands in for it

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    @property
    def body_to_come(self) -> bool:
        """Whether the last request's body has not come whole."""
        return self._body is not None and not self._body.is_eof()

    def feed_data(self, data: bytes) -> tuple[Any, bool, bytes]:
        if self._failed:
            return (), False, b""
        if self._held:
            data, self._held = self._held + data, b""
        messages: list[Any] = []
        start, size = 0, len(data)
        upgraded, tail, piece = False, b"", data
        try:
            while True:
                end, cut = self._piece_end(data, start)
                piece = data if start == 0 and end == size else data[start:end]
                if self._body is not None and self._body.is_eof():  # it came whole since
                    self._head, self._body = b"", None
                if self._head == b"":  # a head's start
                    if _METHOD_SO_FAR.fullmatch(piece):
                        self._held = piece  # the method may go on in the next read
                        break
                    piece, self._method = _stand_in(piece)
                piece = self._judge_request_line(piece)
                self._ending = b"" if cut else (self._ending + piece)[-3:]
                found, upgraded, tail = self._parser.feed_data(piece)
                if found:  # (a piece ends at its head's end: the next starts the next)
                    message, body = found[-1]
                    self._head, self._body = (b"", None) if body.is_eof() else (None, body)
                    if not body.is_eof() and "Transfer-Encoding" not in message.headers:
                        self._left = int(message.headers.get("Content-Length") or 0)
                    if self._method is not None:  # the head's own method, in place of GET
                        found[0] = (found[0][0]._replace(method=self._method), found[0][1])
                        self._method = None
                for item in found:
                    version = item[0].version
                    if version not in _SERVED:  # llhttp takes HTTP/0.9 and 2.0 lines too
                        raise HttpProcessingError(
                            code=505,
                            message=f"HTTP/{version[0]}.{version[1]} is not served here: "
                            "send HTTP/1.1 or HTTP/1.0",
                        )
                    host = item[0].headers.get("Host")
                    if host is not None and not valid_host(host):
                        raise HttpProcessingError(
                            code=400, message=f"the Host header {host[:100]!r} is not a host"
                        )
                    coding = item[0].headers.get("Transfer-Encoding")
                    if coding is not None and version < (1, 1):
                        # RFC 9112 6.1: its framing is faulty (a smuggler's way): nginx's 400.
                        raise HttpProcessingError(
                            code=400,
                            message="Transfer-Encoding in an HTTP/1.0 request, which has "
                            "none: send HTTP/1.1, or the body with a Content-Length",
                        )
                    if coding is not None and coding.strip().lower() != "chunked":
                        # Dechunked, a gzip-coded body would go on unmarked: nginx's 501.
                        raise HttpProcessingError(
                            code=501,
                            message=f"Transfer-Encoding {coding[:100]!r} is not supported: "
                            "send the body chunked alone, or with a Content-Length",
                        )
                    messages.append(item)
                    self.body_awaited = not item[1].is_eof()
                if upgraded:
                    tail += data[end:]
                    break
                start = end
                if start >= size:
                    break
        except HttpProcessingError as exc:
            # A message whose body was still arriving is broken too: it gets the 400, not
            # a handler that would wait for the rest of its body for ever.
            while messages and not messages[-1][1].is_eof():
                messages.pop()
            self._failed = True
            status, message = _plainly(exc, piece)
            body, self._body = self._body, None  # nothing more comes for it
            if (
                body is not None
                and not body.is_eof()
                and not any(payload is body for _, payload in messages)
            ):  # a body begun in an earlier read: its handler, reading it, gets the 400 now
                body.set_exception(HttpProcessingError(code=status, message=message))
                body.feed_eof()  # and nothing is read of it after the answer (aiohttp's linger)
            messages.append((_ErrInfo(status=status, exc=exc, message=message), EMPTY_PAYLOAD))
        return messages, upgraded, tail

    def _piece_end(self, data: bytes, start: int) -> tuple[int, bool]:
        """Where the next piece of `data` from `start` ends, and whether a message's end or a
        CRLF CRLF is there (else the read's end): up to a Content-Length body's end, never
        past it; else up to the next CRLF CRLF, one the last read began included (one
        parser call for the usual read)."""
        size = len(data)
        if self._left:
            end = min(start + self._left, size)
            self._left -= end - start
            return end, self._left == 0
        if start == 0 and self._ending:
            for begun in (3, 2, 1):
                if self._ending.endswith(_CRLF2[:begun]) and data.startswith(_CRLF2[begun:]):
                    return 4 - begun, True
        end = data.find(_CRLF2, start)
        return (size, False) if end == -1 else (end + 4, True)

    def _judge_request_line(self, piece: bytes) -> bytes:
        """Judge a head's request line once it is whole (head_rules.request_line_fault), before
        its headers come: an HTTP/0.9 request is whole at its line's end, and nginx answers
        another version or protocol at once, not after the header timeout. Only for what
        follows a message without a body to come (else `piece` may hold some of it). `piece`
        is returned as the parser is to read it: a later HTTP/1 version as 1.1 (as_http11),
        a target's bytes over 0x7f percent-encoded (with_target_escaped)."""
        if self._head is not None and len(self._head) <= MAX_TARGET:
            piece = as_http11(piece, self._head + piece)
            piece = with_target_escaped(piece, self._head + piece)
            self._head += piece
            fault = request_line_fault(self._head)
            if fault is not None:
                raise HttpProcessingError(code=fault[0], message=fault[1])
            if b"\r\n" in self._head.lstrip(b"\r\n"):
                self._head = None  # the line is whole, and served: the parser judges the rest
        return piece


def _plainly(exc: HttpProcessingError, head: bytes) -> tuple[int, str]:
    """The status and the one line a client is told for a head aiohttp's parser refused
    (`head`: the part of it read last), in words for it where llhttp's are not: its
    own status for what is not served (501, 505), 414 or 431 for what is too long, else 400."""
    said = exc.message
    if isinstance(exc, LineTooLong):
        if exc.args[1] == MAX_TARGET:
            return 414, f"the request target is over {MAX_TARGET} bytes"
        return 431, _long_header(head)
    if said == "Too many headers received":
        return 431, f"the request has more than {MAX_HEADERS} headers"
    if isinstance(exc, InvalidURLError) and "\n" not in said:  # the target alone, as given
        return 400, f"the request target {said[:100]!r} is not a path"
    # llhttp's words for a coding alone (with b''), and for one after chunked (with the line)
    if said.startswith(("Request has invalid `Transfer-Encoding`", "Invalid `Transfer-Encoding`")):
        codings = [m[1].strip().decode("latin-1") for m in _TRANSFER_ENCODING.finditer(head)]
        named = repr(", ".join(codings)[:100]) if codings else "given"
        if [c.strip().lower() for c in ",".join(codings).split(",")].count("chunked") > 1:
            return 400, f"the Transfer-Encoding {named} applies chunked more than once"
        return 400, f"the Transfer-Encoding {named} does not end in chunked: its body has no end"
    fault = _HEADER_FAULTS.get(said.partition(":")[0])
    if fault is not None:
        quoted = said.splitlines()[2:3]  # llhttp's: the bytes around the fault, as b'...'
        try:
            around = ast.literal_eval(quoted[0].strip()) if quoted else b""
        except (SyntaxError, ValueError):
            around = b""
        line = around.split(b"\n")[0].split(b"\r")[0] if isinstance(around, bytes) else b""
        return 400, fault.format(line=repr(line.decode("latin-1"))[:100])
    if said.startswith("Bad status line"):  # (aiohttp's name for a request line too)
        line, ended, _ = head.lstrip(b"\r\n").partition(b"\n")
        parts = line.removesuffix(b"\r").split(b" ")
        if ended and not line.endswith(b"\r"):
            return 400, "the request line ends in a bare LF: end each line of a head with CRLF"
        if len(parts) > 3 and b"" in parts:
            return 400, "the request line has a space too many: one between method, target, version"
        if len(parts) > 3:
            return 400, "the request line has more than three parts: a space in a target is %20"
        detail = (said.splitlines()[1:] or [said])[0].strip(" :")
        return 400, f"bad request line: {detail[:1].lower()}{detail[1:]}"
    return (exc.code if exc.code in (501, 505) else 400), said


# llhttp's words for a header line it refuses, and the client's in their place.
_HEADER_FAULTS = {
    "Missing expected CR after header value": (
        "the header line {line} ends in a bare LF: end each line of a head with CRLF"
    ),
    "Missing expected LF after header value": (
        "the header line {line} ends in a CR alone: end each line of a head with CRLF"
    ),
    "Invalid header token": (
        "the header line {line} has no valid name (letters, digits and !#$%&'*+-.^_`|~, "
        "the colon right after it)"
    ),
    "Invalid header value char": "the header line {line} holds a control character",
}
_TRANSFER_ENCODING = re.compile(rb"\r\ntransfer-encoding:([^\r\n]*)", re.IGNORECASE)
_NAMED_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):")


def _long_header(head: bytes) -> str:
    """The 431's words for a header line over MAX_FIELD bytes in `head` (the part of the
    head read last): its name where the part holds it; a Cookie header's with its likely
    cause, since every local app's cookies for localhost go to each of them."""
    for line in head.split(b"\n"):
        named = _NAMED_LINE.match(line) if len(line) > MAX_FIELD else None
        if named is not None:
            name, size = named[1].decode("ascii"), len(line.rstrip(b"\r"))
            said = f"the {name} header is {size:,} bytes, over the limit of {MAX_FIELD:,}"
            if name.lower() == "cookie":
                said += (": the browser holds too many cookies for this host (each app on "
                         "localhost adds its own); clear them")  # fmt: skip
            return said
    return f"a request header is over {MAX_FIELD} bytes"


def _stand_in(piece: bytes) -> tuple[bytes, str | None]:
    """`piece`, a head's first bytes, with GET in place of an upper-case method llhttp was
    not built with, and that method; `piece` and None for any other. The head is judged and
    its body counted alike whatever the method (CONNECT, which differs, llhttp knows)."""
    start = len(piece) - len(piece.lstrip(b"\r\n"))
    space = piece.find(b" ", start)
    method = bytes(piece[start:space])  # (Windows' proactor reads into a bytearray)
    if space <= start or method in _LLHTTP_METHODS or not EXTENSION_METHOD.fullmatch(method):
        return piece, None
    return piece[:start] + b"GET" + piece[space:], method.decode("ascii")

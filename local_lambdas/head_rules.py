"""What both servers judge of a request head before reading it, as nginx judges it (the fast
lane, http1.head_end and lane/requests.py; aiohttp's side, aio/parser.py): a line ended by a
bare LF or a CR alone, a start that can never be a request (a TLS handshake on the plain
port), a request line of another HTTP version or protocol (505 or 400, at the line's end), a
request line or a header line llhttp refuses (handed to aiohttp's parser as soon as what came
of it tells), a second Host or Content-Length, a method beyond llhttp's, a Host that is no
host, a later HTTP/1 minor version (read as 1.1), a target's bytes over 0x7f
(percent-encoded). Pure functions over bytes, table-tested.
"""

from __future__ import annotations

import re
from typing import Final

MAX_HEAD: Final = 8190  # aiohttp's own line limit: a longer head is aiohttp's to judge (or refuse)


def bare_line_end(buffer: bytes | bytearray) -> bool:
    """Whether a line in `buffer` ends in LF alone, or a CR stands without its LF (one at the
    very end may still get its LF)."""
    crlf = buffer.count(b"\r\n")
    cr = buffer.count(b"\r") - (1 if buffer.endswith(b"\r") else 0)
    return buffer.count(b"\n") != crlf or cr != crlf


_TOKEN: Final = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# llhttp's longest method is 11 characters (UNSUBSCRIBE); aiohttp's Python parser, any token.
LONGEST_METHOD: Final = 24
# A method as nginx takes it: upper-case letters, "_" and "-" (RFC 9110 allows any token);
# llhttp knows some of them, and both servers take the others too (lane/requests.py, aio/parser.py).
EXTENSION_METHOD: Final = re.compile(rb"[A-Z_-]+")
_METHOD_CHARACTERS: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-"


def never_a_request(buffer: bytes | bytearray) -> bool:
    """Whether the start of a head in `buffer` can never become a request: its method (after
    any empty lines) is empty, holds other than what a method served here may
    (EXTENSION_METHOD's characters: `get`, `hello` or `M1` never is, by either server) or
    runs longer than any method. A TLS handshake, binary or text sent to the plain-HTTP
    port is then judged at once (aiohttp's parser answers 400, as nginx does), not left to
    wait for a head's end until the header timeout."""
    start = bytes(buffer[: LONGEST_METHOD + 8]).lstrip(b"\r\n")
    method, space, _ = start.partition(b" ")
    too_long = len(method) > LONGEST_METHOD or (not space and len(start) > LONGEST_METHOD)
    no_method = bool(space) and not method  # (a space first)
    return too_long or no_method or bool(method.translate(None, _METHOD_CHARACTERS))


# A request line's end with a later minor version of HTTP/1 than 1.1 (RFC 9112's versions are
# one digit each), before its CR, or at the end of what came so far of the line.
_LATER_MINOR: Final = re.compile(rb" HTTP/1\.[2-9]\r?$")


def _later_minor(head: bytes | bytearray) -> int:
    """Where the minor version's digit is in the request line that starts `head` (whole or
    not, after any empty lines) when it names HTTP/1.2 to 1.9, else -1. RFC 9110 2.5 has such
    a request read as the highest minor version served, HTTP/1.1, and nginx reads it so;
    llhttp refuses it: both servers put 1 in its place before llhttp reads it."""
    start, end = _request_line(head)
    found = _LATER_MINOR.search(head, start, end)
    return -1 if found is None else found.start() + 8


def _request_line(head: bytes | bytearray) -> tuple[int, int]:
    """Where the request line that starts `head` (after any empty lines) begins, and where
    it ends: its LF, or the end of what came so far."""
    lead = bytes(head[:MAX_HEAD])
    start = len(lead) - len(lead.lstrip(b"\r\n"))
    end = head.find(b"\n", start)
    return start, len(head) if end == -1 else end


_CONTROL: Final = re.compile(rb"[\x00-\x1f\x7f]")


def odd_request_line(head: bytes | bytearray) -> bool:
    """Whether the request line that starts `head` (after any empty lines) holds a control
    character, is whole and not method, target and version between single spaces (runs
    of spaces, a space in the target), or is not whole and can no longer become such a line
    with a target and a version served here (_may_become): aiohttp's parser judges it at
    once, 400 as nginx answers most of them (runs of spaces it takes, and waits for the rest
    of the head; a target or a version it cannot read, it refuses as its byte comes)."""
    start, end = _request_line(head)
    line = bytes(head[start:end]).removesuffix(b"\r")
    if _CONTROL.search(line):
        return True
    parts = line.split(b" ")
    if end == len(head):  # not whole yet
        return not _may_become(parts)
    return len(parts) != 3 or not all(parts)


_VERSION_SHAPE: Final = re.compile(rb"HTTP/[0-9]\.[0-9]")  # (505 or served: request_line_fault)
_URLS: Final = (b"http://", b"https://")


def _may_become(parts: list[bytes]) -> bool:
    """Whether the fields of a request line not yet whole, split at its spaces, may still
    become method, target and version between single spaces, the target a path, `*` or an
    http(s) URL, the version HTTP/ and two digits (what is not is 400 once whole:
    request_line_fault, odd_request_line). The method is never_a_request's to judge."""
    if len(parts) > 3 or not all(parts[:-1]):
        return False  # a space too many, or a run of them
    target = parts[1][:8].lower() if len(parts) > 1 else b""  # ("" so far: any one's start)
    if target[:1] not in b"/*" and not any(
        url.startswith(target) or target.startswith(url) for url in _URLS
    ):
        return False
    # The version so far, its rest as HTTP/0.0's: "HTTP/1." may become one, "HTT/" never.
    version = parts[2] if len(parts) > 2 else b""
    return _VERSION_SHAPE.fullmatch(version + b"HTTP/0.0"[len(version) :]) is not None


# A header line as llhttp takes it: a token, a colon, then a value without control characters
# but tabs (obs-text, bytes over 0x7f, allowed).
_HEADER_LINE: Final = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*")


def bad_header_line(head: bytes | bytearray) -> bool:
    """Whether a header line of `head` is not one llhttp takes (no colon, a name that is no
    token, a control character), whole (its CRLF here) or as far as it came, or is a second
    Host or Content-Length: aiohttp's parser then judges the head at once, 400 as nginx
    answers at that line's end (one it cannot read, nginx passes over), the rest not
    awaited."""
    _, end = _request_line(head)
    *lines, coming = bytes(head[end + 1 :]).split(b"\r\n")
    if any(not _HEADER_LINE.fullmatch(line) for line in lines):
        return True
    names = [line.partition(b":")[0].lower() for line in lines]
    if names.count(b"host") > 1 or names.count(b"content-length") > 1:
        return True
    so_far = coming.removesuffix(b"\r")  # (what may yet end the head)
    return bool(so_far) and not _HEADER_LINE.fullmatch(so_far if b":" in so_far else so_far + b":")


def as_http11(piece: bytes, head: bytes | bytearray) -> bytes:
    """`piece`, the last bytes of `head` so far, with 1 in place of a later HTTP/1 minor
    version's digit in it (_later_minor)."""
    at = _later_minor(head) - (len(head) - len(piece))
    return piece if at < 0 else piece[:at] + b"1" + piece[at + 1 :]


_HIGH_BYTE: Final = re.compile(rb"[\x80-\xff]")


def with_target_escaped(piece: bytes, head: bytes | bytearray) -> bytes:
    """`piece`, the last bytes of `head` so far, with each byte over 0x7f of the request line
    in it percent-encoded (`é` as %C3%A9), as a browser sends it. curl sends a query's UTF-8 as
    typed (`curl 'localhost:3000/search?q=café'`) and nginx takes it; llhttp refuses it. The
    encoded target means the same to the child; the headers' bytes are left alone."""
    if piece.isascii():
        return piece
    line_part = _request_line(head)[1] - (len(head) - len(piece))  # the piece's share of it
    if line_part <= 0:
        return piece
    escaped = _HIGH_BYTE.sub(lambda byte: b"%%%02X" % byte[0][0], piece[:line_part])
    return escaped + piece[line_part:]


def request_line_fault(buffer: bytes | bytearray) -> tuple[int, str] | None:
    """Why the request line at the start of `buffer` (after any empty lines) is not served
    here, judged once the line is whole, before any header, as nginx judges it: no version
    (an HTTP/0.9 request, whole at its line's end) or an HTTP version other than 1.0 and
    1.1 (a later HTTP/1 one is read as 1.1 before: as_http11), 505; another protocol, or
    HTTP/2's connection preface, 400; a target that is not a path nor a URL (CONNECT's), 400.
    None while the line is not whole, and for an HTTP/1.x line with a path or one of another
    shape or without a method (llhttp judges those)."""
    start = 0
    end = buffer.find(b"\r\n", 0, MAX_HEAD + 2)
    while end == start:  # empty lines before a request, as llhttp takes them
        start += 2
        end = buffer.find(b"\r\n", start, MAX_HEAD + 2)
    parts = bytes(buffer[start:end]).split(b" ") if end != -1 else []
    if not parts or not parts[0] or parts[0].translate(None, _TOKEN):
        return None  # no method: not a request line llhttp would read (its 400)
    if len(parts) == 2 and parts[1]:
        version = "0.9"
    elif len(parts) == 3 and all(parts) and parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        given = parts[2]
        if parts[0] == b"PRI" and parts[1] == b"*":
            return 400, "an HTTP/2 connection preface: this port speaks HTTP/1.1 (and 1.0)"
        version = given[5:].decode("ascii", "backslashreplace")
        if not (given.startswith(b"HTTP/") and _VERSION.fullmatch(version)):
            shown = given[:20].decode("ascii", "backslashreplace")
            return 400, f"the request line ends in {shown!r}, not HTTP/1.1 or HTTP/1.0"
    elif len(parts) == 3 and all(parts):
        return _target_fault(parts[1])
    else:
        return None
    return 505, f"HTTP/{version} is not served here: send HTTP/1.1 or HTTP/1.0"


def _target_fault(target: bytes) -> tuple[int, str] | None:
    """400 for a target that is neither a path, nor `*` (llhttp's to judge), nor an http or
    https URL: CONNECT's `host:port`, which llhttp would take as an upgrade, the client then
    waiting for a tunnel (a half-closed one getting no answer at all), as nginx 1.22 says."""
    if target[:1] in (b"/", b"*"):
        return None
    scheme, sep, _ = target.partition(b"://")
    if sep and scheme.lower() in (b"http", b"https"):
        return None
    shown = target[:100].decode("ascii", "backslashreplace")
    return 400, f"the request target {shown!r} is not a path"


def valid_host(host: str) -> bool:
    """Whether a Host header's value is one nginx takes (its ngx_http_validate_host): no
    space or control character, no slash or backslash, no empty label (".."), and a name
    before any port that is more than one trailing dot ("", ".", ":80" are not hosts)."""
    if _NOT_A_HOST.search(host) is not None:
        return False
    name = host if host.startswith("[") else host.partition(":")[0]
    return name.removesuffix(".") != ""


_NOT_A_HOST: Final = re.compile(r"[\x00-\x20\x7f/\\]|\.\.")
_VERSION: Final = re.compile(r"[0-9]\.[0-9]")

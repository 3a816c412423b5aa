"""A child's envelope answer read (docs/protocol.md, "The response object"): framed by the
transport (`gather`, `whole_json`, `CLOSED_FIRST`), then parsed and checked strictly
(`decode_response`; `Answers` while a child repeats its status and headers) before any of
it reaches a client, each field as envelope_fields.py checks it. What is wrong is a
BadResponse naming it (`cut_line`: and what likely caused it).
"""

from __future__ import annotations

import binascii
import re
from typing import Final

import orjson
import pybase64

from local_lambdas.envelope import SHOWN_BYTES, Response
from local_lambdas.envelope_fields import checked_body, checked_headers, checked_status, json_kind
from local_lambdas.errors import BadResponse, add_note

# How a child that answered and closed without reading all of the request shows to a
# transport reading its answer: our write fails (EPIPE), or, the request written, the read
# after the answer is a reset (a Unix socket closed with bytes unread). What it sent is
# still its answer, judged as at a plain close.
CLOSED_FIRST: Final = (BrokenPipeError, ConnectionResetError)

# Read on every answer from compiled code (see envelope.py).
_loads: Final = orjson.loads
_b64decode: Final = pybase64.b64decode

# The start of an HTTP answer: a web server on the pipe (named, version and status alone).
_STATUS_LINE: Final = re.compile(rb"HTTP/\d\.\d \d{3}")


def decode_response(raw: bytes | bytearray) -> Response:
    """Parse and validate a child's response object; raise BadResponse naming what is wrong.

    A large answer comes as a bytearray (the transport put it together), which is emptied
    here once read. Its base64 body is decoded straight from it, never made a str (a JSON
    parser holds a string twice while it makes it): at the peak a 150 MiB body is held as
    its base64 and itself, 2.3 times its size, rather than 5.5 times."""
    split = _split_body(raw) if isinstance(raw, bytearray) and len(raw) > _SPLIT_ABOVE else None
    data: object  # any JSON value, until checked below
    if split is not None:
        data, body = split
    else:
        try:
            data = _loads(raw)
        except orjson.JSONDecodeError as exc:
            data = _without_bom(raw, exc)
    if isinstance(raw, bytearray):
        sample = bytes(raw[:SHOWN_BYTES])
        raw.clear()
        raw = sample
    if not isinstance(data, dict):
        raise BadResponse(f"the child answered {json_kind(data)}, not a JSON object", raw)
    if split is None:
        body = checked_body(data, raw)
    return Response(checked_status(data, raw), checked_headers(data, raw), body)


class Answers:
    """One child's answers decoded (decode_response), the last one's status and headers
    kept while the child repeats them: an answer whose JSON is the last one's byte for byte
    but for its body's base64 has only its body decoded, and the same status and header
    list. A child answers with the same status and headers request after request; parsing
    and checking them again was 10k instructions of a keep-alive request's 68k. Keeping one
    costs about as much (9.5k): a child whose JSON changes around the body with every
    answer (a time, an id it echoes) is tried again only every RETRY-th answer once TRIES
    answers in a row have not fit.

    An answer is kept when its one `"body"` key has a base64 string (no escape: strict base64
    has no quote nor backslash) that decodes to the answer's body, not empty (so it is the
    answer's own, not a header's or a nested object's), and it is under KEEP_BELOW bytes.
    Callers never change an answer's header list (the cache holds answers too), so the kept
    one is shared."""

    __slots__ = ("_headers", "_misses", "_prefix", "_status", "_suffix")

    KEEP_BELOW: Final = 64 * 1024
    TRIES: Final = 4
    RETRY: Final = 64

    def __init__(self) -> None:
        self._prefix = self._suffix = b""
        self._status = 200
        self._headers: list[tuple[str, str]] = []
        self._misses = 0  # answers in a row read whole

    def decode(self, raw: bytes | bytearray) -> Response:
        prefix, suffix = self._prefix, self._suffix
        # (Slices of bytes compared, not startswith and endswith: a third of the cost.)
        start, end = len(prefix), len(raw) - len(suffix)
        if (
            start and end > start and isinstance(raw, bytes) and raw[:start] == prefix
            and raw[end:] == suffix
        ):  # fmt: skip
            try:  # (a quote or an escape in it is no base64: the JSON is another)
                body = _b64decode(raw[start:end], None, True)
            except (binascii.Error, ValueError):
                pass  # read whole below, which says what is wrong or takes it
            else:
                self._misses = 0
                return Response(self._status, self._headers, body)
        kept = bytes(raw) if len(raw) < self.KEEP_BELOW else b""  # (a bytearray is emptied)
        response = decode_response(raw)
        misses = self._misses = self._misses + 1
        if misses <= self.TRIES or misses % self.RETRY == 0:
            self._keep(kept, response)
        return response

    def _keep(self, raw: bytes, response: Response) -> None:
        self._prefix = b""
        if not response.body:
            return
        key = raw.find(b'"body"')
        if key < 0 or raw.find(b'"body"', key + 6) >= 0:
            return
        found = _BODY_KEY.match(raw, key)
        if found is None:
            return
        start = found.end()
        end = raw.find(b'"', start)
        if end < 0:
            return
        try:
            if _b64decode(raw[start:end], None, True) != response.body:
                return
        except (binascii.Error, ValueError):
            return
        self._prefix, self._suffix = raw[:start], raw[end:]
        self._status, self._headers = response.status, response.headers


_BOM: Final = b"\xef\xbb\xbf"


def _without_bom(raw: bytes | bytearray, exc: orjson.JSONDecodeError) -> object:
    """An answer that did not parse, parsed again without the UTF-8 byte order mark it may
    begin with (.NET's StreamWriter with Encoding.UTF8 writes one at a stream's start); else
    the BadResponse saying what it is."""
    if raw.startswith(_BOM):
        try:
            return _loads(raw[3:])
        except orjson.JSONDecodeError as again:
            exc = again
    if raw.startswith(b"HTTP/"):  # a web server on the pipe (gunicorn --bind unix:...)
        # Its version and status only: an error body never quotes what a child wrote.
        status = bytes(raw[:12])
        shown = f" ({status.decode()})" if _STATUS_LINE.fullmatch(status) else ""
        raise BadResponse(
            f"the child answered in HTTP{shown}, not with a response object: a web server "
            "goes behind <communication_mode>passthrough</communication_mode>, on $PORT",
            bytes(raw),
        ) from exc
    if (why := _not_utf8(raw)) is not None:
        raise BadResponse(f"the child answered {why}: JSON is UTF-8", bytes(raw))
    what = "nothing" if not raw.strip() else "something that is not JSON"
    raise BadResponse(f"the child answered {what} ({exc})", bytes(raw)) from exc


def _not_utf8(raw: bytes | bytearray) -> str | None:
    """How an answer that did not parse is not UTF-8, where the JSON parser's own words
    mislead ("surrogates not allowed"): UTF-16 (a byte order mark, or NULs between ASCII
    characters: PowerShell 5's Out-File, .NET's Encoding.Unicode), or a byte that is no
    UTF-8 (Latin-1's é, 0xe9); None for UTF-8."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:2]:
        return "in UTF-16"
    try:
        bytes(raw).decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"bytes that are not UTF-8 (0x{raw[bad.start]:02x} at byte {bad.start})"
    return None


def whole_json(data: bytes | bytearray) -> bool:
    """Whether `data` is one whole JSON value (after a byte order mark, if any): an answer
    whose end the framing did not mark (a keep-alive answer the child ended by closing; a
    one-shot answer ended by a newline on a connection the child keeps open)."""
    try:
        _loads(data[3:] if data.startswith(_BOM) else data)
    except orjson.JSONDecodeError:
        return False
    return True


def note_unended(cancelled: BaseException, held: bytes | bytearray, *, lines: bool) -> None:
    """When an exchange is cancelled (its <timeout>) and the child had sent `held`, a whole
    answer, without ending it (one-shot: no close and no newline; keep-alive, `lines`: no
    newline), say so in a note on the cancellation, for the 504's reason."""
    if held and whole_json(held):
        end = (
            "without the newline that ends each answer in pipe-keepalive"
            if lines
            else "and kept the connection open: a one-shot child closes it after its answer"
        )
        add_note(cancelled, f"it sent a whole answer ({len(held)} bytes) {end}")


def gather(buffer: bytes | bytearray, data: bytes) -> bytes | bytearray:
    """`buffer` with `data` after it, for a transport reading an answer: a first chunk as
    it came, then a bytearray that grows in place (no list of chunks joined at the end,
    which would hold a large answer twice)."""
    if not buffer:
        return data
    if isinstance(buffer, bytes):
        buffer = bytearray(buffer)
    buffer += data
    return buffer


_SPLIT_ABOVE: Final = 1024**2  # answers larger than this have their body decoded in place
_BODY_KEY: Final = re.compile(rb'"body"\s*:\s*"')


def _split_body(raw: bytearray) -> tuple[dict[str, object], bytes] | None:
    """The answer without its body, parsed, and the body decoded from the bytes where it
    stands; None when the answer is not plainly laid out (then it is parsed whole, which
    also says what is wrong with it). "body" must occur once, as a key, and its string
    hold no escape."""
    key = raw.find(b'"body"')
    if key < 0 or raw.find(b'"body"', key + 6) >= 0:
        return None
    found = _BODY_KEY.match(raw, key)
    if found is None:
        return None
    start = found.end()
    end = raw.find(b'"', start)
    if end < 0 or raw.find(b"\\", start, end) >= 0:
        return None
    try:
        data = orjson.loads(raw[:start] + raw[end:])  # "body": ""
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("body") != "":
        return None  # the one "body" was not the answer's own
    try:
        with memoryview(raw) as whole, whole[start:end] as encoded:
            return data, pybase64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def cut_line(exc: BadResponse) -> BadResponse:
    """A refused keep-alive answer, with the likely cause when its line is the start of a
    JSON object that the newline cut off (a child that pretty-prints its answers)."""
    sent = exc.received
    if sent.startswith(b"{") and len(sent) < SHOWN_BYTES and _ran_out(sent):
        return BadResponse(
            f"{exc}: its answer line ended inside the JSON; in pipe-keepalive each answer is "
            "one line (compact JSON with no newline inside: json.dumps without indent)",
            sent,
        )
    return exc


def _ran_out(sent: bytes) -> bool:
    """Whether parsing `sent` fails at its end (more could have completed it), not at
    something wrong inside it. Parsed again here rather than read from the exception's
    cause, which compiled code does not keep."""
    try:
        _loads(sent)
    except orjson.JSONDecodeError as exc:
        return exc.pos >= len(sent.decode("utf-8", "replace").rstrip())
    return False

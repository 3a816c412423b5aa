"""A child's envelope answer read (docs/protocol.md, "The response object"): framed by the
transport (`gather`, `whole_json`), then parsed and checked strictly (`decode_response`;
`Answers` while a child repeats its status and headers) before any of it reaches a client:
the status an integer in 200-599, header names tokens and values without control
characters, the body strict base64 (or as tools wrap or unpad it), hop-by-hop headers and
Content-Length dropped. What is wrong is a BadResponse naming it.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable
from typing import Final

import orjson
import pybase64

from local_lambdas.envelope import HOP_BY_HOP, MAX_HEAD, SHOWN_BYTES, Response
from local_lambdas.errors import BadResponse

# Read on every answer from compiled code (see envelope.py).
_loads: Final = orjson.loads
_b64decode: Final = pybase64.b64decode

# From an envelope answer, Content-Length goes too: it is recomputed from the decoded body; and
# X-Request-Id, which the proxy sets to the request's id.
_NOT_FROM_CHILD: Final = HOP_BY_HOP | {"content-length", "x-request-id"}
# Used with fullmatch: no "$" before a "\n".
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A field value may hold visible characters, spaces and tabs (RFC 9110 5.5); any other
# control character (CR, LF, NUL, the rest of C0, DEL) could split or smuggle a header.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


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
        raise BadResponse(f"the child answered {_json_kind(data)}, not a JSON object", raw)
    if split is None:
        body = _body(data, raw)
    return Response(_status(data, raw), _headers(data, raw), body)


class Answers:
    """One child's answers decoded (decode_response), the last one's status and headers
    kept while the child repeats them: an answer whose JSON is the last one's byte for byte
    but for its body's base64 has only its body decoded, and the same status and header
    list. A child answers with the same status and headers request after request; parsing
    and checking them again was 10k instructions of a keep-alive request's 68k.

    An answer is kept when its one `"body"` key has a base64 string (no escape: strict base64
    has no quote nor backslash) that decodes to the answer's body, not empty (so it is the
    answer's own, not a header's or a nested object's), and it is under KEEP_BELOW bytes.
    Callers never change an answer's header list (the cache holds answers too), so the kept
    one is shared."""

    __slots__ = ("_headers", "_prefix", "_status", "_suffix")

    KEEP_BELOW: Final = 64 * 1024

    def __init__(self) -> None:
        self._prefix = self._suffix = b""
        self._status = 200
        self._headers: list[tuple[str, str]] = []

    def decode(self, raw: bytes | bytearray) -> Response:
        prefix, suffix = self._prefix, self._suffix
        if prefix and raw.startswith(prefix) and raw.endswith(suffix):
            end = len(raw) - len(suffix)
            if end > len(prefix):
                try:  # (a quote or an escape in it is no base64: the JSON is another)
                    body = _b64decode(raw[len(prefix) : end], None, True)
                except (binascii.Error, ValueError):
                    pass  # read whole below, which says what is wrong or takes it
                else:
                    return Response(self._status, self._headers, body)
        kept = bytes(raw) if len(raw) < self.KEEP_BELOW else b""  # (a bytearray is emptied)
        response = decode_response(raw)
        self._keep(kept, response)
        return response

    def _keep(self, raw: bytes, response: Response) -> None:
        self._prefix = b""
        key = raw.find(b'"body"')
        if key < 0 or not response.body or raw.find(b'"body"', key + 6) >= 0:
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
    what = "nothing" if not raw.strip() else "something that is not JSON"
    raise BadResponse(f"the child answered {what} ({exc})", bytes(raw)) from exc


def _json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words: "null", "a string", "an array"..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def whole_json(data: bytes | bytearray) -> bool:
    """Whether `data` is one whole JSON value (after a byte order mark, if any): an answer
    whose end the framing did not mark (a keep-alive answer the child ended by closing; a
    one-shot answer ended by a newline on a connection the child keeps open)."""
    try:
        _loads(data[3:] if data.startswith(_BOM) else data)
    except orjson.JSONDecodeError:
        return False
    return True


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


def _status(data: dict[str, object], raw: bytes) -> int:
    status = data.get("status", 200)
    if status is None:
        return 200
    if isinstance(status, bool) or not isinstance(status, int):
        shown = orjson.dumps(status).decode()[:50]
        raise BadResponse(f"status {shown} is {_json_kind(status)}, not an integer", raw)
    if not 200 <= status <= 599:
        # 1xx is informational: it cannot be a final answer to a request.
        raise BadResponse(f"status {status} is not a final HTTP status (200-599)", raw)
    return status


def _headers(data: dict[str, object], raw: bytes) -> list[tuple[str, str]]:
    headers = data.get("headers")
    if headers is None:
        return []
    if isinstance(headers, dict):
        pairs: Iterable[object] = headers.items()  # JSON object keys are strings, in pairs
    elif isinstance(headers, list):
        pairs = headers
    else:
        raise BadResponse("headers must be an object or a list of [name, value] pairs", raw)
    result: list[tuple[str, str]] = []
    size = 0  # of the head they make, as "Name: value\r\n" lines
    for pair in pairs:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise BadResponse(f"header {pair!r} is not a [name, value] pair", raw)
        name, value = pair
        passed_on = _NAMES.get(name) if isinstance(name, str) else None
        if passed_on is None:
            passed_on = _check_name(name, raw)
        if isinstance(value, str):
            text = _field(name, value, raw)
            if passed_on:
                result.append((name, text))
                size += len(name) + len(text) + 4
        elif passed_on:
            texts = _as_texts(name, value, raw)
            result.extend((name, text) for text in texts)
            size += sum(len(name) + len(text) + 4 for text in texts)
    if size > MAX_HEAD:
        raise BadResponse(f"the answer's headers make a head of {size // 1024} KiB, over the "
                          f"{MAX_HEAD // 1024} KiB clients take", raw)  # fmt: skip
    return result


def _field(name: str, value: str, raw: bytes) -> str:
    """`value`, unless a control character in it could split or smuggle a header."""
    if not value.isprintable() and _CONTROL.search(value):  # (a printable text has none)
        raise BadResponse(f"header {name!r} has a control character in its value", raw)
    return value


def _as_texts(name: str, value: object, raw: bytes) -> list[str]:
    """A header value that is not a string, as Node's setHeader takes it: a number or a
    boolean as its JSON text, a list as the header repeated once per item."""
    if isinstance(value, list):
        return [text for item in value for text in _as_texts(name, item, raw)]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, (int, float)):
        return [orjson.dumps(value).decode()]
    if isinstance(value, str):  # an item of a list
        return [_field(name, value, raw)]
    what = "null" if value is None else "an object"  # (what else JSON has is taken above)
    raise BadResponse(
        f"header {name!r} has {what} value; values are strings, numbers, booleans or a "
        "list of them",
        raw,
    )


# Header names already checked, and whether they are passed on (not hop-by-hop): children
# send the same few names over and over. Bounded, in case one invents a name per answer.
_NAMES: Final[dict[str, bool]] = {}
_NAMES_KEPT: Final = 1024


def _check_name(name: object, raw: bytes) -> bool:
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise BadResponse(f"header name {name!r} is not a valid HTTP token", raw)
    passed_on = name.lower() not in _NOT_FROM_CHILD
    if len(_NAMES) < _NAMES_KEPT:
        _NAMES[name] = passed_on
    return passed_on


def _body(data: dict[str, object], raw: bytes) -> bytes:
    body = data.get("body")
    if body is None or body == "":
        return b""
    if not isinstance(body, str):
        raise BadResponse(f"body is {_json_kind(body)}; it must be a base64 string", raw)
    try:
        return _b64decode(body, None, True)  # validate; positionally (a keyword costs 40%)
    except (binascii.Error, ValueError) as exc:
        lenient = _lenient_base64(body)
        if lenient is not None:
            return lenient
        raise BadResponse(f"body is not valid base64 ({exc})", raw) from exc


_WRAPPED: Final = re.compile(r"\s+")


def _lenient_base64(text: str) -> bytes | None:
    """Base64 as tools write it that a strict decoder refuses: wrapped in lines (the
    `base64` command, Python's encodebytes, MIME encoders wrap at 76 columns) or without
    its padding (Go's RawStdEncoding); None when it is still not base64."""
    joined = _WRAPPED.sub("", text)
    joined += "=" * (-len(joined) % 4)
    try:
        return pybase64.b64decode(joined, validate=True)
    except (binascii.Error, ValueError):
        return None

"""The fields of a child's envelope answer checked one by one (docs/protocol.md, "The response
object"), for envelope_answer.decode_response: the status an integer in 200-599, header names
tokens and values without control characters (a number, a boolean or a list taken as Node's
setHeader takes them), hop-by-hop headers, Content-Length and X-Request-Id dropped, the body
strict base64 or as tools wrap or unpad it; an answer in AWS Lambda's shape is refused. What
is wrong is a BadResponse naming it.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable
from typing import Final

import orjson
import pybase64

from local_lambdas.envelope import HOP_BY_HOP, MAX_HEAD
from local_lambdas.errors import BadResponse, NotAnAnswer
from local_lambdas.forwarding import has_control

_b64decode: Final = pybase64.b64decode  # read on every answer from compiled code

# From an envelope answer, Content-Length goes too: it is recomputed from the decoded body; and
# X-Request-Id, which the proxy sets to the request's id.
_NOT_FROM_CHILD: Final = HOP_BY_HOP | {"content-length", "x-request-id"}
# Used with fullmatch: no "$" before a "\n".
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def json_kind(value: object) -> str:
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


# A child written for AWS Lambda's proxy integration answers in its shape; taken as ours,
# its status would be lost (200) and its text decoded as base64.
_LAMBDA_STATUS: Final = (
    "the answer has \"statusCode\", AWS Lambda's name for the status; this protocol's is "
    '"status" (docs/protocol.md)'
)
_LAMBDA_TEXT: Final = (
    'the answer says "isBase64Encoded": false, AWS Lambda\'s way to send a plain-text body; '
    'here "body" is always base64 (docs/protocol.md)'
)


# A child's own JSON (a web server's REST answer, {"message": ...}) taken for the response
# object would go out as an empty 200: an object with none of its keys (nor Lambda's) is
# refused. `{}` is an empty 200.
_ANSWER_KEYS: Final = frozenset(
    {"status", "headers", "body", "statusCode", "isBase64Encoded", "multiValueHeaders", "cookies"}
)


def checked_status(data: dict[str, object], raw: bytes) -> int:
    status = data.get("status")
    if status is None:
        if "statusCode" in data:
            raise BadResponse(_LAMBDA_STATUS, raw)
        if data and _ANSWER_KEYS.isdisjoint(data):
            keys = ", ".join(orjson.dumps(key).decode() for key in list(data)[:5])
            raise NotAnAnswer(
                "the answer has none of the response object's keys (status, headers, body), "
                f"only {keys}: the child answered JSON of its own, not the object "
                "docs/protocol.md describes",
                raw,
            )
        return 200
    if isinstance(status, bool) or not isinstance(status, int):
        shown = orjson.dumps(status).decode()[:50]
        raise BadResponse(f"status {shown} is {json_kind(status)}, not an integer", raw)
    if not 200 <= status <= 599:
        # 1xx is informational: it cannot be a final answer to a request.
        raise BadResponse(f"status {status} is not a final HTTP status (200-599)", raw)
    return status


def checked_headers(data: dict[str, object], raw: bytes) -> list[tuple[str, str]]:
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
    if has_control(value):
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


def checked_body(data: dict[str, object], raw: bytes) -> bytes:
    body = data.get("body")
    if body is None or body == "":
        return b""
    if not isinstance(body, str):
        raise BadResponse(f"body is {json_kind(body)}; it must be a base64 string", raw)
    if data.get("isBase64Encoded") is False:
        raise BadResponse(_LAMBDA_TEXT, raw)
    try:
        return _b64decode(body, None, True)  # validate; positionally (a keyword costs 40%)
    except (binascii.Error, ValueError) as exc:
        lenient = _lenient_base64(body)
        if lenient is not None:
            return lenient
        if "statusCode" in data:  # AWS Lambda's answer, its text not base64: the cause
            raise BadResponse(_LAMBDA_STATUS, raw) from exc
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

"""The envelope: the request object as encoded, a child's answer framed, read and checked
(envelope.py, envelope_answer.py, envelope_fields.py; docs/protocol.md)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest

from local_lambdas import (
    envelope_answer,
)
from local_lambdas.envelope import Repeats, Request, Response
from local_lambdas.envelope_answer import decode_response, whole_json
from local_lambdas.errors import BadResponse
from local_lambdas.transports import answer_head


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_request_encoding_is_the_documented_object() -> None:
    request = Request("POST", "/a?b=1", [("X", "1"), ("X", "2")], b"\x00\xff", "rid", "1.2.3.4")
    assert json.loads(request.encode()) == {
        "method": "POST", "uri": "/a?b=1", "headers": [["X", "1"], ["X", "2"]],
        "body": "AP8=", "request_id": "rid", "client": "1.2.3.4", "token": "",
    }  # fmt: skip


@pytest.mark.parametrize("line", [False, True])
@pytest.mark.parametrize(("uri", "headers", "ids"), [
    ("/a?b=1", [("Host", "h"), ("Accept", "*/*")], ["LL00000001", "LL00000002", "LL00000003"]),
    # A client's own ids, some written escaped: each as orjson writes it.
    ("/a", [("Host", "h")], ["abc", 'a"b', "a\\b", "caf\u00e9", "tab\there", "x\x7f", "abd"]),
    # The mark that stands for the id, sent by the client: never cut there.
    ("/\ue000", [("Host", "h")], ["id1", "id2", "id3"]),
    ("/a", [("X", "\ue000")], ["id1", "id2", "id3"]),
    ("/caf\udce9", [("X", "\udcff")], ["id1", "id2", "id3"]),  # bytes not UTF-8: U+FFFD
])  # fmt: skip
def test_a_request_repeated_but_for_its_id_is_encoded_as_anew(
    uri: str, headers: list[tuple[str, str]], ids: list[str], line: bool
) -> None:
    repeats = Repeats()  # one connection's
    for name in ("X-Request-Id", "x-request-id"):  # the proxy's, or the client's last
        for rid in ids:
            for _ in range(2):
                request = Request(
                    "GET", uri, [*headers, (name, rid)], b"", rid, "1.2.3.4", "t", repeats
                )  # fmt: skip
                assert request.encode(line=line) == request._dumps(line), (rid, name)
    assert repeats.parts is not None  # the JSON cut where the id goes (not new each time)
    # One thing other than the id, after the same twice: its own JSON.
    same = [*headers, ("X-Request-Id", "y")]
    for other in (
        Request("HEAD", uri, [*headers, ("X-Request-Id", "z")], b"", "z", "1.2.3.4", "t"),
        Request("GET", uri, [*headers, ("X-Request-Id", "z")], b"", "z", "1.2.3.5", "t"),
        Request("GET", uri, [*headers, ("X-Request-Id", "z")], b"", "z", "1.2.3.4", "u"),
        Request("GET", uri, [("Y", "1"), ("X-Request-Id", "z")], b"", "z", "1.2.3.4", "t"),
        Request("GET", uri, [("Host", "h"), ("X-Request-Id", "z")], b"", "z", "1.2.3.4", "t"),
        Request("GET", uri + "x", [*headers, ("X-Request-Id", "z")], b"", "z", "1.2.3.4", "t"),
        Request("GET", uri, [*headers, ("X-Request-Id", "z")], b"body", "z", "1.2.3.4", "t"),
    ):
        for _ in range(2):
            Request("GET", uri, same, b"", "y", "1.2.3.4", "t", repeats).encode(line=line)
        other.repeats = repeats
        assert other.encode(line=line) == other._dumps(line), json.loads(other._dumps(line))


GOOD = {
    "{}": (200, [], b""),
    '{"status": 404, "body": ""}': (404, [], b""),
    '{"body": null, "status": null}': (200, [], b""),
    '{"headers": {"A": "1"}}': (200, [("A", "1")], b""),
    '{"headers": {"A": "tab\\tinside"}}': (200, [("A", "tab\tinside")], b""),
    '{"headers": [["Set-Cookie", "a"], ["Set-Cookie", "b"]]}': (
        200, [("Set-Cookie", "a"), ("Set-Cookie", "b")], b""),
    '{"headers": {"Content-Length": "99", "Connection": "close"}}': (200, [], b""),
    json.dumps({"body": b64(b"\x00hi")}): (200, [], b"\x00hi"),
    # Values as Node's setHeader takes them: numbers and booleans as their JSON text, a list
    # as the header repeated (in either form).
    '{"headers": {"X-Count": 5, "X-Rate": 1.5, "X-On": true}}': (
        200, [("X-Count", "5"), ("X-Rate", "1.5"), ("X-On", "true")], b""),
    '{"headers": {"Set-Cookie": ["a=1", "b=2"], "Via": []}}': (
        200, [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], b""),
    '{"headers": [["X-A", false], ["Content-Length", 5]]}': (200, [("X-A", "false")], b""),
    # Base64 as tools write it: wrapped at 76 columns (the `base64` command), or unpadded.
    json.dumps({"body": base64.encodebytes(bytes(range(200))).decode()}): (
        200, [], bytes(range(200))),
    '{"body": "aGVsbG8"}': (200, [], b"hello"),
    # After a UTF-8 byte order mark, as .NET's StreamWriter with Encoding.UTF8 begins.
    '\ufeff{"status": 201}': (201, [], b""),
    # AWS Lambda's keys beside ours: ours are read.
    '{"status": 201, "statusCode": 404, "body": "aGk=", "isBase64Encoded": true}': (
        201, [], b"hi"),
    '{"isBase64Encoded": false}': (200, [], b""),  # (nothing to misread)
}  # fmt: skip

BAD = {
    "": "answered nothing",
    "nope": "not JSON",
    # A web server on the pipe (gunicorn --bind unix:$PIPE_ADDRESS): its status line named.
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n": (
        "answered in HTTP (HTTP/1.1 400), not with a response object: a web "
        "server goes behind <communication_mode>passthrough</communication_mode>"
    ),
    "HTTP/x secret\r\n": "answered in HTTP, not with a response object",  # not quoted
    "[1]": "answered an array, not a JSON object",  # in JSON's words, not Python's
    "null": "answered null, not a JSON object",
    '\ufeff"x"': "answered a string, not a JSON object",
    "\ufeff\ufeff{}": "not JSON",  # one mark, at the start
    '{"status": "200"}': 'status "200" is a string, not an integer',
    '{"status": true}': "status true is a boolean, not an integer",
    '{"status": 600}': "not a final HTTP status",
    '{"status": 101}': "not a final HTTP status",
    '{"headers": "x"}': "object or a list",
    '{"headers": [["a"]]}': "not a [name, value] pair",
    '{"headers": {"bad name": "v"}}': "not a valid HTTP token",
    '{"headers": {"a": null}}': "has null value; values are strings, numbers, booleans",
    '{"headers": {"a": {"b": "c"}}}': "has an object value",
    '{"headers": {"a": ["ok", null]}}': "has null value",
    '{"headers": {"a": ["x\\ny"]}}': "control character",
    '{"headers": {"a": "x\\ny"}}': "control character",
    '{"headers": {"a": "x\\ry"}}': "control character",
    '{"headers": {"a": "x\\u0000y"}}': "control character",
    '{"headers": {"a": "x\\u0001y"}}': "control character",
    '{"headers": {"a": "x\\u007fy"}}': "control character",
    '{"headers": {"a": "x\x7fy"}}': "control character",  # DEL, which JSON need not escape
    '{"headers": {"a": "trailing\\n"}}': "control character",
    '{"headers": {"Set-Cookie\\n": "v"}}': "not a valid HTTP token",
    '{"headers": [["X-A\\r", "v"]]}': "not a valid HTTP token",
    '{"body": 5}': "body is a number; it must be a base64 string",
    '{"body": "a"}': "not valid base64",
    '{"body": "aGVs!bG8="}': "not valid base64",
    '{"body": "aGVsbG8=-_"}': "not valid base64",  # URL-safe alphabet: not what was asked
    # AWS Lambda's answer, which would be a 200 with its text read as base64 ("hi": 0x86).
    '{"statusCode": 404, "body": ""}': '"statusCode", AWS Lambda\'s name for the status; '
    'this protocol\'s is "status"',
    # ... whose plain-text body is not base64: the status's name is still the cause.
    '{"statusCode": 200, "multiValueHeaders": {"Set-Cookie": ["a=1"]}, "body": "m!"}': (
        '"statusCode", AWS Lambda\'s name for the status'
    ),
    '{"status": 200, "body": "hi", "isBase64Encoded": false}': (
        '"isBase64Encoded": false, AWS Lambda\'s way to send a plain-text body; here "body" '
        "is always base64"
    ),
    # A web server's own JSON (an `http` child that is a REST API): it was an empty 200.
    '{"message": "hello", "items": [1, 2]}': (
        "the answer has none of the response object's keys (status, headers, body), only "
        '"message", "items": the child answered JSON of its own'
    ),
}


_SERIES = [  # answers in turn to one child, each to be read as decode_response reads it
    b'{"status":200,"headers":{"Content-Type":"text/plain"},"body":"aGk="}',
    b'{"status":200,"headers":{"Content-Type":"text/plain"},"body":"aGVsbG8="}',  # kept
    b'{"status":200,"headers":{"Content-Type":"text/plain"},"body":""}',
    b'{"status":200,"headers":{"Content-Type":"text/plain"},"body":"aGk"}',  # unpadded
    b'{"status":200,"headers":{"Content-Type":"text/plain"},"body":"aG\\nk="}',  # wrapped
    b'{"status":200,"headers":{"Content-Type":"text/plain"},"body":"aGk=","x":"y"}',
    b'{"status":200,"headers":{"Content-Type":"text/plain"},"body":"a\\"b"}',
    b'{"status":404,"headers":{"Content-Type":"text/plain"},"body":"aGk="}',
    b'{"status":200,"headers":{"Content-Type":"text/plain"},"body":"@@@@"}',
    b'{"status":200,"headers":{"body":"aGk="}}',  # a header named body
    b'{"status":200,"headers":{"body":"aGVsbG8="}}',
    b'{"status":200,"meta":{"body":""}}',  # a nested object's
    b'{"status":200,"meta":{"body":"aGk="}}',
    b'{"status":200,"meta":{"body":"aGVsbG8="}}',
    b'{"\\u0062ody":"aGk=","meta":{"body":"eHl6"}}',  # the answer's own, escaped
    b'{"\\u0062ody":"aGk=","meta":{"body":"YWJj"}}',
    b'{"meta":{"body":"aGk="},"body":"aGk="}',  # twice, the same
    b'{"meta":{"body":"YWJj"},"body":"aGk="}',
    b'{"body":"aGk=","status":201}',  # the body first
    b'{"body":"aGVsbG8=","status":201}',
    b'{"body":"aGVsbG8=","status":201,"body":"aGk="}',  # twice: the last one counts
    b'{"body":"aGk=","status":201}\n',
    b'{"body" : "aGk=" ,"status":201}',
]


def test_answers_repeating_the_last_ones_json_read_as_the_whole_is() -> None:
    """envelope_answer.Answers keeps the last answer's status and headers while the child repeats
    them around a new body: after any other answer, and in a long run of answers whose JSON
    changes around the body, from bytes and from bytearrays, each answer reads as
    decode_response reads it on its own, or fails as it fails."""

    def read(decode: Callable[[bytes | bytearray], Response], raw: bytes | bytearray) -> object:
        try:
            answer = decode(raw)
        except BadResponse as exc:
            return str(exc)
        return (answer.status, answer.headers, answer.body)

    for kind in (bytes, bytearray):
        for first in _SERIES:  # each answer after each other one
            for then in _SERIES:
                answers = envelope_answer.Answers()
                read(answers.decode, kind(first))
                assert read(answers.decode, kind(then)) == read(decode_response, then), then
        # A child whose JSON changes around the body with every answer (kept only now and
        # then), and then repeats it: read alike all along.
        answers = envelope_answer.Answers()
        changing = [b'{"headers":{"X-Time":"%d"},"body":"aGk="}' % n for n in range(300)]
        for raw in changing + _SERIES[:2] * 3:
            assert read(answers.decode, kind(raw)) == read(decode_response, raw), raw


@pytest.mark.parametrize("raw", GOOD)
def test_valid_responses(raw: str) -> None:
    response = decode_response(raw.encode())
    assert (response.status, response.headers, response.body) == GOOD[raw]
    assert whole_json(raw.encode())  # (its end taken without framing, one-shot or not)


@pytest.mark.parametrize(("first", "says"), [
    (b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64",
     "the child answered in HTTP/2, as an HTTP/2-only server does"),  # SETTINGS
    (b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + bytes(8),
     "the child answered in HTTP/2"),  # GOAWAY
    (b"hello\r\n", "the child's answer is not HTTP: it begins b'hello\\r\\n'"),
    (b"http/1.1 200 OK\r\n", "the child's answer is not HTTP: it begins b'http/1.1 200 OK"),
    (b"HTTP/1.1 200 OK\r\nX A: b\r\n", "the child's answer is not valid HTTP: llhttp's"),
    (b"HTT", "the child's answer is not valid HTTP: llhttp's"),  # a start cut short
])  # fmt: skip
def test_an_answer_llhttp_refuses_is_said_as_what_it_is(first: bytes, says: str) -> None:
    assert answer_head.not_http(first, "llhttp's words").startswith(says)


@pytest.mark.parametrize("headers", [
    {"X-Big": "v" * 65_536},  # one header
    [["X-A", "v" * 20]] * 3000,  # many
    {"X-A": ["v" * 100] * 700},  # one, repeated from a list
], ids=["one", "many", "repeated"])  # fmt: skip
def test_an_answer_head_no_client_takes_is_refused(headers: object) -> None:
    """Over 64 KiB of headers (curl refuses 100 KiB, browsers 256 KiB, Node.js 16 KiB):
    a 502 naming its size, as nginx's 'upstream sent too big header'."""
    with pytest.raises(BadResponse, match=r"headers make a head of \d+ KiB, over the 64 KiB"):
        decode_response(json.dumps({"headers": headers}).encode())
    decode_response(json.dumps({"headers": {"X-Big": "v" * 60_000}}).encode())  # under it


@pytest.mark.parametrize("raw", BAD)
def test_invalid_responses_name_the_cause(raw: str) -> None:
    with pytest.raises(BadResponse) as caught:
        decode_response(raw.encode())
    assert BAD[raw] in str(caught.value)
    assert caught.value.received == raw.encode()


# Answers in another encoding than JSON's, which the parser's own words misnamed
# ("str is not valid UTF-8: surrogates not allowed").
BAD_ENCODINGS = {
    '{"status": 200}'.encode("utf-16"): "answered in UTF-16: JSON is UTF-8",  # PowerShell 5
    '{"status": 200}'.encode("utf-16-le"): "answered in UTF-16",  # .NET's Encoding.Unicode
    '{"headers": {"X-A": "caf\u00e9"}}'.encode("latin-1"): (
        "answered bytes that are not UTF-8 (0xe9 at byte 24): JSON is UTF-8"
    ),
}


@pytest.mark.parametrize("raw", BAD_ENCODINGS)
def test_an_answer_in_another_encoding_is_named_so(raw: bytes) -> None:
    with pytest.raises(BadResponse) as caught:
        decode_response(raw)
    assert BAD_ENCODINGS[raw] in str(caught.value)


@pytest.mark.parametrize("layout", ["plain", "spaced", "body header", "escaped", "first"])
def test_a_large_answer_is_decoded_in_place_or_whole(layout: str) -> None:
    """A large answer (a bytearray from the transport) has its body decoded where it stands
    when plainly laid out, else it is parsed whole: the same answer either way, and the
    bytearray is emptied."""
    body = bytes(range(256)) * 8192  # 2 MiB
    encoded = base64.b64encode(body).decode()
    headers = [["Content-Type", "application/octet-stream"]]
    if layout == "body header":
        headers.append(["X-Body", '"body": "not this"'])
    if layout == "escaped":
        encoded = encoded.replace("/", "\\/")
    text = {
        "spaced": '{ "status" : 201 , "headers": %s , "body" :  "%s" }',
        "first": '{"body":"%s","status":201,"headers":%s}',
    }.get(layout, '{"status": 201, "headers": %s, "body": "%s"}')
    args = (encoded, json.dumps(headers)) if layout == "first" else (json.dumps(headers), encoded)
    raw = bytearray((text % args).encode())
    answer = decode_response(raw)
    assert answer.status == 201 and answer.body == body
    assert ("X-Body", '"body": "not this"') in answer.headers or layout != "body header"
    assert raw == bytearray()  # not held once read


def test_a_large_answer_with_bad_base64_is_still_refused() -> None:
    raw = bytearray(b'{"status": 200, "body": "' + b"A" * (2 * 1024**2 + 1) + b'!"}')
    with pytest.raises(BadResponse, match="not valid base64"):
        decode_response(raw)

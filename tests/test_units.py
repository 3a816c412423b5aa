"""Pure logic driven from tables: routing, the response envelope, the restart policy,
per-request deadlines, what a person is told about a child, the fast lane's heads."""

from __future__ import annotations

import asyncio
import base64
import bisect
import errno
import io
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.http import SERVER_SOFTWARE
from rich.cells import cell_len

from local_lambdas import (
    binding,
    envelope_answer,
    executables,
    forwarding,
    head_rules,
    manifest,
    output,
    router,
    self_reload,
)
from local_lambdas._compat import listeners, timeout
from local_lambdas.access_log import AccessLog
from local_lambdas.aio import parser as aioparser
from local_lambdas.config import Fate, Process, Restart, Settings
from local_lambdas.config_values import check_origin, check_route
from local_lambdas.deadlines import Deadlines
from local_lambdas.envelope import Repeats, Request, Response
from local_lambdas.envelope_answer import decode_response, whole_json
from local_lambdas.errors import BadResponse, NotConnected
from local_lambdas.lane import answer_heads, http1, relay, relay_request, tunnel
from local_lambdas.lane import message as lane_message
from local_lambdas.lane import requests as lane_requests
from local_lambdas.output import Printer, line_text
from local_lambdas.proxy import Proxy
from local_lambdas.router import Router
from local_lambdas.stats import BUCKETS, ProcessStats
from local_lambdas.supervision import explain, failure_line, launch, spawned
from local_lambdas.supervision.backoff import RestartPolicy, Verdict
from local_lambdas.supervision.line import Line
from local_lambdas.supervision.output_tail import OutputTail
from local_lambdas.supervision.pool import Pool
from local_lambdas.supervision.states import State
from local_lambdas.supervision.supervisor import Supervisor
from local_lambdas.transports import answer_head, exchange, upstream
from tests.helpers import eventually, git

ROUTES = ["/api/*", "/api/v2/*", "/exact", "/dir/", "/api/v2/special"]
ROUTING = {
    "/api": "/api/*", "/api/": "/api/*", "/api/x/y": "/api/*", "/apiary": None,
    "/api/v2": "/api/v2/*", "/api/v2/z": "/api/v2/*", "/api/v2/special": "/api/v2/special",
    "/exact": "/exact", "/exact/": None, "/exactly": None, "/dir": None, "/dir/": "/dir/",
    "/dir/a/b": "/dir/", "/": None,
}  # fmt: skip


@pytest.mark.parametrize("order", [ROUTES, ROUTES[::-1]])
def test_most_specific_route_wins_whatever_the_order(order: list[str]) -> None:
    router = Router((r, r) for r in order)
    assert {path: router.match(path) for path in ROUTING} == ROUTING


@pytest.mark.parametrize(("written", "read"), [
    ("/api/*", "/api/*"), ("/", "/"), ("/*", "/*"), ("/dir/", "/dir/"), ("/exact", "/exact"),
    # As request paths are read: a route written as a URL spells it matches that URL.
    ("/caf%C3%A9/*", "/caf\u00e9/*"), ("/ex%61ct", "/exact"), ("/a%20b/", "/a b/"),
    ("/a//b/*", "/a/b/*"), ("/a/./b", "/a/b"), ("/a/x/../b/", "/a/b/"),
])  # fmt: skip
def test_a_route_is_read_as_request_paths_are(written: str, read: str) -> None:
    assert check_route(written) == read


def test_only_a_folder_routes_path_without_its_slash_is_a_folder() -> None:
    router = Router((r, r) for r in ROUTES)
    folders = [
        p for p in ("/dir", "/dir/", "/di", "/api", "/api/v2", "/exact", "/") if router.folder(p)
    ]
    assert folders == ["/dir"]


def test_a_404_below_an_exact_route_names_the_pattern_that_would_take_it() -> None:
    router = Router((r, r) for r in ROUTES)
    hint = "; the route /exact matches /exact alone, /exact/* what is below it too"
    assert router.unmatched("/exact/a.txt") == "no route matches /exact/a.txt" + hint
    assert router.unmatched("/exactly") == "no route matches /exactly"  # (not below it)
    assert router.unmatched("/") == "no route matches /"


def test_catch_all() -> None:
    router = Router([("/*", "all"), ("/a/*", "a"), ("/a/b/", "ab"), ("/b/", "b")])
    paths = ("/", "/x", "/a/b", "/ab", "/a/b/c", "/a/bc", "/b", "/b/x", "/bb/x")
    assert [router.match(p) for p in paths] == [
        "all", "all", "a", "all", "ab", "a", "all", "b", "all"
    ]  # fmt: skip


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


# (policy, [(exit code, uptime)] -> expected verdicts)
POLICY = [
    (Restart.ALWAYS, [(1, 0.1), (1, 0.1), (0, 0.1)],
     [Verdict("restart", 0.1), Verdict("restart", 0.2), Verdict("restart", 0.4)]),
    (Restart.ALWAYS, [(1, 0.1)] * 6 + [(1, 0.1)],
     [Verdict("restart", d) for d in (0.1, 0.2, 0.4, 0.8, 1.6)] + [Verdict("give-up")] * 2),
    (Restart.ALWAYS, [(1, 0.1), (1, 0.1), (1, 60.0)],
     [Verdict("restart", 0.1), Verdict("restart", 0.2), Verdict("restart", 0.1)]),
    (Restart.ON_FAILURE, [(1, 1.0), (0, 1.0)], [Verdict("restart", 0.1), Verdict("stay-down")]),
    (Restart.NEVER, [(1, 1.0)], [Verdict("stay-down")]),
    (Restart.ALWAYS, [(None, 0.0)], [Verdict("restart", 0.1)]),
]  # fmt: skip


@pytest.mark.parametrize(("restart", "exits", "verdicts"), POLICY)
def test_restart_policy(restart: Restart, exits: list, verdicts: list[Verdict]) -> None:  # type: ignore[type-arg]
    policy = RestartPolicy(restart)
    assert [policy.after_exit(code, uptime) for code, uptime in exits] == verdicts


def test_a_starting_child_at_work_is_not_out_of_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """readiness.Busy: <startup_timeout> counts the seconds since the child last used a tenth
    of a core, up to Busy.LIMIT times it in all; what it says when the time is out."""
    from local_lambdas._compat import processes
    from local_lambdas.supervision import readiness

    now, ticks = [0.0], [0]
    monkeypatch.setattr(processes, "cpu_ticks", lambda pids: ticks[0])
    busy = readiness.Busy(lambda: [1], clock=lambda: now[0])

    def second(used: float) -> bool:  # one second more, `used` of a core meanwhile
        now[0] += 1.0
        ticks[0] += round(used * readiness._HZ)
        return busy.out_of_time(2)

    assert [second(1.0) for _ in range(5)] == [False] * 5  # compiling: never out of time
    assert [second(0.05) for _ in range(2)] == [False, True]  # then idle for 2 s
    assert busy.worked(2) == (
        "not ready after 7s, the last 2s of them without work (<startup_timeout>)"
    )
    busy = readiness.Busy(lambda: [1], clock=lambda: now[0])
    assert [second(1.0), second(0.0)] == [False, True]  # its first second: its start, no work
    assert readiness.Busy(lambda: [1], clock=lambda: now[0]).worked(2) == ""  # not yet waited
    busy = readiness.Busy(lambda: [1], clock=lambda: now[0])  # (`second` asks this one)
    assert not any(second(1.0) for _ in range(2 * readiness.Busy.LIMIT - 1))
    assert second(1.0)  # LIMIT times <startup_timeout> of work: out of time all the same
    assert busy.worked(2) == "not ready after 60s of work (30 times <startup_timeout>)"


def test_backoff_is_capped() -> None:
    policy = RestartPolicy(max_quick_failures=100, max_delay=3.0)
    delays = [policy.after_exit(1, 0).delay for _ in range(10)]
    assert max(delays) == 3.0 and delays == sorted(delays)


def test_watched_change_restarts_the_deepest_owner() -> None:
    from pathlib import Path

    from local_lambdas.watch.paths import affected
    from local_lambdas.watch.paths import named as logged

    root, api = Path("/p"), Path("/p/api")
    dirs = {"root": root, "api": api, "also-api": api}
    assert affected({Path("/p/api/x.py")}, root / "m.xml", dirs) == (False, ["also-api", "api"])
    assert affected({Path("/p/web/y.js")}, root / "m.xml", dirs) == (False, ["root"])
    assert affected({root / "m.xml"}, root / "m.xml", dirs) == (True, [])
    assert affected({Path("/elsewhere")}, root / "m.xml", dirs) == (False, [])
    # <watch>off</watch>: its files are its own still, and restart nobody.
    web = {"root": root, "web": Path("/p/web")}
    assert affected({Path("/p/web/y.js")}, root / "m.xml", web, {"web"}) == (False, [])
    assert affected({Path("/p/x.py")}, root / "m.xml", web, {"web"}) == (False, ["root"])
    named = {"root": root, "api": api}
    assert logged({Path("/p/api/x.py")}, named) == "x.py"  # in the deepest working dir
    assert logged({api}, named) == "api/"  # the working dir itself (gone, or back), not "."
    assert logged({Path("/p/web/y.js"), Path("/p/api/x.py")}, named) == "x.py +1 more"


async def test_a_file_written_again_as_it_was_is_no_edit(tmp_path: Path) -> None:
    from local_lambdas.watch.edits import Contents

    names = ("same", "other", "gone", "big", "hidden/x", "late", "bundle")
    sizes = {"big": Contents.MAX_SIZE + 1, "bundle": 4 << 20}  # (a webpack bundle in dev)
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"1" * sizes.get(name, 1))
        os.utime(tmp_path / name, (time.time() - 10,) * 2)  # written before watching began
    contents = Contents()
    contents.changed(tmp_path / "late")  # seen changing before the reading is done: kept
    contents.take([tmp_path], lambda parent, name: name != "hidden")
    assert await eventually(lambda: bool(contents._digests.keys() - {str(tmp_path / "late")}))
    (tmp_path / "same").write_bytes(b"1")
    (tmp_path / "bundle").write_bytes(b"1" * sizes["bundle"])
    (tmp_path / "other").write_bytes(b"2")
    (tmp_path / "gone").unlink()
    (tmp_path / "hidden/x").write_bytes(b"1")  # in a folder not read: unknown
    (tmp_path / "new").write_bytes(b"1")
    verdicts = {name: contents.changed(tmp_path / name) for name in (*names, "new")}
    assert verdicts == {
        "same": False, "other": True, "gone": True, "big": True, "hidden/x": True,
        "late": False, "bundle": False, "new": True,
    }  # fmt: skip
    assert await contents.changed_among({tmp_path / "same", tmp_path / "new"}) == set()
    assert not contents.changed(tmp_path / "other")  # its new bytes, now known
    contents.stop()


def test_what_a_restart_writes_meanwhile_is_no_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from local_lambdas.watch.edits import Doings

    before, built, source = tmp_path / "before", tmp_path / "server", tmp_path / "main.go"
    before.write_text("")
    os.utime(before, (1.0, 1.0))  # (long before any restart)
    doings = Doings()
    assert doings.edits({before, built}) == {before, built}  # (no restart yet)
    doings.begin({before})
    built.write_text("1")
    doings.end()
    gone = tmp_path / "gone"  # deleted meanwhile: a deletion cannot repeat itself
    assert doings.edits({before, built, gone}) == {before, gone}
    # The file whose edit set off a restart is an edit when saved again during it, in
    # restarts in a row ...
    for saved in range(Doings.IN_A_ROW - 1):
        doings.begin({source})
        source.write_text(f"{saved}")
        built.write_text(f"{saved}")
        doings.end()
        assert doings.edits({source, built}) == {source}
    # ... short of IN_A_ROW: then the process is taken to write it as it starts.
    doings.begin({source})
    source.write_text("last")
    doings.end()
    with caplog.at_level(logging.WARNING):
        assert doings.edits({source}) == set()
    assert f"{source} changed during {Doings.IN_A_ROW} restarts in a row" in caplog.text
    doings.begin({source})  # (and is no edit during a restart from then on)
    source.write_text("then")
    doings.end()
    assert doings.edits({source}) == set()
    os.utime(source, (2.0, 2.0))  # a change at another time is still an edit
    assert doings.edits({source}) == {source}
    # A file git tracks is code from its first change: saved while a restart (a slow
    # build of another file's edit) runs, it is an edit, as an edited file is.
    handler = tmp_path / "handler.go"
    doings.begin({tmp_path / "other.go"})
    handler.write_text("1")
    built.write_text("again")
    doings.end()
    assert doings.edits({handler, built}, tracked={handler}) == {handler}


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
async def test_watch_leaves_out_what_git_ignores_and_knows_what_it_tracks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from local_lambdas.watch.edits import git_ignored, git_tracked

    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    (repo / "uploads").mkdir(parents=True)
    elsewhere.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text("uploads/\n*.out\n")
    source, upload, built, kept = (
        repo / "app.py", repo / "uploads" / "a.png", repo / "server.out", repo / "kept.out"
    )  # fmt: skip
    for path in (source, upload, built, kept):
        path.write_text("x")
    git(repo, "add", "-f", "kept.out")  # tracked: never ignored
    outside = elsewhere / "server.out"  # not in a work tree: git ignores nothing there
    changed = {source, upload, built, kept, outside}
    assert await git_ignored(changed, [repo, elsewhere]) == {upload, built}
    # What git tracks (kept.out, added; the other files are not): code, to Doings.
    (repo / "odd\nname.py").write_text("x")  # (printed quoted without -z)
    git(repo, "add", "app.py", "odd\nname.py")
    odd = repo / "odd\nname.py"
    assert await git_tracked(changed | {odd}, [repo, elsewhere]) == {source, kept, odd}
    assert await git_tracked({repo / "uploads" / "a.png"}, [repo / "uploads"]) == set()
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert await git_ignored(changed, [repo, elsewhere]) == set()
    assert await git_tracked(changed, [repo, elsewhere]) == set()


async def test_a_watch_that_fails_says_so(caplog: pytest.LogCaptureFixture) -> None:
    from local_lambdas.lifecycle import _watch_ended

    async def failing() -> None:
        raise RuntimeError("the handler is closed")

    watcher = asyncio.create_task(failing())
    watcher.add_done_callback(_watch_ended)
    with caplog.at_level(logging.ERROR):
        await asyncio.gather(watcher, return_exceptions=True)
    assert "--watch stopped on an error (RuntimeError: the handler is closed)" in caplog.text


async def test_watch_past_the_systems_limit_says_so_and_follows_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A stand-in for watchfiles: the system's limit of watched folders is global (a sysctl),
    not one a test may lower. It fails as watchfiles does past the limit, then, watching the
    manifest's folder alone, reports the manifest changed."""
    from watchfiles import Change

    from local_lambdas.watch import watcher

    big, manifest = tmp_path / "home", tmp_path / "manifest.xml"
    (big / "deep").mkdir(parents=True)
    manifest.write_text("<manifest/>")
    stop, calls, reacted = asyncio.Event(), [], []

    async def awatch(
        *paths: Path, recursive: bool = True, **_: object
    ) -> AsyncIterator[set[tuple[Change, str]]]:
        calls.append((paths, recursive))
        if recursive:
            raise OSError(f'OS file watch limit reached. about ["{big / "deep"}"]')
        manifest.write_text("<manifest><!-- changed --></manifest>")
        yield {(Change.modified, str(manifest))}

    async def react(reload: bool, ids: list[str], changed: str) -> None:
        reacted.append((reload, ids))
        stop.set()

    monkeypatch.setattr(watcher, "awatch", awatch)
    dirs = {"svc": big}
    await watcher.watch(manifest, lambda: dirs, react, socket_dir=tmp_path / "s", stop=stop)
    assert calls == [((tmp_path, big), True), ((tmp_path,), False)]
    assert reacted == [(True, [])]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(said) == 1 and said[0].startswith(f"--watch: {big} holds more folders than"), said
    assert "fs.inotify.max_user_watches" in said[0] and "the manifest is still followed" in said[0]


def test_a_watched_manifest_links_target_is_the_manifest(tmp_path: Path) -> None:
    """Editing the file a manifest link points to reloads, and restarts nobody for it."""
    from local_lambdas.watch.paths import affected

    (tmp_path / "dev.xml").write_text("<manifest/>")
    (tmp_path / "manifest.xml").symlink_to("dev.xml")
    dirs = {"root": tmp_path}
    assert affected({tmp_path / "dev.xml"}, tmp_path / "manifest.xml", dirs) == (True, [])
    assert affected({tmp_path / "prod.xml"}, tmp_path / "manifest.xml", dirs) == (False, ["root"])


def test_watch_filter_ignores_globs_caches_and_the_socket_dir() -> None:
    from pathlib import Path

    from watchfiles import Change

    from local_lambdas.watch.paths import Filter

    keep = Filter(["*.log", "*/tmp/*"], Path("/run/ll-1"), [], Path("/p/manifest.xml"))
    assert keep(Change.modified, "/p/api/handler.py")
    assert not keep(Change.modified, "/p/api/server.log")
    assert not keep(Change.modified, "/p/tmp/x.py")
    assert not keep(Change.modified, "/p/api/__pycache__/h.pyc")
    assert not keep(Change.modified, "/p/node_modules/x/index.js")
    assert not keep(Change.added, "/run/ll-1/api")
    for name in ("db.sqlite3", "db.sqlite3-journal", "instance/a.sqlite", "a.pid", "a.log.1"):
        assert not keep(Change.modified, f"/p/{name}")  # what a running child writes
    # What `pytest --cov` in another terminal writes beside the code (outside git, which
    # would say it ignores them): coverage.py's data and its reports.
    for name in (".coverage", ".coverage.host.1234.XyZ", "coverage.xml", "htmlcov/index.html"):
        assert not keep(Change.modified, f"/p/{name}")
    # What an editor writes as one types, before any save: Kate's swap file, LibreOffice's
    # lock (a CSV the child reads, say), Emacs's lock, Vim's swap.
    for name in (".app.py.kate-swp", ".~lock.rates.csv#", ".#app.py", ".app.py.swp"):
        assert not keep(Change.added, f"/p/{name}")


@pytest.mark.parametrize(
    ("path", "hidden"),
    [
        ("/p/.next/server/app.js", True),  # Next.js's dev server writes it as it compiles
        ("/p/web/.svelte-kit/output/x.js", True),
        ("/p/.vscode/settings.json", True),
        ("/p/.flaskenv", False),  # a hidden file, read as the child starts
        ("/p/web/.eslintrc.json", False),
        ("/p/src/app.py", False),
        ("/home/u/.projects/p/app.py", False),  # hidden above the watched folder: watched
        ("/p/.hidden-app/main.py", False),  # a working_dir of its own, hidden by name
        ("/elsewhere/.x/y", False),
        ("/p", False),
        ("/p/.cache", True),  # the hidden folder itself (made as the tool starts)
    ],
)
def test_watch_leaves_hidden_folders_alone(path: str, hidden: bool, tmp_path: Path) -> None:
    from local_lambdas.watch.paths import hidden as in_hidden_folder

    (tmp_path / "p/.cache").mkdir(parents=True)
    roots = [Path("/p"), Path("/home/u/.projects/p"), Path("/p/.hidden-app")]
    moved = [tmp_path / root.relative_to("/") for root in roots]
    assert in_hidden_folder(tmp_path / path.lstrip("/"), moved) == hidden


def test_watch_leaves_virtualenvs_alone_even_once_removed(tmp_path: Path) -> None:
    from local_lambdas.watch.paths import in_virtualenv, keep_folder

    root = tmp_path / "app"
    (root / "venv/lib").mkdir(parents=True)
    (root / "venv/pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "src").mkdir()
    assert in_virtualenv(root / "venv", [root])  # the folder itself, as it is made
    assert in_virtualenv(root / "venv/lib/site.py", [root])
    assert not in_virtualenv(root / "src/main.py", [root])
    assert not keep_folder(str(root), "venv") and keep_folder(str(root), "src")
    # The project in a folder that is itself a virtualenv (`virtualenv proj; cd proj`):
    # below the watched folder only, or nothing would ever restart.
    assert not in_virtualenv(root / "venv/src/main.py", [root / "venv"])
    (root / "venv/pyvenv.cfg").unlink()  # `rm -rf venv`: its pyvenv.cfg gone first
    assert in_virtualenv(root / "venv/lib/site.py", [root])


async def _limited(
    deadlines: Deadlines, seconds: float, started: asyncio.Event | None = None
) -> str:
    """Work of `seconds` under `deadlines`, as the proxy runs an exchange."""
    task = deadlines.start()
    if started is not None:
        started.set()
    try:
        await asyncio.sleep(seconds)  # the work itself, not a wait for readiness
        return "done"
    except asyncio.CancelledError:
        if deadlines.stop(task):
            return "timed out"
        raise
    finally:
        deadlines.stop(task)


async def test_deadlines_cancel_only_what_outlives_the_limit() -> None:
    deadlines = Deadlines(0.2)
    results = await asyncio.gather(
        _limited(deadlines, 0.01), _limited(deadlines, 5), _limited(deadlines, 0.05)
    )
    assert list(results) == ["done", "timed out", "done"]
    # A later request gets its own full limit, from a timer armed again.
    assert await _limited(deadlines, 0.1) == "done"
    assert await _limited(deadlines, 5) == "timed out"
    deadlines.close()


async def test_an_outside_cancellation_is_not_a_timeout() -> None:
    deadlines = Deadlines(30)
    started = asyncio.Event()
    task = asyncio.create_task(_limited(deadlines, 30, started))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines._running and not deadlines._expired
    deadlines.close()


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


def _process(mode: str = "http", startup: str = "10s") -> Process:
    return Process.model_validate({
        "id": "api", "executable": "x", "routes": ("/api/*",), "pipe_name": "api",
        "working_dir": Path("."), "communication_mode": mode, "startup_timeout": startup,
    })  # fmt: skip


@pytest.mark.parametrize(("mode", "address", "foreign", "lines", "says"), [
    ("http", "127.0.0.1:4000", False, [], "not ready within 10s (<startup_timeout>): "
     "nothing listened on http://127.0.0.1:4000"),
    ("http", "127.0.0.1:4000", True, [], "another program listens on http://127.0.0.1:4000"),
    ("http", "127.0.0.1:4000", False, [" * Running on http://127.0.0.1:5000"],
     "it printed port 5000, which is not its $PORT (4000): set <port>5000</port>"),
    ("http", "127.0.0.1:4000", False, ["listening on port 4000"], "nothing listened on "
     "http://127.0.0.1:4000"),  # its own port printed: no advice
    ("pipe", "/run/x/api", False, ["port 5000"], "nothing listened on /run/x/api"),
])  # fmt: skip
def test_why_a_child_is_not_ready(
    mode: str, address: str, foreign: bool, lines: list[str], says: str
) -> None:
    told = explain.not_ready_in_time(_process(mode), address, foreign=foreign, last_lines=lines)
    assert says in told
    assert ("printed port" in told) == ("printed port" in says)


@pytest.mark.parametrize(("mode", "address", "elsewhere", "says"), [
    ("http", "127.0.0.1:4000", ["0.0.0.0:8080"],
     "it listens on 0.0.0.0:8080 instead: set <port>8080</port>, or have it listen on "
     "$PORT (4000)"),
    ("http", "127.0.0.1:4000", ["[::]:8080", "[::]:9229"],
     "it listens on [::]:8080, [::]:9229 instead: set <port> to its HTTP port, or have it "
     "listen on $PORT (4000)"),
    ("http", "127.0.0.1:4000", ["10.0.0.5:4000"],
     "it listens on 10.0.0.5:4000, where 127.0.0.1 does not reach it: have it listen on "
     "127.0.0.1 or on every address (0.0.0.0)"),
    ("http", "127.0.0.1:4000", ["/tmp/app.sock"],
     "it listens on /tmp/app.sock instead: a child on a socket file goes under "
     "<communication_mode>pipe</communication_mode>"),
    ("pipe", "/run/x/api", ["127.0.0.1:5000"],
     "it listens on 127.0.0.1:5000 instead: a server on a port goes under "
     "<communication_mode>passthrough</communication_mode>"),
    ("pipe", "/run/x/api", ["/tmp/app.sock"],
     "it listens on /tmp/app.sock instead: a pipe child listens at $PIPE_ADDRESS"),
    ("pipe", "/run/x/api", ["/a", "/b", "/c", "/d"], "it listens on /a, /b, /c ... instead"),
    # The earlier tool's /tmp/<pipe_name>, written into the child: --socket-dir puts it there.
    ("pipe", "/run/x/api", ["/tmp/api"],
     "it listens on /tmp/api instead: a pipe child listens at $PIPE_ADDRESS, or run the "
     "proxy with --socket-dir /tmp to put it there"),
])  # fmt: skip
def test_where_a_child_listens_instead_is_named(
    mode: str, address: str, elsewhere: list[str], says: str
) -> None:
    """What the kernel tells of the child's listening sockets outweighs the ports it printed."""
    told = explain.not_ready_in_time(_process(mode), address, foreign=False,
                                     last_lines=["port 7000"], elsewhere=elsewhere)  # fmt: skip
    assert told.startswith("not ready within 10s (<startup_timeout>): nothing listened on ")
    assert says in told and "printed port" not in told


@pytest.mark.parametrize(("mode", "lines", "elsewhere", "says"), [
    # Sure: where it will stay. A pipe child at its pipe's name in another folder...
    ("pipe", [], ["/tmp/api"], "it listens on /tmp/api instead: a pipe child listens at "
     "$PIPE_ADDRESS, or run the proxy with --socket-dir /tmp to put it there"),
    # ... a server at the port it printed.
    ("http", [" * Running on http://127.0.0.1:5000"], ["127.0.0.1:5000"],
     "it printed port 5000, which is not its $PORT (4000): set <port>5000</port>"),
    # Unsure: another socket, a port it did not print (an inspector's, gRPC's), a printed
    # port it does not hold: it may listen at its address next.
    ("pipe", [], ["/tmp/admin.sock"], None),
    ("pipe", [], ["127.0.0.1:5000"], None),
    ("http", [], ["127.0.0.1:9229"], None),
    ("http", ["gRPC on port 50051"], ["127.0.0.1:9229"], None),
    ("http", ["listening on port 4000"], ["127.0.0.1:4000"], None),  # its own
])  # fmt: skip
def test_where_a_starting_child_surely_listens_instead(
    mode: str, lines: list[str], elsewhere: list[str], says: str | None
) -> None:
    address = "/run/x/api" if mode == "pipe" else "127.0.0.1:4000"
    told = explain.surely_elsewhere(_process(mode), address, last_lines=lines, elsewhere=elsewhere)
    assert told == says if says is None else told is not None and says in told


def test_a_port_it_printed_and_listens_on_is_said_as_printed() -> None:
    """The port a dev server printed, found listening too: said as the line it printed
    (the one the user sees), the other ports it holds aside."""
    told = explain.not_ready_in_time(
        _process(), "127.0.0.1:4000", foreign=False,
        last_lines=[" * Running on http://127.0.0.1:5000", " * Debugger PIN: 145-831-020"],
        elsewhere=["127.0.0.1:5000", "127.0.0.1:9229"],
    )  # fmt: skip
    assert told.endswith("nothing listened on http://127.0.0.1:4000; it printed port 5000, "
                         "which is not its $PORT (4000): set <port>5000</port>, or pass it "
                         "${PORT}")  # fmt: skip


def test_a_ready_path_that_is_refused_is_named() -> None:
    told = explain.not_ready_in_time(_process(), "127.0.0.1:4000", foreign=False, last_lines=[],
                                     refused="GET /healthz answered 503")  # fmt: skip
    assert told == ("not ready within 10s (<startup_timeout>): it listens on "
                    "http://127.0.0.1:4000, but its <ready_path>: GET /healthz answered 503 (a "
                    "2xx or 3xx is wanted)")  # fmt: skip


@pytest.mark.parametrize(("written", "fix"), [
    ("http://localhost:5173", None), ("https://app.test:8443", None), ("*", None),
    ("null", None), ("chrome-extension://abc", None), ("http://[::1]:3000", None),
    ("http://a.test/", "http://a.test"), ("localhost:5173", "http://localhost:5173"),
    ("http://LocalHost:5173", "http://localhost:5173"), ("HTTPS://a.test", "https://a.test"),
    ("http://a.test/app?x=1", "http://a.test"), ("http://a.test:80", "http://a.test"),
    ("https://a.test:443", "https://a.test"), ("https://a.test:80", None),
    # No browser sends these, whatever the spelling: no host, a space, a port not a number.
    ("http://", "scheme://host[:port]"), ("http://a b", "scheme://host[:port]"),
    ("http://a.test:x", "scheme://host[:port]"), ("http://[::1", "scheme://host[:port]"),
])  # fmt: skip
def test_an_origin_is_spelt_as_browsers_send_it(written: str, fix: str | None) -> None:
    """A <cors> or --cors origin spelt otherwise would never match: refused, with the fix."""
    if fix is None:
        assert check_origin(written) == written
    else:
        shown = fix if fix.startswith("scheme") else f'"{fix}"'
        with pytest.raises(ValueError, match=f"write {re.escape(shown)}"):
            check_origin(written)


@pytest.mark.parametrize(("code", "says"), [
    (None, "could not be started"), (0, "exited with code 0"), (3, "exited with code 3"),
    (-15, "was killed by SIGTERM"), (-250, "was killed by signal 250"),
    pytest.param(-9, "was killed by SIGKILL",
                 marks=pytest.mark.skipif(sys.platform == "win32", reason="no SIGKILL")),
])  # fmt: skip
def test_how_a_child_ended(code: int | None, says: str) -> None:
    assert explain.ended(code) == says


def test_a_node_project_not_installed_is_named_with_its_installer(tmp_path: Path) -> None:
    """A fresh clone before `npm install`: package.json names dependencies, no node_modules
    here or above. The lock file says which tool installs it; Plug'n'Play needs none."""
    project = tmp_path / "web"
    project.mkdir()
    assert explain.uninstalled(project) == ""  # no package.json
    (project / "package.json").write_text('{"scripts": {"dev": "vite"}}')
    assert explain.uninstalled(project) == ""  # nothing to install
    (project / "package.json").write_text('{"devDependencies": {"vite": "^5.0.0"}}')
    assert explain.uninstalled(project) == (
        "its package.json names dependencies that are not installed (no node_modules): run "
        f"npm install in {project}, or give it <build>npm install</build>"
    )
    (project / "yarn.lock").write_text("")
    assert "run yarn install in " in explain.uninstalled(project)
    (project / ".pnp.cjs").write_text("")  # Yarn's Plug'n'Play
    assert explain.uninstalled(project) == ""
    (project / ".pnp.cjs").unlink()
    (tmp_path / "node_modules").mkdir()  # a workspace's, above it: Node.js looks up there
    assert explain.uninstalled(project) == ""
    (project / "package.json").write_text("{not json")
    assert explain.uninstalled(project) == ""


def test_a_python_child_outside_its_projects_virtualenv_is_named_with_it(
    tmp_path: Path,
) -> None:
    """A Python child that cannot import a module, run by an interpreter (or a console
    script) other than its project's virtual environment's, here or above: that one named."""
    project = tmp_path / "api"
    (project / "src").mkdir(parents=True)
    missing = "ModuleNotFoundError: No module named 'flask'"
    bin_dir = "Scripts" if sys.platform == "win32" else "bin"
    assert explain.outside_venv(project / "src", "/usr/bin/python3", missing) == ""  # none
    venv = project / "venv"
    (venv / bin_dir).mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert explain.outside_venv(project / "src", "/usr/bin/python3", missing) == (
        f"it does not run in the virtual environment {venv}: start it from there"
    )  # (no python3 of its own to name)
    (venv / bin_dir / "python3").write_text("")
    assert explain.outside_venv(project / "src", "/usr/bin/python3", missing) == (
        f"it does not run in the virtual environment {venv}, which may hold what it imports: "
        f"give <executable>{venv / bin_dir / 'python3'}</executable>, or start local-lambdas "
        "with it activated"
    )
    own = str(venv / bin_dir / "python3")
    assert explain.outside_venv(project / "src", own, missing) == ""  # it runs there
    assert explain.outside_venv(project / "src", "/usr/bin/python3", "Error: boom") == ""
    old = "ImportError: No module named yaml"  # (Python 2's words, still printed by some)
    assert explain.outside_venv(project, "/usr/bin/python3", old) != ""


_NODE_CRASH = """node:events:502
      throw er; // Unhandled 'error' event
      ^

Error: listen EADDRINUSE: address already in use 127.0.0.1:3400
    at Server.setupListenHandle [as _listen2] (node:net:1908:16)
    at process.processTicksAndRejections (node:internal/process/task_queues:83:21)
Emitted 'error' event on Server instance at:
    at emitErrorNT (node:net:1944:8) {
  code: 'EADDRINUSE',
  port: 3400
}

Node.js v20.20.2"""


_NODE_ESM = """node:internal/modules/esm/resolve:854
  throw new ERR_MODULE_NOT_FOUND(packageName, fileURLToPath(base), null);
        ^

Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'express' imported from /app/server.mjs
    at packageResolve (node:internal/modules/esm/resolve:854:9)
    at defaultResolve (node:internal/modules/esm/resolve:1157:11) {
  code: 'ERR_MODULE_NOT_FOUND'
}

Node.js v20.20.2"""

# Express 5 refusing Express 4's `app.get("*")`, under nodemon under concurrently (`npm run
# dev`: "concurrently 'nodemon server.js' 'node side.js'"), each line tagged by concurrently.
_CONCURRENTLY = "\n".join(
    [
        "> x@1.0.0 dev",
        '> concurrently -n api,side "nodemon server.js" "node side.js"',
        "",
        "[side] side worker 14330",
        "[api] [nodemon] starting `node server.js`",
        "[api] /app/node_modules/path-to-regexp/dist/index.js:108",
        "[api]                     throw new PathError(`Missing parameter name`, str);",
        "[api]                     ^",
        "[api] ",
        "[api] PathError [TypeError]: Missing parameter name at index 1: *; visit "
        "https://git.new/pathToRegexpError for info",
        "[api]     at consumeUntil (/app/node_modules/path-to-regexp/dist/index.js:108:27)",
        "[api]     at app.<computed> [as get] (/app/node_modules/express/lib/app.js:478:22) {",
        "[api]   originalPath: '*'",
        "[api] }",
        "[api] ",
        "[api] Node.js v20.20.2",
        "[api] [nodemon] app crashed - waiting for file changes before starting...",
    ]
)


# Spring Boot's failed start (its log line's ":" introduces a banner, not the reason).
_SPRING = "\n".join([
    "2026-12-07T05:00:01.000Z ERROR 1234 --- [           main] o.s.b.d.LoggingFailureAnaly"
    "sisReporter   : ",
    "", "***************************", "APPLICATION FAILED TO START",
    "***************************", "", "Description:", "",
    "Web server failed to start. Port 8080 was already in use.", "", "Action:", "",
    "Identify and stop the process that's listening on port 8080 or configure this "
    "application to listen on another port.",
])  # fmt: skip
_CARGO = "\n".join([
    "   Compiling x v0.1.0 (/app)", "error[E0425]: cannot find value `y` in this scope",
    " --> src/main.rs:2:20", "  |", '2 |     println!("{}", y);',
    "  |                    ^ not found in this scope", "",
    "For more information about this error, try `rustc --explain E0425`.",
    'error: could not compile `x` (bin "x") due to 1 previous error',
])  # fmt: skip
# `python manage.py runserver` whose settings are wrong: an exception not named *Error.
_DJANGO = "\n".join([
    "Watching for file changes with StatReloader", "Exception in thread django-main-thread:",
    "Traceback (most recent call last):",
    '  File "/usr/lib/python3.11/threading.py", line 1045, in _bootstrap_inner',
    "    self.run()",
    "django.core.exceptions.ImproperlyConfigured: The SECRET_KEY setting must not be empty.",
])  # fmt: skip
# gunicorn 23 given an app it cannot import: its own account of the failure comes last.
_GUNICORN = "\n".join([
    "[2026-12-07 05:21:29 +0000] [23253] [ERROR] Exception in worker process",
    "Traceback (most recent call last):",
    '  File "/venv/lib/python3.11/site-packages/gunicorn/util.py", line 420, in import_app',
    "    mod = importlib.import_module(module)",
    "          ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    "ModuleNotFoundError: No module named 'nomod'",
    "No module named 'nomod'",
    "[2026-12-07 05:21:29 +0000] [23253] [INFO] Worker exiting (pid: 23253)",
    "[2026-12-07 05:21:30 +0000] [23249] [ERROR] Worker (pid:23253) exited with code 3.",
    "[2026-12-07 05:21:30 +0000] [23249] [ERROR] Shutting down: Master",
    "[2026-12-07 05:21:30 +0000] [23249] [ERROR] Reason: Worker failed to boot.",
])  # fmt: skip
# A FastAPI lifespan's asyncio.TaskGroup failing under uvicorn (Python 3.11): an exception
# group's traceback, its lines in a gutter, then uvicorn's account.
_EXCEPTION_GROUP = "\n".join([
    "INFO:     Waiting for application startup.",
    "ERROR:    Traceback (most recent call last):",
    '  File "/venv/lib/python3.11/site-packages/starlette/routing.py", line 694, in lifespan',
    "    async with self.lifespan_context(app) as maybe_state:",
    "  + Exception Group Traceback (most recent call last):",
    '  |   File "/app/fa.py", line 6, in lifespan',
    "  |     async with asyncio.TaskGroup() as tg:",
    "  | ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception)",
    "  +-+---------------- 1 ----------------",
    "    | Traceback (most recent call last):",
    '    |   File "uvloop/loop.pyx", line 2017, in uvloop.loop.Loop.create_connection',
    "    | ConnectionRefusedError: [Errno 111] Connection refused",
    "    +------------------------------------",
    "",
    "ERROR:    Application startup failed. Exiting.",
])  # fmt: skip
# A promise rejected with a string (Node.js 20): the reason is past the quote's 200 characters.
_REJECTION = "\n".join([
    "node:internal/process/promises:289", "            triggerUncaughtException(err, true);",
    "            ^", "",
    "[UnhandledPromiseRejection: This error originated either by throwing inside of an async "
    "function without a catch block, or by rejecting a promise which was not handled with "
    '.catch(). The promise rejected with the reason "connect ECONNREFUSED 127.0.0.1:5432".] {',
    "  code: 'ERR_UNHANDLED_REJECTION'", "}", "", "Node.js v20.20.2",
])  # fmt: skip


# .NET 8's account of an exception nothing caught: its inner exceptions, each trace ended by
# a rule. Maven's and Gradle's account of a program they ran (`mvn spring-boot:run`, `gradle
# bootRun`) that failed, and their advice, after what it said. These three are written from
# the formats their tools print, not captured here: this machine has no .NET, and Maven and
# Gradle need their plugin repositories, which it cannot reach.
_DOTNET = "\n".join([
    "Unhandled exception. System.InvalidOperationException: No connection string 'Default'.",
    " ---> System.ArgumentNullException: Value cannot be null. (Parameter 'connectionString')",
    "   at Program.<Main>$(String[] args) in /app/Program.cs:line 9",
    "   --- End of inner exception stack trace ---",
    "   at Program.<Main>$(String[] args) in /app/Program.cs:line 12",
])  # fmt: skip
_MAVEN = "\n".join([
    "starting: no config at /etc/demo.yml",
    "[INFO] " + "-" * 72, "[INFO] BUILD FAILURE", "[INFO] " + "-" * 72,
    "[INFO] Total time:  4.205 s", "[INFO] Finished at: 2026-12-07T10:00:01Z",
    "[INFO] " + "-" * 72,
    "[ERROR] Failed to execute goal org.springframework.boot:spring-boot-maven-plugin:3.2.0:run "
    "(default-cli) on project demo: Process terminated with exit code: 1 -> [Help 1]",
    "[ERROR] ", "[ERROR] To see the full stack trace of the errors, re-run Maven with the -e "
    "switch.", "[ERROR] Re-run Maven using the -X switch to enable full debug logging.",
    "[ERROR] ", "[ERROR] For more information about the errors and possible solutions, please "
    "read the following articles:",
    "[ERROR] [Help 1] http://cwiki.apache.org/confluence/display/MAVEN/MojoExecutionException",
])  # fmt: skip
_GRADLE = "\n".join([
    "starting: no config at /etc/demo.yml", "", "> Task :bootRun FAILED", "",
    "FAILURE: Build failed with an exception.", "", "* What went wrong:",
    "Execution failed for task ':bootRun'.",
    "> Process 'command '/usr/lib/jvm/java-17-openjdk-amd64/bin/java'' finished with non-zero "
    "exit value 1", "", "* Try:", "> Run with --stacktrace option to get the stack trace.",
    "> Get more help at https://help.gradle.org.", "", "BUILD FAILED in 5s",
    "3 actionable tasks: 1 executed, 2 up-to-date",
])  # fmt: skip


# What real programs print as they die (captured from each, their port taken, but for the
# three above), and the line that says why.
@pytest.mark.parametrize(("output", "says"), [
    (_NODE_CRASH, "Error: listen EADDRINUSE: address already in use 127.0.0.1:3400"),
    (_EXCEPTION_GROUP, "ConnectionRefusedError: [Errno 111] Connection refused"),
    ("INFO:     Waiting for application startup.\nERROR:    [Errno 111] Connection refused\n"
     "ERROR:    Application startup failed. Exiting.", "ERROR:    [Errno 111] Connection "
     "refused"),  # uvicorn, a lifespan that said why it failed
    (_GUNICORN, "ModuleNotFoundError: No module named 'nomod'"),
    (_SPRING, "Web server failed to start. Port 8080 was already in use."),
    (_CARGO, "error[E0425]: cannot find value `y` in this scope"),
    (_DJANGO, "django.core.exceptions.ImproperlyConfigured: The SECRET_KEY setting must not "
     "be empty."),
    (_REJECTION, 'UnhandledPromiseRejection: The promise rejected with the reason "connect '
     'ECONNREFUSED 127.0.0.1:5432".'),
    ('Traceback (most recent call last):\n  File "a.py", line 2, in <module>\n    import yaml\n'
     "ModuleNotFoundError: No module named 'yaml'\n\nDuring handling of the above exception, "
     'another exception occurred:\n\nTraceback (most recent call last):\n  File "a.py", line '
     '4, in <module>\n    raise SystemExit("install pyyaml")\nSystemExit: install pyyaml',
     "SystemExit: install pyyaml"),  # the last of chained exceptions
    (_NODE_ESM, "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'express' imported from "
     "/app/server.mjs"),
    (_CONCURRENTLY, "[api] PathError [TypeError]: Missing parameter name at index 1: *; visit "
     "https://git.new/pathToRegexpError for info"),
    ("api-1  | Traceback (most recent call last):\napi-1  |   File \"app.py\", line 1, in "
     "<module>\napi-1  | ModuleNotFoundError: No module named 'flask'\napi-1 exited with code 1",
     "api-1  | ModuleNotFoundError: No module named 'flask'"),  # docker compose's tags
    ("12:00:00 web.1  | Error: That port is already in use.\n12:00:00 system | sending "
     "SIGTERMs", "12:00:00 web.1  | Error: That port is already in use."),  # honcho's
    ("INFO:     Application startup complete.\nERROR:    [Errno 98] error while attempting to "
     "bind on address ('127.0.0.1', 3400): address already in use\nINFO:     Waiting for "
     "application shutdown.\nINFO:     Application shutdown complete.",  # uvicorn
     "ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 3400): "
     "address already in use"),
    ('Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n    '
     "sock.bind(binding)\n    ^^^^^^^^^^^^^^^^^^\nOSError: [Errno 98] Address already in use",
     "OSError: [Errno 98] Address already in use"),
    ("Run 'python manage.py migrate' to apply them.\nError: That port is already in use.",
     "Error: That port is already in use."),  # Django
    ("[ERROR] Connection in use: ('127.0.0.1', 3400)\n[ERROR] Can't connect to "
     "('127.0.0.1', 3400)", "[ERROR] Can't connect to ('127.0.0.1', 3400)"),  # gunicorn
    ("\nthread 'main' (21170) panicked at m.rs:1:72:\ncould not bind: address in use\nnote: "
     "run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
     "thread 'main' (21170) panicked at m.rs:1:72: could not bind: address in use"),
    ('Exception in thread "main" java.net.BindException: Address already in use\n\tat '
     "java.base/sun.nio.ch.Net.bind0(Native Method)",
     'Exception in thread "main" java.net.BindException: Address already in use'),
    ("panic: listen tcp :3400: bind: address already in use\n\ngoroutine 1 [running]:\n"
     "main.main()\n\t/src/main.go:9 +0x65\nexit status 2",
     "panic: listen tcp :3400: bind: address already in use"),
    ("2026/12/01 08:00:00 listen tcp 127.0.0.1:3400: bind: address already in use\n"
     "exit status 1", "2026/12/01 08:00:00 listen tcp 127.0.0.1:3400: bind: address already "
     "in use"),  # Go's log.Fatal under `go run`
    ("app.rb:3:in 'listen': boom (RuntimeError)\n\tfrom app.rb:7:in '<main>'",
     "app.rb:3:in 'listen': boom (RuntimeError)"),
    ("Address already in use\nPort 3400 is in use by another program. Either identify and "
     "stop that program, or start the server with a different port.",  # Flask
     "Port 3400 is in use by another program. Either identify and stop that program, or "
     "start the server with a different port."),
    ("cannot start: missing config\n", "cannot start: missing config"),
    # npm itself failing (npm 10): its first line that says something, not a blank "npm error"
    ('npm error Missing script: "start"\nnpm error\nnpm error Did you mean one of these?\n'
     "npm error   npm star # Mark your favorite packages\nnpm error A complete log of this "
     "run can be found in: /root/.npm/_logs/x.log", 'npm error Missing script: "start"'),
    ("npm error code ENOENT\nnpm error syscall open\nnpm error path /a/package.json\n"
     "npm error errno -2\nnpm error enoent Could not read package.json: Error: ENOENT: no "
     "such file or directory, open '/a/package.json'\nnpm error enoent This is related to "
     "npm not being able to find a file.",
     "npm error enoent Could not read package.json: Error: ENOENT: no such file or "
     "directory, open '/a/package.json'"),
    # A script npm ran that failed: the script's own line, not npm's account of the failure.
    ("> x@1.0.0 start\n> node server.js\n\nError: Cannot find module 'express'\n"
     "npm ERR! code 1\nnpm ERR! path /a\nnpm ERR! command failed\nnpm ERR! command sh -c "
     "node server.js", "Error: Cannot find module 'express'"),
    # yarn 1's account of a script that failed, or of no such script, after what it said.
    ("yarn run v1.22.22\n$ vite --port $PORT\n/bin/sh: 1: vite: not found\nerror Command "
     "failed with exit code 127.\ninfo Visit https://yarnpkg.com/en/docs/cli/run for "
     "documentation about this command.", "/bin/sh: 1: vite: not found"),
    ('yarn run v1.22.22\nerror Command "nosuch" not found.\ninfo Visit https://yarnpkg.com/en/'
     "docs/cli/run for documentation about this command.", 'error Command "nosuch" not found.'),
    ("./nope.sh\nmake: ./nope.sh: No such file or directory\nmake: *** [Makefile:2: run] Error "
     "127", "make: ./nope.sh: No such file or directory"),  # make's account of its recipe
    ("Can't locate Mojolicious/Lite.pm in @INC (you may need to install the Mojolicious::Lite "
     "module) (@INC contains: /etc/perl) at app.pl line 1.\nBEGIN failed--compilation aborted "
     "at app.pl line 1.", "Can't locate Mojolicious/Lite.pm in @INC (you may need to install "
     "the Mojolicious::Lite module) (@INC contains: /etc/perl) at app.pl line 1."),  # Perl
    (_DOTNET, "Unhandled exception. System.InvalidOperationException: No connection string "
     "'Default'."),
    (_MAVEN, "starting: no config at /etc/demo.yml"),
    (_MAVEN.replace("starting: no config", "java.lang.IllegalStateException: no config"),
     "java.lang.IllegalStateException: no config at /etc/demo.yml"),
    (_GRADLE, "starting: no config at /etc/demo.yml"),
    ("[INFO] BUILD FAILURE\n[ERROR] Failed to execute goal on project demo: Could not resolve "
     "dependencies for project com.example:demo:jar:1.0", "[ERROR] Failed to execute goal on "
     "project demo: Could not resolve dependencies for project com.example:demo:jar:1.0"),
    ("", ""), ("\n  \n", ""),
])  # fmt: skip
def test_the_line_that_says_why_a_child_ended(output: str, says: str) -> None:
    assert failure_line.telling(output.split("\n")) == says


# What a child writes, read by read ("" between reads: a quiet longer than the wait to show an
# unended line) -> the lines shown.
SHOWN_AS_WRITTEN = {
    "lines": (["a\nb\n"], ["a", "b"]),
    "a prompt, answered": (["Seed? [y/N] ", "", "y\n"], ["Seed? [y/N] ", "y"]),
    "a progress bar ended": (
        ["\rDone 50%", "", "\rDone 100%", "", "\nnext\n"],
        ["\rDone 50%", "\rDone 100%", "next"],
    ),
    "its CRLF split": (["ask ", "", "\r", "\nnext\r\n"], ["ask ", "next\r"]),
    "a line ended at once": (["ask ", "\n"], ["ask "]),
    "an empty line after": (["ask ", "", "\n\nnext\n"], ["ask ", "", "next"]),
}


@pytest.mark.parametrize("case", SHOWN_AS_WRITTEN)
async def test_a_line_shown_before_its_end_is_ended_by_what_follows(case: str) -> None:
    """A line shown before its end (spawned.py: a prompt, a progress bar's last state) is not
    followed by an empty line when its end comes, as in a terminal."""
    reads, expected = SHOWN_AS_WRITTEN[case]
    shown: list[bytes] = []
    protocol = spawned.Spawned(lambda _, lines: shown.extend(lines), "mark", None)
    for data in reads:
        if data:
            protocol.pipe_data_received(1, data.encode())
        else:
            protocol._show_unended(1)  # (what its timer does after a quiet)
    protocol._stop_waiting(1)
    assert [line.decode() for line in shown] == expected


@pytest.mark.parametrize(("columns", "row"), [
    ("200", "  /api/*   api       /tmp/local-lambdas-0123abcd/api"),
    # A terminal narrower than the table (a split pane): a line a row, the values whole,
    # where rich cut them ("/tmp/local-lam…").
    ("40", "  /api/*: process api, address /tmp/local-lambdas-0123abcd/api"),
])  # fmt: skip
def test_a_table_wider_than_its_terminal_cuts_no_value(
    columns: str, row: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setenv("NO_COLOR", "1")  # a terminal, without colours to strip
    out = io.StringIO()
    printer = Printer(color=True, file=out)
    printer.table("serving on http://x", ["routes", "process", "address"],
                  [["/api/*", "api", "/tmp/local-lambdas-0123abcd/api"]])  # fmt: skip
    printer.flush()
    lines = out.getvalue().splitlines()
    assert lines[0] == "serving on http://x" and row in lines, lines


def test_output_is_written_where_no_thread_can_be_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At the system's limit on processes (ulimit -u, a container's pids.max) no thread
    starts: the proxy's output went nowhere, with a "--- Logging error ---" traceback for
    each line. It is written as it comes, and by the thread once one starts."""
    import threading

    start = threading.Thread.start

    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    out = io.StringIO()
    printer = Printer(color=False, file=out)
    monkeypatch.setattr(threading.Thread, "start", refused)
    printer.table("one", ["column"], [["1"]])
    assert out.getvalue().startswith("one\n"), out.getvalue()
    monkeypatch.setattr(threading.Thread, "start", start)
    printer.table("two", ["column"], [["2"]])
    printer.flush()
    assert "\ntwo\n" in out.getvalue(), out.getvalue()


def test_a_windows_command_line_too_long_is_said() -> None:
    """CreateProcess takes a command line of 32,766 characters at most ("The filename or
    extension is too long"), whatever Linux would take."""
    fits, over = ["-c", "x" * 32_000], ["-c", "x" * 33_000]
    assert executables.too_large(fits, [], "python", windows=True) == []
    assert executables.too_large(over, [], "python", windows=True) == [(
        "", 0, "the command line comes to 33,010 characters, and Windows takes at most "
        "32,766; write the largest <arg> to a file and pass its name",
    )]  # fmt: skip


def test_a_start_the_system_refused_for_the_limit_on_processes_says_so() -> None:
    refused = BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
    said = executables.not_started(Path.cwd(), None, refused)
    assert said.startswith("the system refused a new process: "), said
    assert said.endswith(" limit on processes and threads is reached; raise it, or run fewer")


def test_an_output_tail_tells_from_its_current_runs_lines_only() -> None:
    printer = Printer(color=False, file=io.StringIO())
    shown: list[tuple[str, str, str]] = []
    printer.tap = lambda name, stream, text, color: shown.append((name, stream, text))
    tail = OutputTail(printer, "api", keep=3)
    tail("stderr", [b"Error: first run failed"])
    assert shown == [("api", "stderr", "Error: first run failed")]  # shown as it came
    tail.new_run()
    assert tail.this_run() == [] and tail.telling() == ""  # (the earlier run's line)
    tail("stdout", [b"one", b"two"])
    tail("stderr", [b"three", b"Error: boom", b"\tat main"])
    assert list(tail.lines) == ["three", "Error: boom", "\tat main"]  # the last `keep` lines
    assert tail.this_run() == ["three", "Error: boom", "\tat main"]
    assert tail.telling() == "Error: boom"
    tail("stdout", [b"x" * 65536])  # a line that never ended, in its 64 KiB pieces
    assert len(tail.lines[-1]) == 1000  # kept to tell from, not whole: the console had it


@pytest.mark.parametrize(("commands", "says"), [
    ({7: "node server.js"}, "it left pid 7 (node server.js) running"),
    ({7: ""}, "it left pid 7 running"),  # gone before its command was read
    ({1: "a", 2: "", 3: "c", 4: "d", 5: "e"}, "it left pid 1 (a), pid 2, pid 3 (c) and 2 more "
     "running"),
    ({7: "x" * 200}, f"it left pid 7 ({'x' * 120}) running"),
])  # fmt: skip
def test_what_a_child_left_running(commands: dict[int, str], says: str) -> None:
    told = explain.left_running(commands, 0)
    assert told.startswith(says + ", stopped with it: keep the server in the foreground")
    # After a crash, what is left was the server's own (its workers): no advice.
    assert (
        explain.left_running(commands, 1)
        == explain.left_running(commands, -9)
        == (says + ", stopped with it")
    )


LANE_HEADS = [  # a head, and what the lane reads of it (None: aiohttp's side reads it)
    (b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n", ("GET", "/a?b", "1.1", True, 0)),
    (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", ("POST", "/a", "1.1", True, 5)),
    (b"GET /a HTTP/1.0\r\n\r\n", ("GET", "/a", "1.0", False, 0)),
    (b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", ("GET", "/a", "1.0", True, 0)),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: te\r\nConnection: close\r\n\r\n",
     ("GET", "/a", "1.1", False, 0)),  # every Connection line counts
    (b"GET /a HTTP/1.1\r\n\r\n", None),  # HTTP/1.1 without Host
    (b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", None),
    (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", None),
    (b"POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
     ("POST", "/a", "1.1", True, 1)),  # Expect: lane/fastlane.py judges it
    # An upgrade is read; lane/fastlane.py judges it (a pass-through WebSocket is the lane's).
    (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", ("GET", "/ws", "1.1", True, 0)),
    (b"GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n", None),  # absolute form: aiohttp's
    (b"GET  /a HTTP/1.1\r\nHost: x\r\n\r\n", None),  # a run of spaces
    # Empty lines first (RFC 9112 2.2: a client's CRLF after a body), LF alone in them too:
    # read whole, the method was "\nGET" (a child saw it; a pass-through server hung up).
    (b"\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", None),
    (b"\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", None),
    (b"\n\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", None),
    # Names in any case: the usual spellings from a table, others lower-cased.
    (b"POST /a HTTP/1.1\r\nHOST: x\r\nCONTENT-LENGTH: 3\r\n\r\n", ("POST", "/a", "1.1", True, 3)),
    (b"GET /a HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\nCONNECTION: close\r\n\r\n",
     ("GET", "/a", "1.1", False, 0)),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n", None),  # a second Host
    (b"GET /a RTSP/1.0\r\n\r\n", None),
]  # fmt: skip


@pytest.mark.parametrize(("head", "taken"), LANE_HEADS)
def test_the_request_heads_the_lane_takes(
    head: bytes, taken: tuple[str, str, str, bool, int] | None
) -> None:
    read = http1.HeadReader().read(head)
    if taken is None:
        assert read is None
        return
    assert read is not None
    method, target, version, _, _, length, keep_alive = read
    assert (method, target, version, keep_alive, length) == taken


def test_a_connection_s_repeated_header_block_reads_as_the_first() -> None:
    reader = http1.HeadReader()
    block = b"\r\nHost: x\r\nX-Request-Id: r1\r\nConnection: close\r\n\r\n"
    first = reader.read(b"GET /a HTTP/1.1" + block)
    assert first is not None
    first[3].append(("X-Added", "by the caller"))  # the lane adds Host and X-Request-Id
    again = reader.read(b"POST /b?c HTTP/1.0" + block)  # the same block, another line
    assert again is not None
    method, target, version, headers, noted, length, keep = again
    assert (method, target, version, length, keep) == ("POST", "/b?c", "1.0", 0, False)
    assert headers == [("Host", "x"), ("X-Request-Id", "r1"), ("Connection", "close")]
    assert noted["x-request-id"] == "r1"
    # One byte more or other: read whole.
    other = reader.read(b"GET /a HTTP/1.1" + block.replace(b"r1", b"r2"))
    assert other is not None and other[4]["x-request-id"] == "r2"
    longer = reader.read(b"GET /a HTTP/1.1\r\nA: b" + block)
    assert longer is not None and longer[3][0] == ("A", "b")
    # A block the lane refuses is refused each time it comes; the next block is read.
    twice = b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"
    assert reader.read(twice) is None and reader.read(twice) is None
    # Whether the connection stays open is the version's too.
    kept = [reader.read(b"GET /a HTTP/%s\r\nHost: y\r\n\r\n" % v) for v in (b"1.1", b"1.0", b"1.1")]
    assert [read[6] for read in kept if read is not None] == [True, False, True]


def test_a_connection_s_heads_each_read_as_a_new_reader_reads_them() -> None:
    """HeadReader keeps a connection's last header block and its lines: heads that repeat,
    share lines, change one (a browser's trace id), reorder them or add a second Host after
    lines seen before must each read as a new reader reads them, whatever came before."""
    import random

    browser = ("Host: x\r\nUser-Agent: Chromium\r\nAccept: */*\r\nConnection: keep-alive\r\n"
               "Cookie: a=1\r\n")  # fmt: skip
    heads = [head for head, _ in LANE_HEADS]
    heads += [f"GET /{n} HTTP/1.1\r\n{browser}traceparent: {n}\r\n\r\n".encode() for n in range(3)]
    heads += [
        f"GET / HTTP/1.1\r\n{browser}Host: x\r\n\r\n".encode(),  # a second Host, lines seen
        f"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n{browser}\r\n".encode(),  # one before them
        f"GET / HTTP/1.1\r\nCookie: a=1\r\n{browser[:-13]}\r\n".encode(),  # reordered
        f"GET / HTTP/1.1\r\n{browser}Connection: close\r\n\r\n".encode(),  # joined with the first
        f"POST / HTTP/1.1\r\n{browser}Content-Length: 2\r\n\r\n".encode(),
    ]
    reader = http1.HeadReader()
    for head in random.Random(5).sample(heads * 4, len(heads) * 4):
        assert reader.read(head) == http1.HeadReader().read(head), head
    # A block refused half-way (its second Host), then one like it but for that line.
    refused = f"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n{browser[9:]}\r\n".encode()
    for head in (refused, refused.replace(b"Host: y", b"X-Y: y")):
        assert reader.read(head) == http1.HeadReader().read(head), head


# Header lines a block changed at random is made of (noted names and hop-by-hop ones among
# them, lines that are others made longer or shorter).
BLOCK_LINES = [
    "Host: x", "User-Agent: C", "Accept: */*", "Cookie: a=1", "Cookie: a=12",
    "traceparent: 00-1", "Connection: keep-alive", "Connection: close", "Connection: X-A",
    "X-A: 1", "X-A: 12", "X-A: 1 ", "Content-Length: 2", "Origin: http://o", "Host: y",
    "Transfer-Encoding: chunked", "X-Request-Id: r", "Upgrade: h2c", "A:", "B: \t",
    "X-Forwarded-For: 10.0.0.1", "Keep-Alive: timeout=5", "TE: trailers",
    "Connection: X-Forwarded-For", "Connection: Host", "Host: a b", "Host:", "Host: [::1]:80",
]  # fmt: skip


def changing_heads(seed: int, count: int) -> Iterator[bytes]:
    """Request heads, each a block changed at random from the last (a line changed, added,
    dropped or doubled) or the same."""
    import random

    rng = random.Random(seed)
    lines = ["Host: x", "User-Agent: C", "Accept: */*", "Cookie: a=1"]
    for _ in range(count):
        change = rng.randrange(6)
        at = rng.randrange(len(lines) + 1)
        if change == 0 or not lines:
            lines.insert(at, rng.choice(BLOCK_LINES))
        elif change == 1:
            del lines[min(at, len(lines) - 1)]
        elif change in (2, 3):  # a browser's usual change
            lines[min(at, len(lines) - 1)] = rng.choice(BLOCK_LINES)
        elif change == 4:
            lines.insert(at, lines[rng.randrange(len(lines))])
        if len(lines) > 12:
            del lines[: len(lines) - 12]
        yield ("GET / HTTP/1.1\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode()


def test_a_changed_header_block_reads_as_a_new_reader_reads_it() -> None:
    """HeadReader takes the lines that begin and end a block from the last one: blocks
    changed at random read as a new reader reads them."""
    reader = http1.HeadReader()
    for head in changing_heads(7, 3000):
        assert reader.read(head) == http1.HeadReader().read(head), head


def test_a_changed_header_block_is_forwarded_as_a_new_block_is() -> None:
    """relay_request.Forwarding keeps the lines of a changed block's unchanged headers: what a
    pass-through child gets is what end_to_end's rules give for the block read anew."""
    reader, kept = http1.HeadReader(), relay_request.Forwarding()
    for head in changing_heads(11, 3000):
        read = reader.read(head)
        if read is None:
            continue
        headers = read[3]
        ends = forwarding.end_to_end(headers, forwarding.FROM_CLIENT_DROPPED)
        expected = (
            "".join(f"{name}: {value}\r\n" for lower, name, value in ends
                    if lower != "x-forwarded-for"),
            next((value for lower, _, value in reversed(ends) if lower == "x-forwarded-for"), ""),
            next((value for lower, _, value in reversed(ends) if lower == "host"), ""),
        )  # fmt: skip
        assert kept.of(reader.block, headers) == expected, head


@pytest.mark.parametrize(("host", "valid"), [
    ("x", True), ("127.0.0.1:3000", True), ("[::1]:3000", True), ("Example.COM.", True),
    ("caf\u00e9.test", True), ("", False), ("a b", False), ("a\tb", False), ("a/b", False),
    ("a\\b", False), ("a..b", False), ("..", False), ("a\x7f", False),
    # nginx strips one trailing dot from the name before the port, then wants one left.
    (".", False), (":80", False), ("a.:80", True), ("[::1]", True),
])  # fmt: skip
def test_a_host_is_valid_as_nginx_judges_it(host: str, valid: bool) -> None:
    assert head_rules.valid_host(host) is valid
    head = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    assert (http1.HeadReader().read(head) is not None) is valid


@pytest.mark.parametrize("version", [b"1.2", b"1.9"])
def test_a_later_http1_version_is_read_as_1_1_wherever_a_read_ends(version: bytes) -> None:
    """As aioparser.HeadParser feeds a head in the pieces it came in: each piece is put
    right in view of the request line so far."""
    head = b"\r\nGET /a HTTP/" + version + b"\r\nHost: x\r\nX-V: HTTP/1.2\r\n\r\n"
    padded = head[:-2] + b"X-Pad: " + b"p" * 70_000 + b"\r\n\r\n"  # a read longer than a head
    assert head_rules.as_http11(padded, padded).startswith(b"\r\nGET /a HTTP/1.1\r\n")
    for cut in range(1, len(head)):
        first = head_rules.as_http11(head[:cut], head[:cut])
        rest = head_rules.as_http11(head[cut:], first + head[cut:])
        assert first + rest == head.replace(b"HTTP/" + version, b"HTTP/1.1", 1), cut
    for other in (b"GET /a HTTP/1.1\r\n", b"GET /HTTP/1.2 HTTP/1.0\r\n", b"GET /a HTTP/1.22"):
        assert head_rules.as_http11(other, other) == other


def test_a_targets_raw_utf8_is_percent_encoded_wherever_a_read_ends() -> None:
    """curl sends a query's UTF-8 as typed; the target's bytes over 0x7f are encoded, the
    headers' left alone, whichever piece of the head they come in."""
    head = "\r\nGET /caf\u00e9?q=\u00fc HTTP/1.1\r\nX-Name: Jos\u00e9\r\n\r\n".encode()
    want = head.replace(b"/caf\xc3\xa9?q=\xc3\xbc", b"/caf%C3%A9?q=%C3%BC")
    assert head_rules.with_target_escaped(head, head) == want
    for cut in range(1, len(head)):
        first = head_rules.with_target_escaped(head[:cut], head[:cut])
        rest = head_rules.with_target_escaped(head[cut:], first + head[cut:])
        assert first + rest == want, cut
    plain = b"GET /a HTTP/1.1\r\nX-Name: Jos\xc3\xa9\r\n\r\n"
    assert head_rules.with_target_escaped(plain, plain) == plain


@pytest.mark.parametrize(("start", "status"), [
    (b"GET /a\r\n", 505), (b"\r\nGET /a\r\n", 505), (b"GET /a HTTP/2.0\r\n", 505),
    (b"GET /a HTTP/3.0\r\nHost: x\r\n", 505), (b"GET /a HTTX/1.1\r\n", 400),
    (b"GET /a HTTP/1.2\r\nHost: x\r\n", None), (b"GET /a HTTP/1.9\r\n", None),  # read as 1.1
    (b"GET /a HTTP/1.10\r\n", 400),  # (versions are one digit each: RFC 9112 2.3)
    (b"GET /a HTTP/1.1x\r\n", 400), (b"GET /a HTTP/x.1\r\n", 400),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    (b"CONNECT example.com:443 HTTP/1.1\r\n", 400), (b"GET ftp://a/b HTTP/1.1\r\n", 400),
    (b"GET a/b HTTP/1.0\r\n", 400),  # not a path, nor an http(s) URL
    (b"GET HTTP://a/b HTTP/1.1\r\n", None), (b"OPTIONS * HTTP/1.1\r\n", None),
    (b"GET /a HTTP/1.1\r\n", None), (b"GET /a HTTP/1.0\r\nHost", None),  # llhttp's to judge
    (b"GET /a", None), (b"GET /a HTTP/2.0", None),  # not whole yet
    (b"GET  /a HTTP/1.1\r\n", None), (b"GET /a b HTTP/1.1\r\n", None),  # other shapes
    (b"\x16\x03\x01 hello\r\n", None), (b"G\x00T /a\r\n", None),  # no method
])  # fmt: skip
def test_a_request_line_not_served_is_judged_once_whole(start: bytes, status: int | None) -> None:
    fault = head_rules.request_line_fault(head_rules.as_http11(start, start))
    assert (fault and fault[0]) == status
    if status is not None:  # and the lane leaves it to aiohttp's side, which answers it
        assert http1.head_end(start) == http1.HAND_OVER or b"\r\n\r\n" in start


@pytest.mark.parametrize(("start", "never"), [
    (b"G", False), (b"GET", False), (b"GET /a", False), (b"\r\nGE", False),  # may go on
    (b"M-SEARCH * HTTP/1.1", False), (b"", False), (b"\r\n", False),
    (b"\x16\x03\x01\x00\xa5", True),  # a TLS client hello on the plain port
    (b"{\"json\": 1}", True), (b"GE\x00", True), (b"G" * 25, True), (b"GET\t/a", True),
    # Nor a method served by either server (nginx's 400 at once): the lane waited the
    # header timeout for the head's end.
    (b"hello", True), (b"get / HTTP/1.1\r\n", True), (b"M1", True), (b"X_Y-Z", False),
    (b" l", True), (b"\r\n /a", True),  # a space first
])  # fmt: skip
def test_a_head_that_can_never_be_a_request_is_judged_at_once(start: bytes, never: bool) -> None:
    assert head_rules.never_a_request(start) is never


@pytest.mark.parametrize(("start", "bad"), [
    (b"GET /a HTTP/1.1\r\nHost: x\r\nno colon\r\n", True),
    (b"GET /a HTTP/1.1\r\nHo\xacst: x\r\n", True), (b"GET /a HTTP/1.1\r\nX: a\x01b\r\n", True),
    (b"GET /a HTTP/1.1\r\nHost: x\r\n folded\r\n", True),  # obs-fold, which llhttp refuses
    (b"GET /a HTTP/1.1\r\nHost: x\r\nX: \xff\t1\r\n", False),  # obs-text and a tab: values
    (b"GET /a HTTP/1.1\r\nHost: x\r\nno", False), (b"GET /a HTTP/1.1\r\nX: a\tb", False),
    (b"GET /a HTTP/1.1\r\n", False), (b"GET /a HT", False), (b"GET / HTTP/1.1\r\nA: b\r", False),
    # Not whole, and it can never be one: judged as the byte that tells comes.
    (b"GET /a HTTP/1.1\r\nHost: x\r\nno colon", True), (b"GET / HTTP/1.1\r\nHo\x06st", True),
    (b"GET /a HTTP/1.1\r\nX: a\x01", True), (b"GET /a HTTP/1.1\r\n folded", True),
    # A second Host or length, which aiohttp's parser and nginx refuse at its line's end.
    (b"GET /a HTTP/1.1\r\nHost: x\r\nhost: x\r\n", True),
    (b"GET /a HTTP/1.1\r\nContent-Length: 1\r\nContent-length: 1\r\nX", True),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nHost: x", False),  # (not whole yet)
    (b"GET /a HTTP/1.1\r\nX-A: 1\r\nX-A: 2\r\n", False),  # a list, passed on
])  # fmt: skip
def test_a_header_line_llhttp_refuses_is_handed_over_once_it_tells(start: bytes, bad: bool) -> None:
    """aiohttp's parser says 400 as soon as such a line tells, as nginx does at its end (one
    it cannot read, nginx passes over): the lane waited for the head's end, until the header
    timeout."""
    assert head_rules.bad_header_line(start) is bad
    assert (http1.head_end(start) == http1.HAND_OVER) is bad


@pytest.mark.parametrize(("start", "odd"), [
    (b"GET /a b HTTP/1.1\r\n", True), (b"GET  /a HTTP/1.1\r\n", True),  # aiohttp's to judge
    (b"GET /a HTTP/1.1 x\r\nHost", True), (b"\r\nGET /a  HTTP/1.1\r\n", True),
    (b"GET /a HTTP/1.1\r\n", False), (b"\r\nGET /a HTTP/1.1\r\nHost: x", False),
    (b"GET /a HTTP/1.", False), (b"GET http", False), (b"OPTIONS * H", False),  # not whole yet
    (b"GET /a ", False), (b"GET ", False), (b"GET /a HTTP/1.1\r", False),
    (b"HEAD /a\x1f/b HT", True), (b"GET /a\tb", True),  # a control character, at once
    # Not whole, and it can never be served: judged as the byte that tells comes, as nginx
    # judges a target or a version it cannot read (the lane waited for the line's end).
    (b"GET /a b", True), (b"GET  /a", True), (b"GET /a HTTP/1.1 ", True),  # spaces
    (b"GET \xfat/d", True), (b"GET pt/b", True), (b"GET httpx:", True),  # no path nor URL
    (b"GET /a HTT/", True), (b"GET /a XTTP", True), (b"GET /a HTTP/1.10", True),  # version
])  # fmt: skip
def test_an_odd_request_line_is_handed_over_once_it_tells(start: bytes, odd: bool) -> None:
    """aiohttp's parser says 400 as soon as such a line tells, as nginx does (runs of spaces
    it takes, a space in the target it reads as part of it): the lane waited for the head's
    end, until the header timeout."""
    assert head_rules.odd_request_line(start) is odd
    assert (http1.head_end(start) == http1.HAND_OVER) is odd


@pytest.mark.parametrize(("received", "end"), [
    (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 28),
    (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b", 28),  # pipelined: the first head
    (b"GET /a HTTP/1.1\r\nHost: x\r\n", http1.WAIT),  # more may come
    (b"GET /a HTTP/1.1\r\nHost: x\r\n\r", http1.WAIT),  # its last LF may still come
    (b"GET /a HTTP/1.1\nHost: x\n\n", http1.HAND_OVER),  # bare LF: never ends here
    (b"GET /a HTTP/1.1\rHost: x", http1.HAND_OVER),  # a CR alone
    (b"GET /a HTTP/1.1\r\nX: " + b"a" * 8200, http1.HAND_OVER),  # past 8190 without an end
    (b"\x16\x03\x01\x00\xa5", http1.HAND_OVER),  # TLS on the plain port
])  # fmt: skip
def test_where_a_head_ends_or_why_the_lane_does_not_wait(received: bytes, end: int) -> None:
    assert http1.head_end(received) == end


_WS = {"upgrade": "websocket", "connection": "Upgrade"}


@pytest.mark.parametrize(("fate", "method", "version", "length", "noted", "switching", "takes"), [
    (Fate.ENVELOPE, "GET", "1.1", 0, {}, False, True),
    (Fate.RELAY, "POST", "1.0", 5, {}, False, True),
    # The admin endpoints and the refusals of a request with a body: aiohttp's side's.
    *[(fate, "GET", "1.1", 0, {}, False, False)
      for fate in (Fate.ADMIN, Fate.TOO_LARGE, Fate.BAD_TARGET)],
    # A 404 or 405 without a body (a browser's /favicon.ico), and a CORS preflight: the
    # lane's, so that the connection stays in the lane; with a body, an Expect or an
    # upgrade, aiohttp's.
    *[(fate, method, version, 0, {}, False, True)
      for fate in (Fate.NO_ROUTE, Fate.NOT_ALLOWED, Fate.PREFLIGHT, Fate.MOVED)
      for method in ("GET", "HEAD", "OPTIONS") for version in ("1.1", "1.0")],
    (Fate.NO_ROUTE, "POST", "1.1", 2, {}, False, False),
    (Fate.PREFLIGHT, "OPTIONS", "1.1", 3, {"origin": "http://a"}, False, False),
    (Fate.NO_ROUTE, "GET", "1.1", 0, {"expect": "100-continue"}, False, False),
    (Fate.NO_ROUTE, "GET", "1.1", 0, _WS, True, False),
    # Expect: pass-through's 100-continue over HTTP/1.1 only.
    (Fate.RELAY, "POST", "1.1", 5, {"expect": "100-Continue"}, False, True),
    (Fate.RELAY, "POST", "1.0", 5, {"expect": "100-continue"}, False, False),
    (Fate.RELAY, "POST", "1.1", 5, {"expect": "tea"}, False, False),
    (Fate.ENVELOPE, "POST", "1.1", 5, {"expect": "100-continue"}, False, False),
    # A browser's cross-origin request: the lane's, to either kind of route.
    (Fate.ENVELOPE, "GET", "1.1", 0, {"origin": "http://a"}, False, True),
    (Fate.RELAY, "GET", "1.1", 0, {"origin": "http://a"}, False, True),
    # Upgrades: a pass-through WebSocket's GET without a body over HTTP/1.1, nothing else.
    (Fate.RELAY, "GET", "1.1", 0, _WS, True, True),
    (Fate.RELAY, "GET", "1.1", 0, {**_WS, "upgrade": "WebSocket"}, True, True),
    (Fate.RELAY, "GET", "1.1", 0, _WS, False, False),  # no Connection: upgrade
    (Fate.RELAY, "GET", "1.1", 0, {"upgrade": "h2c"}, True, False),
    (Fate.RELAY, "POST", "1.1", 3, _WS, True, False),
    (Fate.RELAY, "GET", "1.0", 0, _WS, True, False),
    (Fate.ENVELOPE, "GET", "1.1", 0, _WS, True, False),
    # An envelope-mode body past 1 MiB waits for its child on disk: aiohttp's side's.
    (Fate.ENVELOPE, "POST", "1.1", 1024**2, {}, False, True),
    (Fate.ENVELOPE, "POST", "1.1", 1024**2 + 1, {}, False, False),
    (Fate.RELAY, "POST", "1.1", 1024**2 + 1, {}, False, True),
])  # fmt: skip
def test_which_routed_requests_the_lane_answers(
    fate: Fate, method: str, version: str, length: int, noted: dict[str, str], switching: bool,
    takes: bool,
) -> None:  # fmt: skip
    assert lane_message.lane_takes(fate, method, version, length, noted, switching) is takes


@pytest.mark.parametrize(("version", "connection", "kept"), [
    ("1.1", None, True), ("1.0", None, False),
    ("1.1", "close", False), ("1.1", "Close", False), ("1.0", "Keep-Alive", True),
    ("1.1", "keep-alive", True), ("1.0", "close", False),
    ("1.1", "keep-alive, close", False), ("1.0", "Upgrade, keep-alive", True),
    ("1.0", "upgrade", False), ("1.1", "upgrade", True), ("1.1", " CLOSE ,x", False),
])  # fmt: skip
def test_whether_a_connection_stays_open(version: str, connection: str | None, kept: bool) -> None:
    assert http1.keep_alive(version, connection) is kept


DATE = "Date: Sun, 29 Nov 2026 00:00:00 GMT\r\n"


ANSWER_HEADS = [  # status, headers, version, length, sent, keep: the head's lines
    (200, [("Content-Type", "text/plain")], "1.1", 2, True, True,
     ["HTTP/1.1 200 OK", "Content-Type: text/plain", "X-Request-Id: r1", "Content-Length: 2",
      DATE.strip(), f"Server: {SERVER_SOFTWARE}"]),
    (200, [], "1.1", 2, True, False,  # a body without a type; the connection closes
     ["HTTP/1.1 200 OK", "X-Request-Id: r1", "Content-Length: 2",
      "Content-Type: application/octet-stream", DATE.strip(), f"Server: {SERVER_SOFTWARE}",
      "Connection: close"]),
    (200, [], "1.1", 7, False, True,  # HEAD: the length is stated, no body, no type added
     ["HTTP/1.1 200 OK", "X-Request-Id: r1", "Content-Length: 7", DATE.strip(),
      f"Server: {SERVER_SOFTWARE}"]),
    (204, [("Date", "then"), ("Server", "child")], "1.0", 0, False, True,
     ["HTTP/1.0 204 No Content", "Date: then", "Server: child", "X-Request-Id: r1",
      "Connection: keep-alive"]),
]  # fmt: skip


@pytest.mark.parametrize(("status", "headers", "version", "length", "sent", "keep", "lines"),
                         ANSWER_HEADS)  # fmt: skip
def test_answer_heads_as_aiohttp_writes_them(
    status: int, headers: list[tuple[str, str]], version: str, length: int, sent: bool,
    keep: bool, lines: list[str],
) -> None:  # fmt: skip
    head = answer_heads.AnswerHeads().head(status, headers, "r1", version=version, length=length,
                                    sent=sent, keep=keep, date=DATE)  # fmt: skip
    assert head == ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_connection_s_answer_heads_are_each_its_own() -> None:
    """One connection's AnswerHeads keeps the fixed lines of the last head it wrote: every
    answer of the table above, one after the other, twice, must still be its own."""
    heads = answer_heads.AnswerHeads()
    for n, (status, headers, version, length, sent, keep, lines) in enumerate(ANSWER_HEADS * 2):
        given = [(name, value) for name, value in headers]  # an equal list, not the same one
        head = heads.head(status, given, f"r{n}", version=version, length=length, sent=sent,
                          keep=keep, date=DATE)  # fmt: skip
        expected = [line.replace("X-Request-Id: r1", f"X-Request-Id: r{n}") for line in lines]
        assert head == ("\r\n".join(expected) + "\r\n\r\n").encode()
    # The same headers again with one value changed, and with the date the next second.
    first = heads.head(200, [("A", "1")], "x", version="1.1", length=1, sent=True, keep=True,
                       date="Date: one\r\n")  # fmt: skip
    again = heads.head(200, [("A", "2")], "x", version="1.1", length=12, sent=True, keep=True,
                       date="Date: two\r\n")  # fmt: skip
    assert b"A: 1\r\n" in first and b"A: 2\r\n" in again and b"A: 1" not in again
    assert b"Content-Length: 12\r\n" in again and b"Date: two\r\n" in again
    # A value changed but not the length nor the date: the lines after the headers stay.
    third = heads.head(200, [("A", "3")], "x", version="1.1", length=12, sent=True, keep=True,
                       date="Date: two\r\n")  # fmt: skip
    assert third == again.replace(b"A: 2", b"A: 3")
    typed = heads.head(200, [("A", "3"), ("Content-Type", "t")], "x", version="1.1", length=12,
                       sent=True, keep=True, date="Date: two\r\n")  # fmt: skip
    assert typed.count(b"Content-Type") == 1 and b"Content-Type: t\r\n" in typed

    # The same head but for the length, then the date, then the id carried by the headers
    # (CORS's answers): each line as it should be.
    def split(rid: str | None, length: int, date: str) -> list[bytes]:
        head = heads.head(200, [("A", "2")], rid, version="1.1", length=length, sent=True,
                          keep=True, date=date)  # fmt: skip
        return head.split(b"\r\n")

    before = again.split(b"\r\n")  # status, A, id, length, type, date, server, end
    longer = split("y", 3, "Date: two\r\n")
    assert longer == [*before[:2], b"X-Request-Id: y", b"Content-Length: 3", *before[4:]]
    later = split("z", 3, "Date: three\r\n")
    assert later == [*longer[:2], b"X-Request-Id: z", *longer[3:5], b"Date: three", *longer[6:]]
    assert split(None, 3, "Date: three\r\n") == [*later[:2], *later[3:]]


class _Writes:
    """A client connection (relay_request.Client) that records each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    @property
    def writable(self) -> bool:
        return True

    def when_writable(self, then: Callable[[], None]) -> None:
        then()

    def adopt(self) -> tuple[asyncio.Transport, bytes, bool] | None:
        return None

    def hold_reading(self, held: bool) -> None:
        pass


@pytest.mark.parametrize(
    ("headers", "reads", "writes"),
    [
        # A small answer read whole: its head and body in one write (one system call, one
        # segment for the client), chunked or not.
        ([("Content-Length", "2")], [["head", "ok", "end"]], [b"ok"]),
        ([], [["head", "ok", "end"]], [b"2\r\nok\r\n0\r\n\r\n"]),
        # A streamed one: what each read of the child brought, when it came.
        ([], [["head"], ["ab", "cd"], ["end"]], [b"", b"2\r\nab\r\n2\r\ncd\r\n", b"0\r\n\r\n"]),
        ([("Content-Length", "4")], [["head", "ab"], ["cd", "end"]], [b"ab", b"cd"]),
        # Broken off mid-way: what came is written, then the connection ends.
        ([("Content-Length", "9")], [["head", "ab", "broken"]], [b"ab"]),
    ],
    ids=["whole", "whole-chunked", "streamed-chunked", "streamed", "broken"],
)
def test_a_relayed_answer_is_written_once_a_read(
    headers: list[tuple[str, str]], reads: list[list[str]], writes: list[bytes]
) -> None:
    """relay.Answer holds what head, body and end give until the flush that ends each read
    of the child (exchange_headers.Exchange), or its end."""
    client = _Writes()
    answer = relay.Answer(client, process="svc", version="1.1", keep_alive=True, request_id="r1",
                          prefix=None, keep=0, method="GET")  # fmt: skip
    for read in reads:
        for step in read:
            if step == "head":
                answer.head(200, "OK", list(headers))
            elif step == "end":
                answer.end()
            elif step == "broken":
                answer.broken("the child's answer broke off")
            else:
                answer.body(step.encode())
        answer.flush()
    assert len(client.writes) == len(writes)
    for written, body in zip(client.writes, writes, strict=True):
        if written.startswith(b"HTTP/"):  # the head, and what came with it
            written = written.partition(b"\r\n\r\n")[2]
        assert written == body
    assert client.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert client.closed == ("broken" in reads[-1])


class _Heads:
    """A Sink that notes each answer's head and body."""

    def __init__(self) -> None:
        self.got: list[tuple[int, str, list[tuple[str, str]], bytes]] = []
        self._body = b""
        self.writable = True

    def head(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.got.append((status, reason, list(headers), b""))

    def body(self, data: bytes) -> None:
        self._body += data

    def end(self) -> None:
        status, reason, headers, _ = self.got[-1]
        self.got[-1], self._body = (status, reason, headers, self._body), b""

    def flush(self) -> None:
        pass

    def broken(self, why: str) -> None:
        raise AssertionError(why)

    def when_writable(self, then: Callable[[], None]) -> None:
        then()

    def upgraded(
        self, reason: str, headers: list[tuple[str, str]], child: object, rest: bytes
    ) -> None:
        raise AssertionError("no upgrade was asked for")


_ANSWERS = {  # each with the head and body its sink must get
    "ok": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nok",
           (200, "OK", [("Content-Length", "2"), ("X-A", "1")], b"ok")),
    "other": (b"HTTP/1.1 200 Fine\r\nContent-Length: 2\r\nX-A: 2\r\n\r\nhi",
              (200, "Fine", [("Content-Length", "2"), ("X-A", "2")], b"hi")),
    "trailer": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"
                b"0\r\nX-Sum: 9\r\n\r\n",
                (200, "OK", [("Transfer-Encoding", "chunked")], b"ab")),
    "hints": (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
              b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-B: 1\r\n\r\nok",
              (200, "OK", [("Content-Length", "2"), ("X-B", "1")], b"ok")),
    "hints2": (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
               b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
               (404, "Not Found", [("Content-Length", "2")], b"no")),
    "lf": (b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: 1\n\nok",
           (200, "OK", [("Content-Length", "2"), ("X-A", "1")], b"ok")),
    "longer": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nX-C: 3\r\n\r\nok",
               (200, "OK", [("Content-Length", "2"), ("X-A", "1"), ("X-C", "3")], b"ok")),
}  # fmt: skip


@pytest.mark.parametrize("at_once", [1, 2], ids=["one-connection", "two-connections"])
async def test_an_answer_repeating_the_last_head_has_that_heads_headers(at_once: int) -> None:
    """exchange_headers.Exchange reads an answer that begins with the last one's head, byte for
    byte, without reading its headers again: over kept connections, each answer's sink must
    still get the headers of its own head (never a trailer, never a 103's), whatever came
    before it. With two connections asked at once, the second to read a head shares the
    first's list of headers (Upstream.heads): one answer's trailers must reach neither."""
    order = ["ok", "ok", "other", "ok", "ok", "trailer", "trailer", "ok", "hints", "hints",
             "hints2", "ok", "lf", "lf", "ok", "longer", "ok", "ok"]  # fmt: skip
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                writer.write(_ANSWERS[head.split(b" ")[1].decode().strip("/")][0])
        except asyncio.IncompleteReadError:
            pass  # the pool closed the connection
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = upstream.Upstream("127.0.0.1", port)
    try:
        for name in order:
            sinks = [_Heads() for _ in range(at_once)]
            request = f"GET /{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            await asyncio.gather(*(pool.send(request, sink, timeout=5) for sink in sinks))
            for sink in sinks:
                assert sink.got == [_ANSWERS[name][1]], name
    finally:
        pool.close()
        server.close()
    assert connections == at_once  # every answer came on the connections first opened


async def test_a_kept_connection_idle_past_its_time_is_closed_unasked() -> None:
    """A kept connection idle for as long as the child keeps one carries no request again
    (ChildConnection.fresh): it is closed then, not left open until the next request, so a
    thread-per-connection child (the bundled web_server.py) does not hold a thread for each
    one a burst left, nor a one-at-a-time child wait on it. One still fresh is kept."""
    closed: list[float] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=2\r\nContent-Length: 2\r\n\r\nok")
        await reader.read()  # until the proxy closes the connection
        closed.append(time.monotonic())
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    pool = upstream.Upstream("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        await pool.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", _Heads(), timeout=5)
        answered = time.monotonic()
        assert await eventually(lambda: bool(closed), 6)
        # Kept while fresh (the child keeps one 2 s: 1 s), closed within a sweep after.
        assert 0.9 <= closed[0] - answered < 1 + upstream.IDLE_SWEEP + 0.5
    finally:
        pool.close()
        server.close()


async def test_a_connection_the_child_closed_as_it_was_made_fails_at_once() -> None:
    """A new connection the child closes before the request goes out (the child killed with
    it in its listen queue, say) is NotConnected when its exchange runs, so the request may
    go again elsewhere: it waited for its whole <timeout> before (none, for the `http`
    envelope, which the proxy bounds as a whole), and the client got a 504."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        pool = upstream.Upstream("127.0.0.1", port)
        _, connection = await asyncio.get_running_loop().create_connection(
            lambda: exchange.Bare(pool), "127.0.0.1", port
        )
        accepted, _ = listener.accept()
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        accepted.close()  # a reset, as the connections in a killed process's queue get
        assert await eventually(lambda: not connection.usable, 5)
        with pytest.raises(NotConnected, match="before the request went out"):
            async with timeout(5):
                await connection.run(b"GET / HTTP/1.1\r\n\r\n", _Heads(), None, False, False, None)
        pool.close()


@pytest.mark.parametrize(
    ("data", "name", "value"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<p>", b"content-type", "text/html"),
        (b"HTTP/1.1 200 OK\r\ncontent-length :  12 \r\n\r\n", b"content-length", "12"),
        (b"HTTP/1.1 200 OK\nContent-Length: 3\n\nabc", b"content-length", "3"),  # bare LFs
        (b"HTTP/1.1 200 OK\r\nX: 1\r\n\r\nContent-Length: 3\r\n", b"content-length", None),
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/html", b"content-length", None),  # cut short
        (b"Content-Length: 3\r\n\r\n", b"content-length", None),  # the status line is not one
    ],
    ids=["found", "spaced", "bare-lf", "in-body", "cut", "status-line"],
)
def test_a_header_is_read_from_an_answers_raw_head(
    data: bytes, name: bytes, value: str | None
) -> None:
    """answer_head.raw_header: the head only, never the body after it."""
    assert answer_head.raw_header(data, name) == value


@pytest.mark.parametrize(
    ("first", "limit"),
    [
        (b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\n\r\n", 4.0),  # Node.js, Apache
        (b"HTTP/1.1 200 OK\r\nkeep-alive: max=100, Timeout = 15\r\n\r\n", 14.0),
        (b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\n\r\n", 0.0),  # never kept
        (b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=0\r\n\r\n", 0.0),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 1.5),  # uvicorn: says nothing
        (b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=-5\r\n\r\n", 1.5),
        (b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=\xb2\r\n\r\n", 1.5),  # a digit, not ASCII
        (b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=" + b"9" * 5000 + b"\r\n\r\n", 1.5),
        (b"HTTP/1.1 200 OK\r\n\r\nKeep-Alive: timeout=9\r\n", 1.5),  # in the body
    ],
)  # fmt: skip
def test_how_long_a_kept_connection_may_wait_idle(first: bytes, limit: float) -> None:
    """answer_head.idle_limit: what the child says, a second less, else IDLE_LIMIT."""
    assert answer_head.idle_limit(first) == limit
    assert answer_head.IDLE_LIMIT == 1.5


@pytest.mark.parametrize(
    ("status", "size", "coding", "problem"),
    [
        (200, 100, "", None),
        (200, 100, ",chunked", None),
        (200, 100, ", Chunked ", None),
        # chunked last: the body's end is known, but dechunked it is still gzip's, unmarked
        (200, 100, ",gzip,chunked", "Transfer-Encoding 'gzip,chunked'"),
        (200, 100, ",chunked,chunked", "Transfer-Encoding 'chunked,chunked'"),
        (99, 100, "", "has status 099"),  # three digits llhttp reads, no HTTP status
        (0, 100, "", "has status 000"),
        (200, 64 * 1024 + 1, "", "head is over 64 KiB"),
        (200, 64 * 1024, "", None),
        (200, 100, ",gzip", "Transfer-Encoding 'gzip': send it chunked"),
        (200, 100, ",chunked,gzip", "Transfer-Encoding 'chunked,gzip'"),
        (200, 100, ",", "Transfer-Encoding ''"),  # an empty value: no coding known
    ],
)  # fmt: skip
def test_an_answer_head_the_proxy_cannot_relay(
    status: int, size: int, coding: str, problem: str | None
) -> None:
    """answer_head.head_problem: the 502s for an answer's head (docs/protocol.md)."""
    found = answer_head.head_problem(status, size, coding)
    assert (found is None) == (problem is None), found
    assert problem is None or (found is not None and problem in found)


_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"


@pytest.mark.parametrize(
    ("first", "status", "keep_alive", "kept"),
    [
        (_HEAD + b"abc", 200, True, (_HEAD, len(_HEAD) + 3)),
        (_HEAD + b"a", 200, True, (_HEAD, len(_HEAD) + 3)),  # the rest of its body to come
        (_HEAD + b"abc", 200, False, (_HEAD, -1)),  # the connection ends with it
        (_HEAD + b"abc", 404, True, (b"", -1)),  # another status: after a 1xx, say
        (_HEAD[:-2], 200, True, (b"", -1)),  # the head is not whole in the read
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", 204, True,
         (b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", -1)),  # no body by status
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 200, True,
         (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", -1)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 200,
         True, (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                -1)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n", 200, True,
         (b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n", -1)),
        (b"HTTP/1.1 200 OK\r\nX: 1\r\n\r\n", 200, True, (b"HTTP/1.1 200 OK\r\nX: 1\r\n\r\n", -1)),
    ],
    ids=["whole", "body-split", "close", "other-status", "cut", "204", "two-lengths", "chunked",
         "signed", "no-length"],
)  # fmt: skip
def test_the_head_a_child_repeats_and_the_size_of_an_answer_with_it(
    first: bytes, status: int, keep_alive: bool, kept: tuple[bytes, int]
) -> None:
    """answer_head.kept_head: a later read of exactly that size, beginning with that head,
    is taken whole without a parser (exchange.Bare._whole), so the size is given only where
    the head alone fixes where the answer ends."""
    assert answer_head.kept_head(first, status, keep_alive) == kept


@pytest.mark.parametrize(
    ("head", "fed", "method"),
    [
        (b"BAN /a HTTP/1.1\r\n", b"GET /a HTTP/1.1\r\n", "BAN"),
        (b"\r\nX_Y-Z /a HTTP/1.1\r\n", b"\r\nGET /a HTTP/1.1\r\n", "X_Y-Z"),  # an empty line first
        (bytearray(b"BAN /a HTTP/1.1\r\n"), b"GET /a HTTP/1.1\r\n", "BAN"),  # Windows' reads
        (b"PURGE /a HTTP/1.1\r\n", b"PURGE /a HTTP/1.1\r\n", None),  # llhttp knows it
        (b"PLAY /a HTTP/1.1\r\n", b"GET /a HTTP/1.1\r\n", "PLAY"),  # httptools' does, not aiohttp's
        (b"ban /a HTTP/1.1\r\n", b"ban /a HTTP/1.1\r\n", None),  # not a method nginx takes
        (b"BAN", b"BAN", None),  # not whole yet
    ],
    ids=["extension", "after-empty-line", "bytearray", "known", "rtsp", "lower-case", "partial"],
)
def test_aiohttps_parser_judges_an_extension_method_as_get(
    head: bytes, fed: bytes, method: str | None
) -> None:
    """aioparser._stand_in: what aiohttp's parser is fed, and the method given back."""
    assert aioparser._stand_in(head) == (fed, method)


def _frame(opcode: int, payload: bytes, *, masked: bool) -> bytes:
    size = len(payload)
    length = (bytes([size]) if size < 126 else bytes([126]) + size.to_bytes(2, "big")
              if size < 65536 else bytes([127]) + size.to_bytes(8, "big"))  # fmt: skip
    mask = b"\x01\x02\x03\x04" if masked else b""
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if masked else payload
    return (
        bytes([0x80 | opcode])
        + bytes([length[0] | (0x80 if masked else 0)])
        + length[1:]
        + mask
        + body
    )


@pytest.mark.parametrize("masked", [False, True], ids=["child", "client"])
@pytest.mark.parametrize("sizes", [(0,), (5, 125), (126, 3), (65535,), (65536, 1)])
@pytest.mark.parametrize("piece", [1, 3, 7, 1000, 10**6])
def test_websocket_frame_edges_are_followed_across_any_split(
    masked: bool, sizes: tuple[int, ...], piece: int
) -> None:
    """tunnel.FrameEdges: between frames or not, after any split of the stream, and whether
    a close frame went by."""
    frames = [_frame(0x2, bytes(size), masked=masked) for size in sizes]
    stream = b"".join(frames)
    ends = {sum(len(f) for f in frames[: i + 1]) for i in range(len(frames))}
    edges = tunnel.FrameEdges()
    for at in range(0, len(stream), piece):
        chunk = stream[at : at + piece]
        edges.feed(chunk)
        assert edges.at_edge == (at + len(chunk) in ends)
    assert not edges.closed
    edges.feed(tunnel.close_frame(1001, masked=masked))
    assert edges.at_edge and edges.closed


@pytest.mark.parametrize("masked", [False, True])
def test_a_close_frame_says_its_code(masked: bool) -> None:
    frame = tunnel.close_frame(1011, masked=masked)
    assert frame[0] == 0x88 and (frame[1] & 0x80 == 0x80) == masked and frame[1] & 0x7F == 2
    payload = frame[-2:]
    if masked:
        payload = bytes(b ^ frame[2 + i] for i, b in enumerate(payload))
    assert int.from_bytes(payload, "big") == 1011


async def _wait(line: Line[str], due: float) -> str | None:
    """Wait in `line` as Pool.acquire does."""
    turn = line.join(due)
    try:
        return await turn
    except asyncio.CancelledError:
        line.leave(turn)
        raise


async def test_the_line_hands_slots_in_order_and_wakes_each_at_its_time() -> None:
    """line.Line: a released slot goes to the first still waiting; a waiter whose time is
    up wakes alone, with none; one cancelled after it was handed a slot gives it back; a
    change wakes all, with none."""
    loop = asyncio.get_running_loop()
    given_back: list[str] = []
    line: Line[str] = Line(loop, given_back.append)
    far = loop.time() + 60
    waiters = [asyncio.create_task(_wait(line, far)) for _ in range(3)]
    # Its own time, soon: nobody hands it a slot (and the others are in line by then).
    assert await asyncio.wait_for(_wait(line, loop.time() + 0.05), 5) is None
    assert not any(w.done() for w in waiters)
    assert line.pass_turn("a")
    assert await asyncio.wait_for(waiters[0], 5) == "a"
    assert not waiters[1].done() and not waiters[2].done()
    assert line.pass_turn("b")
    waiters[1].cancel()  # handed a slot, then cancelled before it ran: the slot goes back
    with pytest.raises(asyncio.CancelledError):
        await waiters[1]
    assert given_back == ["b"] and not waiters[2].done()
    assert line.pass_turn("c")
    assert await asyncio.wait_for(waiters[2], 5) == "c"
    assert not line.pass_turn("d")  # nobody waits: the caller frees it
    last = [asyncio.create_task(_wait(line, far)) for _ in range(2)]
    await asyncio.wait_for(_wait(line, loop.time() + 0.05), 5)  # they are in line by then
    assert line
    line.wake_all()
    assert await asyncio.wait_for(asyncio.gather(*last), 5) == [None, None]
    assert not line


async def test_a_released_slot_goes_to_the_request_waiting_not_to_a_newcomer(
    tmp_path: Path,
) -> None:
    """Pool: with its one slot taken and a request waiting, the slot given back goes to that
    request; one arriving at that moment waits its turn (it used to take the slot, and the
    woken one went back to the end of the line: starved, under load, past clients' time)."""
    path = tmp_path / "manifest.xml"
    path.write_text(
        f"<manifest><process><id>api</id><executable>{sys.executable}</executable>"
        "<route>/api/*</route><communication_mode>pipe-keepalive</communication_mode>"
        "<concurrency>1</concurrency></process></manifest>"
    )
    process = manifest.load(path, socket_dir=tmp_path).processes[0]
    pool = Pool(process, Printer(color=False), launch.SocketNames(tmp_path))
    child = pool._add(1)  # not started: made READY by hand
    child.state = State.READY
    child.link.connect(str(tmp_path / "api"), lambda pid: False)
    assert pool.try_acquire() is child
    waiting = asyncio.create_task(pool.acquire())
    assert await eventually(lambda: pool.waiting == 1)
    pool.release(child)
    assert pool.try_acquire() is None  # the newcomer: no slot
    assert await asyncio.wait_for(waiting, 5) is child
    assert (child.in_flight, child.requests) == (1, 2)
    pool.release(child)
    assert child.in_flight == 0 and pool.try_acquire() is child  # nobody waits: it is free


@pytest.mark.parametrize(("mode", "pipe", "token", "ours"), [
    ("pipe", "/tmp/ll-test-none/api", "", {"PIPE_ADDRESS": "/tmp/ll-test-none/api",
                                           "PIPE_FRAMING": "oneshot"}),
    ("pipe-keepalive", "/tmp/ll-test-none/api", "t0k", {"PIPE_FRAMING": "lines",
                                                         "LOCAL_LAMBDAS_TOKEN": "t0k"}),
    ("http", None, "", {"HTTP_ADDRESS": None, "PORT": None}),
])  # fmt: skip
def test_what_a_child_is_started_with(
    mode: str, pipe: str | None, token: str, ours: dict[str, str | None]
) -> None:
    """launch.prepare: docs/protocol.md's environment for each mode, a new mark each time."""
    first = launch.prepare(_process(mode), name="api#2", index=2, pipe=pipe, run_mark="run",
                           run_env={"LOCAL_LAMBDAS_TOKEN": token} if token else {})  # fmt: skip
    second = launch.prepare(_process(mode), name="api#2", index=2, pipe=pipe, run_mark="run",
                            run_env={"LOCAL_LAMBDAS_TOKEN": token} if token else {})  # fmt: skip
    env = first.env
    assert (env["LOCAL_LAMBDAS_ID"], env["LOCAL_LAMBDAS_INSTANCE"]) == ("api#2", "2")
    assert first.mark.startswith("run.") and first.mark != second.mark
    assert ("LOCAL_LAMBDAS_TOKEN" in env) == bool(token)
    for name, value in ours.items():
        assert name in env and (value is None or env[name] == value)
    if pipe is None:
        assert first.address == env["HTTP_ADDRESS"] == f"127.0.0.1:{env['PORT']}"
    else:
        assert first.address == pipe and "PORT" not in env


@pytest.mark.parametrize(("target", "prefix", "child_gets", "taken"), [
    ("/api/users?x=1", "/api", "/users?x=1", "/api"),
    ("/api", "/api", "/", "/api"),
    ("/api?x", "/api", "/?x", "/api"),
    ("/api/a%7e%2Fb?q=%zz", "/api", "/a%7e%2Fb?q=%zz", "/api"),  # as sent, byte for byte
    ("/api/users", "/api/", "/users", "/api"),  # a prefix written with its slash
    ("/apiary/x", "/api", "/apiary/x", None),  # not under it: as it came
    # Under the prefix only once normalised, as the route matched it: nginx's way, the
    # normalised path less the prefix, re-escaped, the query as sent.
    ("//api/a?q", "/api", "/a?q", "/api"),
    ("/./api/a", "/api", "/a", "/api"),
    ("/api/./a", "/api", "/./a", "/api"),  # under it as sent: the rest as sent
    ("/%61pi/a%20b", "/api", "/a%20b", "/api"),
    ("/x/../api/a", "/api", "/a", "/api"),
    # Under it as sent, but the rest, normalised, is another path: the normalised one.
    ("/api/../api/a?q", "/api", "/a?q", "/api"),
    ("/api/%2e%2e/api/a", "/api", "/a", "/api"),
    ("/api/x/../../api/a", "/api", "/a", "/api"),
    ("/api/x/../a%7e", "/api", "/x/../a%7e", "/api"),  # the same path: as sent
    # A prefix written as a URL spells it takes off the path it spells, however sent.
    ("/caf%C3%A9/x?q", "/caf%C3%A9", "/x?q", "/caf%C3%A9"),
    ("/caf\u00e9/x?q", "/caf%C3%A9", "/x?q", "/caf%C3%A9"),
    ("/caf%c3%a9/x", "/caf%C3%A9", "/x", "/caf%C3%A9"),
])  # fmt: skip
def test_the_target_a_pass_through_child_gets(
    target: str, prefix: str, child_gets: str, taken: str | None
) -> None:
    path, _ = router.resolve(target, lambda path: None)
    assert forwarding.strip_prefix(target, prefix, path) == (child_gets, taken)


@pytest.mark.parametrize(("name", "value", "prefix", "client_gets"), [
    ("location", "/sub/?x=1", "/app", "/app/sub/?x=1"),
    ("location", "/sub/", None, "/sub/"),
    ("location", "//cdn.example/x", "/app", "//cdn.example/x"),  # another host's
    ("location", "sub/", "/app", "sub/"),  # relative to the request: already under it
    # A child told the prefix (X-Forwarded-Prefix: Flask's ProxyFix, Spring) writes paths
    # under it already: never twice.
    ("location", "/app/sub/", "/app", "/app/sub/"),
    ("location", "/app", "/app", "/app"),
    ("location", "/app?x=1", "/app", "/app?x=1"),
    ("location", "/apple/", "/app", "/app/apple/"),  # another path that begins the same
    ("location", "http://127.0.0.1:9002/app/sub", "/app", "/app/sub"),
    ("refresh", "0; url=/app/a", "/app", "0; url=/app/a"),
    # The child's own address, which the client cannot reach, or not through the proxy:
    # the path it names (nginx's proxy_redirect default), under the prefix.
    ("location", "http://127.0.0.1:9002/sub/", "/app", "/app/sub/"),
    ("location", "HTTP://127.0.0.1:9002/sub/", None, "/sub/"),
    ("location", "http://127.0.0.1:9002", "/app", "/app/"),
    ("location", "http://127.0.0.1:9002?q", None, "/?q"),
    ("location", "http://localhost:9002/a#top", "/app", "/app/a#top"),  # its machine's names
    ("location", "http://[::1]:9002/a", None, "/a"),
    ("content-location", "http://0.0.0.0:9002/a", None, "/a"),
    ("refresh", "0; url=http://127.0.0.1:9002/a", "/app", "0; url=/app/a"),
    ("refresh", "5", "/app", "5"),
    # Not the child: another port, another host, another scheme, or no port at all.
    ("location", "http://127.0.0.1:9003/a", "/app", "http://127.0.0.1:9003/a"),
    ("location", "http://example.com:9002/a", "/app", "http://example.com:9002/a"),
    ("location", "https://127.0.0.1:9002/a", "/app", "https://127.0.0.1:9002/a"),
    ("location", "http://127.0.0.1/a", "/app", "http://127.0.0.1/a"),
    ("location", "http://user@127.0.0.1:9002x/a", None, "http://user@127.0.0.1:9002x/a"),
    # The proxy itself (the Host the client sent): left as written, even under a prefix,
    # since a child may name another route on purpose (README, "Any web server").
    ("location", "http://localhost:3000/items/", "/app", "http://localhost:3000/items/"),
])  # fmt: skip
def test_a_redirect_to_the_child_is_put_back_under_the_proxy(
    name: str, value: str, prefix: str | None, client_gets: str
) -> None:
    assert forwarding.put_back(name, value, prefix, ("127.0.0.1", 9002)) == client_gets


@pytest.mark.parametrize(("value", "client_gets"), [
    ("t=1; Path=/auth/refresh; HttpOnly", "t=1; Path=/app/auth/refresh; HttpOnly"),
    ("t=1; HttpOnly; path = /auth", "t=1; HttpOnly; path = /app/auth"),  # any case, spaces
    ("t=1; Path=/apple", "t=1; Path=/app/apple"),  # another path that begins the same
    ("t=1; Path=/", "t=1; Path=/"),  # every path: it reaches the prefix's too
    ("t=1; Path=/app", "t=1; Path=/app"),  # under the prefix already (X-Forwarded-Prefix)
    ("t=1; Path=/app/x", "t=1; Path=/app/x"),
    ("t=1", "t=1"),  # the request's own path, which is the client's
    ("t=1; Path=x", "t=1; Path=x"),  # not a path: the browser ignores it
    ("path=/x; Max-Age=5", "path=/x; Max-Age=5"),  # a cookie named path, not the attribute
    ("t=1; Path=/a; Path=/b", "t=1; Path=/app/a; Path=/app/b"),  # the browser takes the last
])  # fmt: skip
def test_a_cookies_path_is_put_back_under_the_prefix(value: str, client_gets: str) -> None:
    assert forwarding.cookie_put_back(value, "/app") == client_gets


def test_a_redirect_to_a_named_upstream_is_its_own_but_not_to_this_machine() -> None:
    upstream = ("api.internal", 8000)  # a route-only <upstream>: localhost is not it
    assert forwarding.put_back("location", "http://API.internal:8000/x", None, upstream) == "/x"
    assert forwarding.put_back("location", "http://localhost:8000/x", None, upstream) == (
        "http://localhost:8000/x"
    )


@pytest.mark.parametrize(("headers", "kept"), [
    ([("Host", "a"), ("Accept", "*/*"), ("Connection", "Keep-Alive")], ["Host", "Accept"]),
    ([("HOST", "a"), ("keep-alive", "timeout=5"), ("TE", "trailers")], ["HOST"]),
    # A header a Connection header names is hop-by-hop too, whichever comes first.
    ([("X-Hop", "1"), ("Connection", "close, X-HOP"), ("X-End", "2")], ["X-End"]),
    ([("Connection", "x-hop"), ("connection", "x-other"), ("X-Hop", "1"), ("X-Other", "2"),
      ("X-End", "3")], ["X-End"]),
    ([("Upgrade", "websocket"), ("Connection", "upgrade"), ("Origin", "o")], ["Origin"]),
    # The direction's own: from a client, what the proxy sets itself.
    ([("X-Forwarded-Proto", "https"), ("X-Request-Id", "i"), ("Expect", "100-continue"),
      ("X-Forwarded-For", "1.2.3.4")], ["X-Forwarded-For"]),
])  # fmt: skip
def test_the_headers_that_go_on(headers: list[tuple[str, str]], kept: list[str]) -> None:
    for _ in range(2):  # the second time with the names already seen
        got = forwarding.end_to_end(headers, forwarding.FROM_CLIENT_DROPPED)
        assert [name for _, name, _ in got] == kept
        assert all(lower == name.lower() for lower, name, _ in got)


def _proxy(tmp_path: Path) -> Proxy:
    """A Proxy that routes /api to a keep-alive pipe and /web to pass-through (real pools,
    not started); /_/ is the admin endpoints'."""
    manifest_path = tmp_path / "manifest.xml"
    python = sys.executable  # (a bare python3 is not on PATH everywhere: Windows)
    manifest_path.write_text(
        "<manifest>"
        f"<process><id>api</id><executable>{python}</executable><route>/api/*</route>"
        "<communication_mode>pipe-keepalive</communication_mode></process>"
        f"<process><id>web</id><executable>{python}</executable><route>/web/*</route>"
        "<communication_mode>passthrough</communication_mode>"
        "<max_body_size>64MiB</max_body_size></process>"
        "</manifest>"
    )
    loaded = manifest.load(manifest_path, socket_dir=tmp_path)
    printer = Printer(color=False)
    supervisor = Supervisor(loaded, Settings(socket_dir=tmp_path), printer)
    names = launch.SocketNames(tmp_path)
    supervisor.pools = {p.id: Pool(p, printer, names) for p in loaded.processes}
    supervisor.router = Router(
        (route, pool) for pool in supervisor.pools.values() for route in pool.process.routes
    )

    return Proxy(supervisor, admin_prefix="/_/")


def _lane_requests(tmp_path: Path) -> lane_requests.Requests:
    """A connection's Requests, planned by _proxy's Proxy."""
    return lane_requests.Requests(_proxy(tmp_path), lambda: "127.0.0.1:3000")


async def test_request_ids_count_in_hex_after_the_runs_prefix(tmp_path: Path) -> None:
    proxy = _proxy(tmp_path)
    ids = [proxy.ids.new_id() for _ in range(600)]
    prefix = ids[0][:8]
    assert ids == [f"{prefix}{n:08x}" for n in range(1, 601)]


_GET = b"GET /api/a HTTP/1.1\r\nHost: h\r\n\r\n"
_PUT = b"PUT /api/b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
_CLOSE = b"GET /api/a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
_BIG = 1024**2 + 1  # a pass-through body over 1 MiB streams


def _said(requests: lane_requests.Requests) -> list[str]:
    """What `next` gives until it has nothing, as the lane asks it (again after 100 Continue;
    not after a streaming request's head, whose body the lane `take`s): each request, then
    why it stopped."""
    said = []
    while True:
        message = requests.next()
        if message is None:
            said.append(["idle", "head", "body", "continue", "elsewhere"][requests.waiting])
            if requests.waiting != lane_requests.CONTINUE:
                return said
            continue
        body = "streams" if message.streams else message.body.decode()
        to = message.pool.process.id if message.pool is not None else "refused"
        said.append(f"{message.method} {message.target} {to} {body}".strip())
        if message.streams:
            return said


@pytest.mark.parametrize(("pieces", "said"), [
    ([_GET], ["GET /api/a api", "idle"]),
    ([_GET + _PUT + _GET], ["GET /api/a api", "PUT /api/b api hello", "GET /api/a api", "idle"]),
    # Byte by byte: the head, then the body, awaited; the request once whole.
    ([_PUT[:i] for i in range(1, len(_PUT) + 1)],
     [["head"]] * 50 + [["body"]] * 5 + [["PUT /api/b api hello", "idle"]]),
    # Pass-through's Expect: 100 Continue asked for once, then the body awaited.
    ([b"POST /web/u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
      b"ok"], [["continue", "body"], ["POST /web/u web ok", "idle"]]),
    # Not the lane's: the admin endpoints, Expect to an envelope mode, chunked, no route...
    ([b"GET /_/health HTTP/1.1\r\nHost: h\r\n\r\n" + _GET], ["elsewhere"]),
    ([b"POST /api/u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"],
     ["elsewhere"]),
    ([b"POST /api/u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"], ["elsewhere"]),
    ([_GET + b"\x16\x03\x01\x00\xa5"], ["GET /api/a api", "elsewhere"]),  # TLS after a request
    ([_GET + b"GET /api/a HTTP/1.1\nHost: h\n\n"], ["GET /api/a api", "elsewhere"]),  # bare LF
    # A method llhttp does not know, as nginx takes it; its body counted, the next found.
    ([b"BAN /api/x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi" + _GET],
     ["BAN /api/x api hi", "GET /api/a api", "idle"]),
    ([b"ban /api/x HTTP/1.1\r\nHost: h\r\n\r\n"], ["elsewhere"]),  # as nginx: 400 there
    # A 404 without a body is the lane's (a browser's favicon); with one, aiohttp's.
    ([b"GET /favicon.ico HTTP/1.1\r\nHost: h\r\n\r\n" + _GET],
     ["GET /favicon.ico refused", "GET /api/a api", "idle"]),
    ([b"POST /nowhere HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"], ["elsewhere"]),
    # A head repeated byte for byte (not fed to llhttp again): each time a request, and the
    # connection's state kept (after Connection: close llhttp takes no more: aiohttp's 400).
    ([_GET + _GET, _GET + _GET[:9], _GET[9:]],
     [["GET /api/a api", "GET /api/a api", "idle"], ["GET /api/a api", "head"],
      ["GET /api/a api", "idle"]]),
    ([_CLOSE + _CLOSE], ["GET /api/a api", "elsewhere"]),
    ([_GET + _PUT + _PUT + _GET], ["GET /api/a api", "PUT /api/b api hello",
                                   "PUT /api/b api hello", "GET /api/a api", "idle"]),
])  # fmt: skip
async def test_a_connections_bytes_cut_into_requests(
    tmp_path: Path, pieces: list[bytes], said: list[str] | list[list[str]]
) -> None:
    requests = _lane_requests(tmp_path)
    if isinstance(said[0], str):  # one feed of all the pieces, one reading
        for piece in pieces:
            requests.feed(piece)
        assert _said(requests) == said
        return
    fed = b""
    for piece, after in zip(pieces, said, strict=True):  # each piece: what is said after it
        requests.feed(piece[len(fed) :] if piece.startswith(fed) else piece)
        fed = piece if piece.startswith(fed) else fed + piece
        assert _said(requests) == after, fed


async def test_what_is_not_the_lanes_is_handed_on_from_its_first_byte(tmp_path: Path) -> None:
    requests = _lane_requests(tmp_path)
    admin = b"GET /_/health HTTP/1.1\r\nHost: h\r\n\r\n"
    requests.feed(_PUT + admin + _GET)
    assert _said(requests) == ["PUT /api/b api hello", "elsewhere"]
    assert requests.rest() == admin + _GET and requests.buffer == b""


async def test_a_streaming_body_is_taken_as_it_comes_and_the_next_request_found(
    tmp_path: Path,
) -> None:
    requests = _lane_requests(tmp_path)
    requests.feed(f"PUT /web/big HTTP/1.1\r\nHost: h\r\nContent-Length: {_BIG}\r\n\r\n".encode())
    requests.feed(b"x" * 1000)
    assert _said(requests) == ["PUT /web/big web streams"]  # at its head
    assert requests.take(_BIG) == b"x" * 1000  # as far as it came
    requests.feed(b"y" * (_BIG - 1000) + _GET)
    assert requests.take(_BIG - 1000) == b"y" * (_BIG - 1000)  # and no further
    # llhttp counted the body: it judges the heads after it (a space before a colon).
    requests.feed(b"GET /api/c HTTP/1.1\r\nHost: h\r\nX : y\r\n\r\n")
    assert _said(requests) == ["GET /api/a api", "elsewhere"]


async def test_an_http10_pass_through_request_without_host_gets_the_proxys(
    tmp_path: Path,
) -> None:
    found = []
    for target in (b"/web/a", b"/api/a"):
        requests = _lane_requests(tmp_path)
        requests.feed(b"GET " + target + b" HTTP/1.0\r\n\r\n")
        found.append(requests.next())
    web, api = found
    assert web is not None and api is not None
    assert web.headers == [("Host", "127.0.0.1:3000")]  # the child speaks HTTP/1.1
    assert api.headers == []  # an envelope carries the headers as they came


async def test_a_repeated_head_is_the_same_request_until_the_routes_change(
    tmp_path: Path,
) -> None:
    requests = _lane_requests(tmp_path)
    head = b"GET /web/a HTTP/1.0\r\nConnection: keep-alive\r\nX-Request-Id: r1\r\n\r\n"
    seen = []
    for _ in range(3):  # kept from the second time on
        requests.feed(head)
        message = requests.next()
        assert message is not None and message.pool is not None
        message.headers.append(("X-Request-Id", "added by the proxy"))  # as Proxy.identify
        seen.append(message)
    first, _, again = seen
    assert again is not seen[1] and again.request_id == "r1"
    # Its own header list, as read (with the Host the proxy gives an HTTP/1.0 request), and
    # one header added to it alone.
    assert again.headers == [
        ("Connection", "keep-alive"), ("X-Request-Id", "r1"), ("Host", "127.0.0.1:3000"),
        ("X-Request-Id", "added by the proxy"),
    ]  # fmt: skip
    assert (again.pool, again.path, again.request_id) == (first.pool, "/web/a", "r1")
    # A reload installs new routes: the same head is planned by them.
    supervisor = requests._proxy.supervisor
    supervisor.router = Router([("/web/*", supervisor.pools["api"])])
    requests.feed(head)
    moved = requests.next()
    assert moved is not None and moved.pool is supervisor.pools["api"]
    assert moved.headers == [("Connection", "keep-alive"), ("X-Request-Id", "r1")]


def test_process_stats_count_by_status_and_bucket_as_bisect_does() -> None:
    stats = ProcessStats()
    latencies = [0.0, 0.0005, 0.0007, 0.001, 0.3, 10.0, 10.5, 99.0]
    for status, seconds in zip([200, 200, 404, 502, 599, 100, 99, 700], latencies, strict=True):
        stats.record(status, seconds)
    assert stats.by_status == {200: 2, 404: 1, 502: 1, 599: 1, 100: 1, 99: 1, 700: 1}
    assert (stats.requests, stats.errors) == (8, 3)
    expected = [0] * (len(BUCKETS) + 1)
    for seconds in latencies:
        expected[bisect.bisect_left(BUCKETS, seconds)] += 1
    assert stats.bucket_counts == expected
    assert stats.bucket_counts[-1] == 2  # +Inf: above the last bound


def test_process_stats_percentiles_are_of_the_last_2048_requests() -> None:
    stats = ProcessStats()
    assert stats.percentile_ms(0.5) is None
    for _ in range(2048):
        stats.record(200, 1.0)  # 1 s each: all of them pushed out by what follows
    for n in range(3000):
        stats.record(200, n / 1000)  # n ms
    # The last 2048: 952 to 2999 ms.
    assert stats.percentile_ms(0.0) == 952.0
    assert stats.percentile_ms(0.5) == 952.0 + 1024
    assert stats.percentile_ms(1.0) == 2999.0
    assert stats.requests == 5048


@pytest.mark.parametrize(("printed", "shown"), [
    (b"plain", "plain"), (b"windows line\r", "windows line"),
    (b"\rbuilding 0%\rbuilding 50%\rbuilding 100%", "building 100%"),  # a progress bar
    (b"caf\xe9", "caf\ufffd"),  # not UTF-8
])  # fmt: skip
def test_a_childs_line_is_shown_as_a_terminal_leaves_it(printed: bytes, shown: str) -> None:
    assert line_text(printed) == shown


@pytest.mark.parametrize(("printed", "in_text", "plain"), [
    ("\x1b[2J\x1b[3J\x1b[H\x1b[32mready\x1b[0m", "\x1b[32mready\x1b[0m", "ready"),  # Vite's start
    ("\x1b[1;31mError\x1b[m: no", "\x1b[1;31mError\x1b[m: no", "Error: no"),
    ("\x07bell \x1b]0;a title\x07done", "bell done", "bell done"),  # BEL, OSC ended by BEL
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link", "link"),  # OSC 8, ended by ST
    ("up\x1b[1A\x1b[2Kover", "upover", "upover"), ("cut \x1b[12", "cut 12", "cut 12"),
    ("reset\x1bc", "reset", "reset"), ("a\tb\x00\x7f\u009b", "a\tb", "a\tb"),
    ("caf\u00e9 \u2713", "caf\u00e9 \u2713", "caf\u00e9 \u2713"),
])  # fmt: skip
def test_a_childs_escapes_are_colours_or_nothing(printed: str, in_text: str, plain: str) -> None:
    """No child can clear the screen, move the cursor or retitle the window of the terminal
    the proxy prints to; its colours stay in text, and go from the dashboard's lines."""
    assert output.for_terminal(printed) == in_text
    assert output.plain(printed) == plain


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc tells who listens")
def test_who_holds_a_port_is_told_without_leaving_proc_open() -> None:
    """listeners.port_holder names the process listening on a port, this one here, and
    closes its walk of /proc though it stops at the first holder."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            holder = listeners.port_holder(server.getsockname()[1])
    assert holder is not None and holder.startswith(f"pid {os.getpid()} ("), holder
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_access_lines_as_each_log_format_writes_them() -> None:
    """One line for each request, in the order answered, handed on together a moment later
    (access_log._GATHER) or as soon as anything else is printed: plain (the name column as
    wide as the Printer says), in colour by status class, or one JSON object; the dashboard's
    tap hears each at once."""
    written: list[str] = []
    tapped: list[tuple[str, str, str, str]] = []
    plain = AccessLog(written.append, source="local-lambdas", json=False, ansi=False)
    plain.tap = lambda *line: tapped.append(line)
    plain.line("GET", "/api/x?y=1", "api", 200, 0.00125, "r1")
    plain.widen(15)
    plain.line("POST", "/nope", None, 404, 2.5, "r2")
    assert written == [] and len(tapped) == 2  # (the output thread is not woken for each)
    assert await eventually(lambda: bool(written), 5)
    assert written == [
        "local-lambdas | 200 GET /api/x?y=1 -> api 1.3 ms [r1]\n"
        "local-lambdas   | 404 POST /nope -> - 2500.0 ms [r2]\n"
    ]
    assert tapped == [
        ("local-lambdas", "access", "200 GET /api/x?y=1 -> api 1.3 ms [r1]", "green"),
        ("local-lambdas", "access", "404 POST /nope -> - 2500.0 ms [r2]", "yellow"),
    ]
    coloured: list[str] = []
    AccessLog(coloured.append, source="ll", json=False, ansi=True).line(
        "GET", "/", "web", 502, 0.0, "r3"
    )
    machine: list[str] = []
    AccessLog(machine.append, source="ll", json=True, ansi=False).line(
        "GET", "/a", "api", 301, 0.0123456, "r4"
    )
    assert await eventually(lambda: bool(coloured and machine), 5)
    assert coloured == ["\x1b[1mll\x1b[0m | \x1b[31m502 GET / -> web 0.0 ms [r3]\x1b[0m\n"]
    record = json.loads(machine[0])
    assert record.pop("time") > 0
    assert record == {"event": "access", "method": "GET", "uri": "/a", "process": "api",
                      "status": 301, "ms": 12.346, "request_id": "r4"}  # fmt: skip


def test_a_port_windows_keeps_for_itself_is_said_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows refuses ports in the ranges Hyper-V, WSL or Docker reserved with WSAEACCES
    (errno 13), 3000 among them on some machines. The platform is patched: neither this
    machine nor Wine reserves ports, so the refusal cannot be made real here."""
    monkeypatch.setattr(binding, "IS_WINDOWS", True)
    refused = OSError(errno.EACCES, "An attempt was made to access a socket in a way "
                      "forbidden by its access permissions")  # fmt: skip
    said = str(binding._cannot_listen("127.0.0.1", 3000, refused))
    assert said.startswith(
        "cannot listen on 127.0.0.1:3000: permission denied (Windows keeps "
        "some ports for itself: netsh interface ipv4 show excludedportrange "
        "protocol=tcp lists them); choose another with --port PORT"
    ), said


def test_names_line_up_as_a_terminal_shows_them() -> None:
    """A name of wide characters (CJK: two columns each) pads to the same column as the
    others: the bars line up."""
    shown = io.StringIO()
    printer = Printer(file=shown, color=False)
    for name in ("日本", "api", "a-long-name"):
        printer.register(name)
        printer.child_lines(name, "stdout", [b"up"])
    printer.flush()
    bars = [cell_len(line.partition(" | ")[0]) for line in shown.getvalue().splitlines()]
    assert len(bars) == 3 and len(set(bars)) == 1, shown.getvalue()


async def test_access_lines_keep_their_place_among_the_other_lines() -> None:
    """The access lines gathered go out before any line printed after them: a child's, an
    event, and at a flush."""
    shown = io.StringIO()
    printer = Printer(file=shown, color=False)
    printer.register("api")
    printer.access_log.line("GET", "/a", "api", 200, 0.001, "r1")
    printer.child_lines("api", "stdout", [b"after r1"])
    printer.access_log.line("GET", "/b", "api", 200, 0.001, "r2")
    printer.event(logging.WARNING, "after r2")
    printer.access_log.line("GET", "/c", "api", 200, 0.001, "r3")
    printer.flush()
    lines = shown.getvalue().splitlines()
    assert [line.split(" | ")[1] for line in lines] == [
        "200 GET /a -> api 1.0 ms [r1]", "after r1", "200 GET /b -> api 1.0 ms [r2]",
        "after r2", "200 GET /c -> api 1.0 ms [r3]",
    ]  # fmt: skip


def test_run_passes_no_console_event_on_to_its_command_on_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Windows the console's Ctrl+C and Ctrl+Break reach the command itself, which shares
    the console. (Faked: no console to type in here, nor under the Wine lane; the POSIX
    cases run for real in test_lifecycle.py.)"""
    import signal
    from typing import cast

    from local_lambdas import _compat, run_signals

    class Command:
        def __init__(self) -> None:
            self.sent: list[int] = []

        def send_signal(self, number: int) -> None:
            self.sent.append(number)

    command = Command()
    monkeypatch.setattr(_compat, "IS_WINDOWS", True)
    monkeypatch.setattr(run_signals, "ECHO_SECONDS", 0)  # each signal a new one
    pass_on = run_signals.Stops(None, lambda: None)
    pass_on.starting_command()
    pass_on.started(cast("asyncio.subprocess.Process", command))
    pass_on(signal.SIGINT)
    pass_on(signal.SIGTERM)
    assert command.sent == []
    monkeypatch.setattr(_compat, "IS_WINDOWS", False)
    monkeypatch.setattr(_compat, "in_foreground", lambda: False)
    pass_on(signal.SIGINT)
    assert command.sent == [signal.SIGINT]


def test_a_stop_while_loading_is_taken_once() -> None:
    """The first Ctrl+C or SIGTERM while a run loads stops it (KeyboardInterrupt, said in
    one line); its echo (run_signals.ECHO_SECONDS), raised again while that line was being
    made, ended the run in a traceback instead (13 of 30 runs sent two SIGTERMs 1 ms apart
    in their first 0.2 s)."""
    import signal

    from local_lambdas.loading_signals import Loading

    loading = Loading()
    with pytest.raises(KeyboardInterrupt):
        loading.ctrl_c(signal.SIGTERM, None)
    loading.ctrl_c(signal.SIGINT, None)  # nothing raised
    assert loading.stopped_by == signal.SIGTERM


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX's")
def test_a_group_the_sigterm_ended_still_counts_as_asked_to_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """stop_group sends SIGTERM, then SIGCONT: a group that the SIGTERM ended (reaped at
    once, before the SIGCONT) was asked to stop all the same; taken for none, the stop
    skipped its graceful wait, and what the child left behind (a helper in a session of
    its own) outlived a clean stop. (The reap between the two signals is a race: faked.)"""
    import signal

    from local_lambdas._compat import processes

    sent: list[int] = []

    def killpg(pid: int, sig: int) -> bool:
        sent.append(sig)
        return sig == signal.SIGTERM  # gone by the SIGCONT

    monkeypatch.setattr(processes, "_killpg", killpg)
    assert processes.stop_group(12345)
    assert sent == [signal.SIGTERM, signal.SIGCONT]


@pytest.mark.parametrize(
    ("number", "said", "status"),
    [(signal.SIGINT, "stopped by Ctrl+C", 130), (signal.SIGTERM, "stopped by SIGTERM", 143)],
)
def test_a_stop_as_run_starts_is_said_with_its_keys_or_signal(
    number: int, said: str, status: int
) -> None:
    from local_lambdas.errors import Stopped

    assert (str(Stopped(number)), Stopped(number).status) == (said, status)


# (command line, the words that say it reloads itself, or None)
SELF_RELOADING = [
    ("uvicorn app:app --reload", "uvicorn app:app --reload"),
    (
        "/venv/bin/python -m hypercorn app:app --reload=true",
        "python -m hypercorn app:app --reload=true",
    ),
    ("gunicorn app:app --reload", "gunicorn app:app --reload"),
    ("node --watch server.js", "node --watch"),
    ("node --watch-path=src/api server.js", "node --watch-path=src/api"),
    ("bun --hot server.ts", "bun --hot"),
    ("deno run --watch -A main.ts", "deno run --watch"),
    ("esbuild in.js --bundle --watch", "esbuild in.js --bundle --watch"),
    ("nodemon server.js", "nodemon"),
    ("npx nodemon server.js", "npx nodemon"),
    ("./node_modules/.bin/vite", "vite"),
    ("npx vite --port 5173", "npx vite"),
    ("npx vite dev", "npx vite dev"),
    ("npx next dev", "npx next dev"),
    ("npx tsx watch src/index.ts", "npx tsx watch"),
    ("python manage.py runserver 8000", "python manage.py runserver"),
    ("flask --app app --debug run", "flask --app app --debug"),
    ("flask run --debug", "flask run --debug"),
    ("npx react-scripts start", "npx react-scripts start"),
    ("ng serve --port 4200", "ng serve"),
    ("hugo server -D", "hugo server"),
    ("mkdocs serve", "mkdocs serve"),
    ("air", "air"),
    ("cargo watch -x run", "cargo watch"),
    # Not: a build, a production server, a script, a shell's string, a reload turned off.
    ("npx vite build", None),
    ("npx next start", None),
    ("npx parcel build index.html", None),
    ("hugo", None),
    ("flask run", None),
    ("python app.py --debug", None),
    ("python manage.py runserver --noreload", None),
    ("npm run dev", None),
    ("sh -c 'uvicorn app:app --reload'", None),
    ("go run .", None),
    ("cargo run", None),
]


_SCRIPTS = {"dev": "vite", "start": "node server.js", "serve": "cross-env PORT=1 nodemon src",
            "broken": "vite 'unclosed", "odd": 5}  # fmt: skip


@pytest.mark.parametrize(("command", "said"), [
    ("npm run dev -- --port 3000", "`vite` (package.json's 'dev')"),
    ("npm --silent run-script dev", "`vite` (package.json's 'dev')"),
    ("yarn dev", "`vite` (package.json's 'dev')"),
    ("pnpm run serve", "`cross-env PORT=1 nodemon` (package.json's 'serve')"),
    ("bun run dev", "`vite` (package.json's 'dev')"),
    ("sh -c 'exec uvicorn app:app --reload'", "`exec uvicorn app:app --reload` (its -c string)"),
    # Not: a script that does not reload itself, none by that name, one that cannot be read,
    # npm's own commands, a command with no wrapper.
    ("npm start", None),
    ("npm run missing", None),
    ("npm run broken", None),
    ("npm run odd", None),
    ("npm install", None),
    ("npm dev", None),  # (npm runs no script without `run`, but for start)
    ("sh -c 'python app.py'", None),
    ("node server.js", None),
])  # fmt: skip
def test_a_wrappers_command_that_reloads_itself_is_found_inside_it(
    tmp_path: Path, command: str, said: str | None
) -> None:
    """`npm run dev` (Vite's and Next.js's way in) said nothing of the `vite` its script
    runs: --watch restarted the dev server on every save, cutting its hot update short."""
    (tmp_path / "package.json").write_text(json.dumps({"scripts": _SCRIPTS}))
    executable, *args = shlex.split(command)
    process = _process().model_copy(
        update={"executable": executable, "args": tuple(args), "working_dir": tmp_path}
    )
    lines = self_reload.advice([process])
    assert [line.partition(" reloads it")[0] for line in lines] == (
        [f"api: {said}"] if said else []
    ), lines


@pytest.mark.parametrize(("command", "said"), SELF_RELOADING)
def test_a_command_that_reloads_itself_is_known_by_its_words(
    command: str, said: str | None
) -> None:
    executable, *args = shlex.split(command)
    assert self_reload.reloads_itself(executable, args) == said

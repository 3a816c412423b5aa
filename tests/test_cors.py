"""CORS answered by the proxy: preflights, actual answers in every mode and both HTTP servers,
origins refused, a child's own headers replaced only where CORS is on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_lambdas.cors import Policy
from tests.helpers import (
    CHILDREN,
    PYTHON,
    WriteManifest,
    connect,
    in_both_lanes,
    process_xml,
    read_answer,
    running,
)

LANES = pytest.mark.parametrize("fast_lane", [True, False], ids=["fast-lane", "aiohttp"])
APP = "http://localhost:5173"


def manifest_body() -> list[str]:
    web = (
        f"<process><id>web</id><executable>{PYTHON}</executable>"
        f"<arg>{CHILDREN / 'web_child.py'}</arg><route>/web/*</route>"
        "<communication_mode>passthrough</communication_mode><strip_prefix>/web</strip_prefix>"
        "</process>"
    )
    return [
        process_xml("pipe", "/pipe/*", extra="<methods>GET POST</methods>"),
        process_xml("keep", "/keep/*", mode="pipe-keepalive"),
        process_xml("own", "/own/*", extra="<cors>https://other.example</cors>"),
        web,
    ]


@LANES
async def test_preflights_and_answers(
    write_manifest: WriteManifest, socket_dir: Path, fast_lane: bool
) -> None:
    path = write_manifest(*manifest_body())
    async with running(path, socket_dir, fast_lane=fast_lane, cors=(APP,)) as run:
        preflight = {"Origin": APP, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type, x-tag"}  # fmt: skip
        for route in ("/pipe/x", "/keep/x", "/web/echo"):
            async with run.http.options(run.url + route, headers=preflight) as reply:
                assert reply.status == 204, route
                assert reply.headers["Access-Control-Allow-Origin"] == APP
                assert reply.headers["Access-Control-Allow-Methods"] == "POST"
                assert reply.headers["Access-Control-Allow-Headers"] == "content-type, x-tag"
                assert reply.headers["Access-Control-Allow-Credentials"] == "true"
                assert reply.headers["Access-Control-Max-Age"] == "600"
                assert "Origin" in reply.headers["Vary"]
            async with run.http.post(run.url + route, headers={"Origin": APP}, data=b"hi") as reply:
                assert reply.status == 200, route
                assert reply.headers["Access-Control-Allow-Origin"] == APP
                assert reply.headers["Access-Control-Allow-Credentials"] == "true"
                assert reply.headers["Access-Control-Expose-Headers"] == "X-Request-Id"
        # An origin not in the list: no CORS header at all.
        evil = {"Origin": "http://evil.example"}
        evil_preflight = {**evil, "Access-Control-Request-Method": "GET"}
        async with run.http.options(run.url + "/pipe/x", headers=evil_preflight) as reply:
            assert reply.status == 204 and "Access-Control-Allow-Origin" not in reply.headers
        async with run.http.get(run.url + "/pipe/x", headers=evil) as reply:
            assert reply.status == 200 and "Access-Control-Allow-Origin" not in reply.headers
        # A process's own <cors> list replaces --cors for its routes.
        async with run.http.get(run.url + "/own/x", headers={"Origin": APP}) as reply:
            assert "Access-Control-Allow-Origin" not in reply.headers
        other = {"Origin": "https://other.example"}
        async with run.http.get(run.url + "/own/x", headers=other) as reply:
            assert reply.headers["Access-Control-Allow-Origin"] == "https://other.example"
        # Private Network Access (Chromium's preflight from a page on a public address to
        # this machine): allowed for an allowed origin, not for another, never unasked.
        private = {**preflight, "Access-Control-Request-Private-Network": "true"}
        async with run.http.options(run.url + "/keep/x", headers=private) as reply:
            assert reply.status == 204
            assert reply.headers["Access-Control-Allow-Private-Network"] == "true"
            assert reply.headers["Access-Control-Allow-Origin"] == APP
        async with run.http.options(run.url + "/keep/x", headers=preflight) as reply:
            assert "Access-Control-Allow-Private-Network" not in reply.headers
        evil_private = {**private, **evil}
        async with run.http.options(run.url + "/keep/x", headers=evil_private) as reply:
            assert reply.status == 204
            assert "Access-Control-Allow-Private-Network" not in reply.headers
        # A method the route does not take is not allowed by the preflight either.
        refused = {"Origin": APP, "Access-Control-Request-Method": "DELETE"}
        async with run.http.options(run.url + "/pipe/x", headers=refused) as reply:
            assert reply.status == 204 and "Access-Control-Allow-Methods" not in reply.headers


# Preflights of every kind and actual requests to each kind of route, allowed and refused:
# the lane answers them all, as aiohttp's side does (a request handed over takes its
# connection along).
_FROM_APP = b"Origin: http://localhost:5173\r\n"
CORS_TRAFFIC = [
    b"OPTIONS /web/echo HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:5173\r\n"
    b"Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n"
    b"X-Request-Id: p1\r\n\r\n",
    b"OPTIONS /pipe/x HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n"
    b"Access-Control-Request-Method: GET\r\nX-Request-Id: p2\r\n\r\n",  # origin refused
    b"OPTIONS /pipe/x HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:5173\r\n"
    b"Access-Control-Request-Method: DELETE\r\nX-Request-Id: p3\r\n\r\n",  # method refused
    b"OPTIONS /keep/x HTTP/1.0\r\nOrigin: http://localhost:5173\r\nConnection: keep-alive\r\n"
    b"access-control-request-method: GET\r\nX-Request-Id: p4\r\n\r\n",
    b"GET /web/redirect HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:5173\r\n"
    b"X-Request-Id: p5\r\n\r\n",  # the actual request: pass-through's, the lane's too
    b"GET /keep/cookies HTTP/1.1\r\nHost: x\r\n" + _FROM_APP + b"X-Request-Id: p6\r\n\r\n",
    b"HEAD /keep/cookies HTTP/1.1\r\nHost: x\r\n" + _FROM_APP + b"X-Request-Id: p7\r\n\r\n",
    b"GET /keep/empty HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n"
    b"X-Request-Id: p8\r\n\r\n",  # an origin refused: no CORS header but Vary
    b"GET /keep/cookies HTTP/1.1\r\nHost: x\r\nX-Request-Id: p9\r\n\r\n",  # no Origin
    b"GET /pipe/status999 HTTP/1.1\r\nHost: x\r\n" + _FROM_APP + b"X-Request-Id: p10\r\n\r\n",
    b"DELETE /pipe/x HTTP/1.1\r\nHost: x\r\n" + _FROM_APP + b"X-Request-Id: p11\r\n\r\n",
]


async def test_cors_traffic_is_answered_alike_and_keeps_the_connection_in_the_lane(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(*manifest_body())
    answers = await in_both_lanes(path, socket_dir, CORS_TRAFFIC, cors=(APP,))
    assert answers[True] == answers[False]
    assert answers[True][0].startswith(b"HTTP/1.1 204 No Content\r\n")
    assert b"Access-Control-Allow-Origin: http://localhost:5173" in answers[True][0]
    assert b"Access-Control-Allow-" not in answers[True][1] + answers[True][2].split(b"Vary")[0]
    assert answers[True][4].startswith(b"HTTP/1.1 302")
    cookies, _, refused, plain, failed, not_allowed = answers[True][5:]
    assert b"Access-Control-Allow-Origin: http://localhost:5173" in cookies
    assert b"Access-Control-Expose-Headers: X-Request-Id" in cookies
    assert b"Access-Control-Allow-Origin" not in refused + plain
    assert all(b"Vary: Origin" in answer for answer in (cookies, refused, plain))
    assert failed.startswith(b"HTTP/1.1 502") and b"Access-Control-Allow-Origin" in failed
    assert not_allowed.startswith(b"HTTP/1.1 405") and b"Allow: GET, HEAD, POST" in not_allowed


async def test_any_origin_and_cors_off(write_manifest: WriteManifest, socket_dir: Path) -> None:
    path = write_manifest(*manifest_body())
    async with running(path, socket_dir, cors=("*",)) as run:
        async with run.http.get(run.url + "/keep/x", headers={"Origin": APP}) as reply:
            assert reply.headers["Access-Control-Allow-Origin"] == "*"
            assert "Access-Control-Allow-Credentials" not in reply.headers
    async with running(path, socket_dir) as run:  # off: preflights go to the child
        preflight = {"Origin": APP, "Access-Control-Request-Method": "GET"}
        async with run.http.options(run.url + "/web/echo", headers=preflight) as reply:
            assert reply.status == 200 and (await reply.json())["method"] == "OPTIONS"
            assert "Access-Control-Allow-Origin" not in reply.headers


@LANES
async def test_with_cors_off_a_preflight_is_held_to_the_method_it_asks_for(
    write_manifest: WriteManifest, socket_dir: Path, fast_lane: bool
) -> None:
    """CORS left to the child (Express's cors(), Flask-CORS) on a route of <methods>GET
    POST</methods>: the browser's preflight for a POST reached no child, a 405 for its
    OPTIONS, and every cross-origin POST failed. It is the POST it asks about that
    <methods> judges; any other OPTIONS is still an OPTIONS."""
    path = write_manifest(*manifest_body())
    async with running(path, socket_dir, fast_lane=fast_lane) as run:
        for asked, status in (("POST", 200), ("DELETE", 405)):
            preflight = {"Origin": APP, "Access-Control-Request-Method": asked}
            async with run.http.options(run.url + "/pipe/echo", headers=preflight) as reply:
                assert reply.status == status, asked
                if status == 200:  # the child's
                    assert json.loads(await reply.read())["method"] == "OPTIONS"
        async with run.http.options(run.url + "/pipe/echo", headers={"Origin": APP}) as reply:
            assert reply.status == 405 and reply.headers["Allow"] == "GET, HEAD, POST"


def test_a_childs_own_cors_headers_are_replaced_where_cors_is_on() -> None:
    child = [("Content-Type", "text/plain"), ("Access-Control-Allow-Origin", "*")]
    policy = Policy(frozenset({APP}))
    assert ("Access-Control-Allow-Origin", APP) in policy.answer(APP, child)
    assert ("Access-Control-Allow-Origin", "*") not in policy.answer(APP, child)
    assert not [h for h in policy.answer("http://x", child) if h[0].startswith("Access-")]
    own_network = [("Access-Control-Allow-Private-Network", "true")]  # a preflight's alone
    assert not [h for h in policy.answer(APP, own_network) if "Private" in h[0]]
    # What the child exposes to scripts stays exposed, with the request's id.
    paged = [("X-Total-Count", "40"), ("access-control-expose-headers", "X-Total-Count, Link")]
    assert ("Access-Control-Expose-Headers", "X-Total-Count, Link, X-Request-Id") in policy.answer(
        APP, paged
    )


async def test_a_cors_pass_through_answer_is_the_lanes_with_aiohttps_headers(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A browser's request to a pass-through route with CORS is relayed by the fast lane, with
    the headers aiohttp's side gives it, and its target as sent: a form sent with no fields
    ends it in a bare `?`."""
    path = write_manifest(*manifest_body())
    heads: dict[bool, dict[str, str]] = {}
    for fast_lane in (True, False):
        async with running(path, socket_dir, fast_lane=fast_lane, cors=(APP,)) as run:
            reader, writer = await connect(run.url)
            writer.write(f"GET /web/echo? HTTP/1.1\r\nHost: h\r\nOrigin: {APP}\r\n\r\n".encode())
            answer = await read_answer(reader)
            writer.close()
            head, _, body = answer.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            assert lines[0] == "HTTP/1.1 200 OK"
            fields = dict(line.split(": ", 1) for line in lines[1:])
            heads[fast_lane] = {k: v for k, v in fields.items()
                                if k not in ("Date", "X-Request-Id", "Content-Length")}  # fmt: skip
            if fast_lane:
                assert run.lane.served == 1 and run.lane.handed_over == 0
                assert json.loads(body)["raw_path"] == "/echo?"
    assert heads[True] == heads[False]
    assert heads[True]["Access-Control-Allow-Origin"] == APP

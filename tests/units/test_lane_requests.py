"""A lane connection's bytes cut into requests (lane/requests.py), and request ids
(request_ids.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from local_lambdas import (
    manifest,
)
from local_lambdas.config import Settings
from local_lambdas.lane import requests as lane_requests
from local_lambdas.output import Printer
from local_lambdas.proxy import Proxy
from local_lambdas.router import Router
from local_lambdas.supervision import launch
from local_lambdas.supervision.pool import Pool
from local_lambdas.supervision.supervisor import Supervisor


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

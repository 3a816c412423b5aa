"""The front door against careless and hostile clients, in both HTTP servers (the fast lane
and aiohttp's): routing on the normalised path, malformed heads, client timeouts, and the two
servers answering alike. Raw sockets, real children: a pipe child and a static file server
that resolves `..` itself, with a file outside its route."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import time
from functools import partial
from pathlib import Path

import aiohttp
import pytest

from local_lambdas import _compat
from local_lambdas.router import BadTarget, Router, resolve
from local_lambdas.stats import ProcessStats
from local_lambdas.supervision.pool import Pool
from tests.helpers import (
    CHILDREN,
    ON_SHARED_LOOP,
    PYTHON,
    SharedProxies,
    WriteManifest,
    all_read,
    cli,
    connect,
    eventually,
    process_xml,
    read_answer,
    reset,
    running,
    small_window,
    tcp_sockets,
)

LANES = pytest.mark.parametrize("fast_lane", [True, False], ids=["fast-lane", "aiohttp"])


def make_site(root: Path) -> Path:
    """A file server's root: public/hello.txt, public/sub/, and secret.txt outside public/."""
    (root / "public" / "sub").mkdir(parents=True)
    (root / "public" / "hello.txt").write_text("hello\n")
    (root / "secret.txt").write_text("SECRET\n")
    return root


def front_processes(root: Path) -> tuple[str, str]:
    """/api/* to a pipe child, /public/* to a file server of `root` (make_site)."""
    static = (
        f"<process><id>static</id><executable>{PYTHON}</executable>"
        f"<arg>{CHILDREN / 'static_files.py'}</arg><arg>{root}</arg>"
        "<route>/public/*</route><communication_mode>passthrough</communication_mode>"
        "<concurrency>1</concurrency></process>"
    )
    return process_xml("api", "/api/*"), static


@pytest.fixture
def front(tmp_path: Path, write_manifest: WriteManifest) -> Path:
    """A manifest of front_processes, for a test of its own."""
    return write_manifest(*front_processes(make_site(tmp_path / "site")))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site of the module's shared proxies."""
    return make_site(tmp_path_factory.mktemp("site"))


async def exchange(
    url: str, raw: bytes, *, timeout: float = 5.0, half_close: bool = False
) -> bytes:
    """Send `raw` (then shut the sending side: `half_close`), read until the proxy closes the
    connection or `timeout` passes."""
    reader, writer = await connect(url)
    writer.write(raw)
    if half_close:
        writer.write_eof()
    received = b""
    try:
        async with _compat.timeout(timeout):
            while chunk := await reader.read(65536):
                received += chunk
    except asyncio.TimeoutError:
        received += b"<still open>"
    writer.close()
    return received


def comparable(answer: bytes) -> bytes:
    """An answer less what differs between runs: the Date and the request ids."""
    answer = re.sub(rb"Date: [^\r]*\r\n", b"", answer)
    return re.sub(rb"[0-9a-f]{16}", b"ID", answer)


async def _statuses(reader: asyncio.StreamReader, sent: list[tuple[bytes, bytes]]) -> list[bytes]:
    """The statuses of the answers to the requests `sent`, read in turn."""
    statuses = []
    for raw, _ in sent:
        answer = await read_answer(reader, head_only=raw.startswith(b"HEAD"))
        statuses.append(answer.split(b" ")[1])
    return statuses


ESCAPES = [
    "/public/../secret.txt",
    "/public/%2e%2e/secret.txt",
    "/public/%2E%2E/secret.txt",
    "/public/.%2e/secret.txt",
    "/public/..%2fsecret.txt",
    "/public%2f..%2fsecret.txt",
    "/public/sub/../../secret.txt",
    "/public/sub%2f..%2f..%2fsecret.txt",
    "/public//../secret.txt",
    "/public/sub/..%5c..%5csecret.txt",
    "/public/..;/secret.txt",
    "/../secret.txt",
    "/public/../../secret.txt",
    "http://x/public/../secret.txt",
    "/public#/../secret.txt",  # (a server that keeps the `#` in its path reads /secret.txt)
    "/public/sub#/../../secret.txt",
    "/public#/%2e%2e/secret.txt",
    "/public/x#/..%5csecret.txt",
]


@LANES
@ON_SHARED_LOOP
async def test_no_path_leaves_its_route(shared: SharedProxies, site: Path, fast_lane: bool) -> None:
    run = await shared.get(*front_processes(site), fast_lane=fast_lane)
    for target in ESCAPES:
        raw = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        answer = await exchange(run.url, raw.encode())
        status = answer.split(b" ", 2)[1]
        assert status in (b"400", b"404"), (target, answer)
        assert b"SECRET" not in answer, target
    # Inside the route, normalising changes nothing for the child: it gets its file.
    for target in ("/public/hello.txt", "/public/./hello.txt", "/public/sub/../hello.txt",
                   "/public/%68ello.txt", "http://x/public/hello.txt",
                   "/public/sub#/../hello.txt"):  # fmt: skip
        answer = await exchange(
            run.url, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        assert answer.startswith(b"HTTP/1.1 200 "), (target, answer)
        assert answer.endswith(b"\r\n\r\nhello\n"), target


@LANES
@ON_SHARED_LOOP
async def test_a_folder_route_without_its_slash_is_redirected_to_it(
    shared: SharedProxies, fast_lane: bool
) -> None:
    """`/docs` for the route `/docs/`: a 301 to `/docs/` (its query kept), as nginx answers
    it, where relative links resolve; 308 for a method a browser would turn into a GET. It
    was a 404."""
    run = await shared.get(
        process_xml("docs", "/docs/"), process_xml("cafe", "/caf%C3%A9 menu/"), fast_lane=fast_lane
    )
    for head, status, location in (
        ("GET /caf%c3%a9%20menu", b"301", b"/caf%C3%A9%20menu/"),  # (escaped, as a URI is)
        ("GET /docs", b"301", b"/docs/"),
        ("HEAD /docs?a=1&b", b"301", b"/docs/?a=1&b"),
        ("GET /%64ocs", b"301", b"/docs/"),
        ("GET /_", b"301", b"/_/"),  # (the dashboard's prefix too)
        ("POST /docs", b"308", b"/docs/"),
        ("PUT /docs?x", b"308", b"/docs/?x"),
    ):
        for body in (b"", b"hi"):  # (a body: aiohttp's side of the fast lane's proxy)
            if body and head.startswith(("GET", "HEAD")):
                continue
            raw = f"{head} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            answer = await exchange(run.url, raw.encode() + b"Connection: close\r\n\r\n" + body)
            assert answer.split(b" ", 2)[1] == status, (head, answer)
            assert b"\r\nLocation: " + location + b"\r\n" in answer, (head, answer)
    for target in ("/docsx", "/doc", "/docs/.."):
        raw = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        answer = await exchange(run.url, raw.encode())
        assert answer.startswith(b"HTTP/1.1 404 "), (target, answer)
    answer = await exchange(run.url, b"GET /docs/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 "), answer


MALFORMED = {
    "bare LF": b"GET /api/x HTTP/1.1\nHost: x\n\n",
    "bare LF, admin": b"GET /_/health HTTP/1.1\nHost: x\n\n",
    "bare LF after the request line": b"GET /api/x HTTP/1.1\r\nHost: x\n\n",
    "CR alone": b"GET /api/x HTTP/1.1\rHost: x\r\r",
    "two Hosts": b"GET /api/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "no Host": b"GET /api/x HTTP/1.1\r\n\r\n",
    # A Host nginx refuses (ngx_http_validate_host): it would reach a pass-through child
    # as its Host and X-Forwarded-Host.
    "an empty Host": b"GET /api/x HTTP/1.1\r\nHost:\r\n\r\n",
    "an empty Host, HTTP/1.0": b"GET /api/x HTTP/1.0\r\nHost: \r\n\r\n",
    "a Host with a space": b"GET /public/x HTTP/1.1\r\nHost: a b\r\n\r\n",
    "a Host with a slash": b"GET /api/x HTTP/1.1\r\nHost: a/b\r\n\r\n",
    "a Host with an empty label": b"GET /api/x HTTP/1.1\r\nHost: a..b\r\n\r\n",
    "space in a name": b"GET /api/x HTTP/1.1\r\nHost: x\r\nX A: 1\r\n\r\n",
    "two lengths": b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
    b"Content-Length: 2\r\n\r\nab",
    "length and chunked": b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad chunk size": b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nabc\r\n0\r\n\r\n",
    "bad chunk, pass-through": b"POST /public/x HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "bad escape": b"GET /api/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
    "encoded NUL": b"GET /api/a%00b HTTP/1.1\r\nHost: x\r\n\r\n",
    "asterisk": b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    # Judged from its first bytes, not left waiting for a head's end (curl https:// to the
    # plain port): the TLS client hello does not hold the connection until the header timeout.
    "a TLS handshake": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    "a method too long to be one": b"GETGETGETGETGETGETGETGETGETGET",
    # (A method llhttp does not know is the lane's to pass on: test_passthrough.py.)
    "a lower-case method": b"foo /api/x HTTP/1.1\r\nHost: x\r\n\r\n",
    # At once too, its head not yet whole (the lane waited for its end until the timeout).
    "a lower-case method, its line alone": b"get /api/x HTTP/1.1\r\n",
    "words": b"hello",
    "a space in the target, its line alone": b"GET /api/x b HTTP/1.1\r\n",
    "a header line with no colon, the head not whole": b"GET /api/x HTTP/1.1\r\nHost: x\r\nX\r\n",
    "a control character in the target, the line not whole": b"GET /api/a\x1fb HT",
    # Neither judged at the head's end nor after the header timeout, as nginx refuses them
    # at the byte or line that tells.
    "a target no path, the line not whole": b"GET \xfapi/x HTTP",
    "a target no URL, the line not whole": b"POST api/x HTTP/1.",
    "a version no HTTP's, the line not whole": b"GET /api/x HTT/",
    "a name no token, the line not whole": b"GET /api/x HTTP/1.1\r\nHost: x\r\nX-\x06A",
    "a second Host, the head not whole": b"GET /api/x HTTP/1.1\r\nHost: a\r\nHost: a\r\nX",
    "a second length, the head not whole": b"POST /api/x HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 1\r\nContent-Length: 1\r\n",
}
# Requests llhttp reads that are not served, with nginx's status: not HTTP/1.x, 505; a
# transfer coding other than chunked alone, 501 (dechunked, a gzip-coded body would go on
# unmarked); a target or a header past aiohttp's line limits, 414 and 431.
UNSERVED = {
    "HTTP/2.0": (b"GET /api/x HTTP/2.0\r\nHost: x\r\n\r\n", b"505"),
    "HTTP/0.9": (b"GET /api/x\r\n\r\n", b"505"),
    # Judged at the request line's end, as nginx judges them, not after the header timeout:
    # an HTTP/0.9 request is whole there.
    "HTTP/0.9, its line alone": (b"GET /api/x\r\n", b"505"),
    "HTTP/2.0, its line alone": (b"GET /api/x HTTP/2.0\r\n", b"505"),
    "after a request": (b"GET /public/hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /api/y\r\n", b"505"),
    "another protocol, its line alone": (b"GET /api/x HTTX/1.1\r\n", b"400"),
    "HTTP/2's preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"400"),
    "gzip, chunked": (
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"501",
    ),
    "gzip, chunked, pass-through": (
        b"POST /public/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"501",
    ),
    # As nginx answers a long target; a long header as RFC 6585 says (nginx: 400).
    "a target too long": (b"GET /api/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
    "a header too long": (
        b"GET /api/x HTTP/1.1\r\nHost: x\r\nCookie: " + b"a" * 9000 + b"\r\n\r\n",
        b"431",
    ),
}


# Refusals told in words of ours where llhttp's would puzzle ("*", "b''", "Bad status line").
SAID = {
    "a target that is no path": (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", b"400",
                                 "the request target '*' is not a path"),
    "a coding not ending in chunked": (
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhi", b"400",
        "the Transfer-Encoding 'gzip' does not end in chunked"),
    "chunked before another coding": (
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        b"400", "the Transfer-Encoding 'chunked, gzip' does not end in chunked"),
    "chunked twice, in two headers": (  # (named as the second one alone: 'chunked' does not end...)
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"400", "the Transfer-Encoding 'chunked, chunked' applies chunked more than once"),
    "too many headers": (b"GET /api/x HTTP/1.1\r\nHost: x\r\n" + b"X-A: a\r\n" * 128 + b"\r\n",
                         b"431", "the request has more than 128 headers"),
    # Named, with the likely cause for cookies (each app on localhost sets its own).
    "a cookie header too long": (
        b"GET /api/x HTTP/1.1\r\nHost: x\r\nCookie: " + b"a" * 9000 + b"\r\n\r\n", b"431",
        "the Cookie header is 9,008 bytes, over the limit of 8,190: the browser holds too "
        "many cookies for this host"),
    "another header too long": (
        b"GET /api/x HTTP/1.1\r\nHost: x\r\nX-Trace: " + b"a" * 9000 + b"\r\n\r\n", b"431",
        "the X-Trace header is 9,009 bytes, over the limit of 8,190"),
    "a bare LF": (b"GET /api/x HTTP/1.1\nHost: x\n\n", b"400",
                  "the request line ends in a bare LF: end each line of a head with CRLF"),
    # llhttp's "Missing expected CR after header value" and the like, in the same words.
    "a header line ending in a bare LF": (
        b"GET /api/x HTTP/1.1\r\nHost: x\r\nX-A: 1\nX-B: 2\r\n\r\n", b"400",
        "the header line 'X-A: 1' ends in a bare LF: end each line of a head with CRLF"),
    "a header line ending in a CR alone": (
        b"GET /api/x HTTP/1.1\r\nHost: x\r\nX-A: 1\rX-B: 2\r\n\r\n", b"400",
        "the header line 'X-A: 1' ends in a CR alone"),
    "a header name with a slash": (b"GET /api/x HTTP/1.1\r\nHost: x\r\nX/Y: 1\r\n\r\n", b"400",
                                   "the header line 'X/Y: 1' has no valid name"),
    "a space before a header's colon": (b"GET /api/x HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n",
                                        b"400", "the header line 'X-A : 1' has no valid name"),
    "a control character in a header": (
        b"GET /api/x HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", b"400",
        "the header line 'X-A: a\\x01b' holds a control character"),
    "a space in the target": (b"GET /api/a b HTTP/1.1\r\nHost: x\r\n\r\n", b"400",
                              "a space in a target is %20"),
    "a space after the version": (b"GET /api/x HTTP/1.1 \r\nHost: x\r\n\r\n", b"400",
                                  "the request line has a space too many"),
    "a Host of a dot": (b"GET /api/x HTTP/1.1\r\nHost: .\r\n\r\n", b"400",
                        "the Host header '.' is not a host"),
    "chunks in HTTP/1.0": (  # RFC 9112 6.1: faulty framing, as nginx refuses it
        b"POST /api/x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        b"400", "Transfer-Encoding in an HTTP/1.0 request"),
}  # fmt: skip


@ON_SHARED_LOOP
async def test_malformed_requests_get_400_or_their_own_status_at_once_from_both_servers(
    shared: SharedProxies, site: Path
) -> None:
    answers: dict[bool, list[bytes]] = {}
    for fast_lane in (True, False):
        run = await shared.get(*front_processes(site), fast_lane=fast_lane)
        answers[fast_lane] = []
        cases = [(name, raw, b"400", "") for name, raw in MALFORMED.items()]
        cases += [(name, raw, status, "") for name, (raw, status) in UNSERVED.items()]
        cases += [(name, *case) for name, case in SAID.items()]
        for name, raw, status, words in cases:
            answer = await exchange(run.url, raw)
            assert not answer.endswith(b"<still open>"), (name, answer)
            # The last answer (one case has a request answered first).
            last = re.split(rb"(?=HTTP/1\.1 \d{3} )", answer)[-1]
            head, _, body = last.partition(b"\r\n\r\n")
            # HTTP/1.1 as nginx answers, also where no request line could be read.
            assert head.split(b" ")[:2] == [b"HTTP/1.1", status], (name, answer)
            error = json.loads(body)
            assert error["error"] and error["request_id"], name
            assert words in error["error"], (name, error)
            answers[fast_lane].append(comparable(answer))
    assert answers[True] == answers[False]


@ON_SHARED_LOOP
async def test_a_later_http1_version_is_served_as_http_1_1_by_both_servers(
    shared: SharedProxies, site: Path
) -> None:
    """RFC 9110 2.5: a request of HTTP/1.2 to 1.9 is read as the highest 1.x served, as nginx
    reads it (llhttp refuses it), in each mode and on aiohttp's side after a hand-over."""
    for fast_lane in (True, False):
        run = await shared.get(*front_processes(site), fast_lane=fast_lane)
        for target, body in (("/api/x", b'"/api/x"'), ("/public/hello.txt", b"hello\n")):
            for before in (b"", b"GET /_/health HTTP/1.1\r\nHost: x\r\n\r\n"):
                line = f"GET {target} HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n"
                answer = await exchange(run.url, before + line.encode())
                last = re.split(rb"(?=HTTP/1\.1 \d{3} )", answer)[-1]
                assert last.startswith(b"HTTP/1.1 200 "), (fast_lane, target, answer)
                assert body in last, (fast_lane, target, answer)


@LANES
@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's")
@ON_SHARED_LOOP
async def test_a_body_sent_apart_from_its_head_is_not_held_40_ms(
    shared: SharedProxies, site: Path, fast_lane: bool
) -> None:
    """A client that writes a head, then its body, without TCP_NODELAY (as Nagle leaves
    most sockets) holds the body until the head is acknowledged, which Linux delays by
    40 ms on a connection that has carried a request: 20 requests took 0.8 s at least. Not
    a speed target: each request is timed beside one from a client with TCP_NODELAY, which
    holds nothing back, and the stall would stand out as 40 ms between them or more."""
    run = await shared.get(*front_processes(site), fast_lane=fast_lane)
    clients = [await connect(run.url), await connect(run.url)]
    nagle = clients[0][1].transport.get_extra_info("socket")
    nagle.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # (asyncio sets it)

    async def post(n: int, client: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> float:
        reader, writer = client
        started = time.monotonic()
        body = b'{"n": %d}' % n
        writer.write(b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        await writer.drain()
        writer.write(body)
        answer = await read_answer(reader)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        return time.monotonic() - started

    for client in clients:
        await post(0, client)  # the stall comes on a connection that has carried a request
    # Each pair is slowed alike by a loaded machine (answers of 40-150 ms, 3 busy loops
    # beside the suite under -n 12), which pushed a bound on the times themselves past it.
    apart = sorted([await post(n, clients[0]) - await post(n, clients[1]) for n in range(20)])
    assert apart[10] < 0.020, apart
    for _, writer in clients:
        writer.close()


@LANES
@ON_SHARED_LOOP
async def test_header_lines_are_read_as_one_list(
    shared: SharedProxies, site: Path, fast_lane: bool
) -> None:
    run = await shared.get(*front_processes(site), fast_lane=fast_lane)
    # Every Connection line counts: the second says close.
    answer = await exchange(run.url, b"GET /api/x HTTP/1.1\r\nHost: x\r\n"
                            b"Connection: keep-alive\r\nConnection: close\r\n\r\n")  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 200 ") and not answer.endswith(b"<still open>")
    # Values reach the child without the whitespace around them.
    answer = await exchange(run.url, b"GET /api/x HTTP/1.1\r\nHost: x\r\nX-A: \t v \t\r\n"
                            b"Connection: close\r\n\r\n")  # fmt: skip
    seen = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert ["X-A", "v"] in seen["headers"]
    # (HTTP/1.0 with a Transfer-Encoding, refused, is in SAID.)


@LANES
@ON_SHARED_LOOP
async def test_empty_lines_before_a_request_are_skipped(
    shared: SharedProxies, site: Path, fast_lane: bool
) -> None:
    """RFC 9112 2.2: empty lines before a request line are skipped (a client may send a CRLF
    after a body), LF alone too, as nginx and llhttp skip them. The fast lane took `\nGET`
    for the method: an envelope child was sent it, a pass-through server hung up (502)."""
    run = await shared.get(*front_processes(site), fast_lane=fast_lane)
    for lead in (b"\n", b"\r\n", b"\n\n", b"\r\n\n"):
        reader, writer = await connect(run.url)
        writer.write(b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" + lead
                     + b"GET /api/y HTTP/1.1\r\nHost: x\r\n\r\n" + lead
                     + b"GET /public/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")  # fmt: skip
        answers = [await read_answer(reader) for _ in range(3)]
        writer.close()
        assert [a.split(b" ")[1] for a in answers] == [b"200"] * 3, (lead, answers)
        seen = json.loads(answers[1].partition(b"\r\n\r\n")[2])
        assert (seen["method"], seen["uri"]) == ("GET", "/api/y"), lead


@LANES
@ON_SHARED_LOOP
async def test_a_request_before_garbage_is_answered_first(
    shared: SharedProxies, site: Path, fast_lane: bool
) -> None:
    run = await shared.get(*front_processes(site), fast_lane=fast_lane)
    for path in ("/api/x", "/public/hello.txt"):
        raw = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\x01\r\n\r\n".encode()
        answer = await exchange(run.url, raw)
        assert answer.startswith(b"HTTP/1.1 200 "), (path, answer)
        second = answer.index(b"HTTP/1.", 5)
        assert answer[second:].split(b" ")[1] == b"400", (path, answer)
        assert not answer.endswith(b"<still open>")


@LANES
async def test_a_client_that_half_closes_is_answered_what_came_whole(
    front: Path, socket_dir: Path, fast_lane: bool
) -> None:
    """`printf 'GET ...' | nc -N`: the client shuts its sending side after its requests. What
    came whole is answered, pipelined requests too, whoever answers (a child of either kind,
    the proxy itself, the 400 of garbage), then the connection closes; a head or a body cut
    short closes it at once (not at the client timeouts, 30 s here)."""
    pipelined = (b"GET /public/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /api/y HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"POST /api/z HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")  # fmt: skip
    cases = {
        b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n": [b"200"],
        pipelined: [b"200", b"200", b"200"],
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n": [b"404"],
        b"GET /_/health HTTP/1.1\r\nHost: x\r\n\r\n": [b"200"],
        b"GARBAGE\x01\r\n\r\n": [b"400"],
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n": [b"400"],
        # An upgrade asked of an envelope route, which answers it as any request.
        b"GET /api/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n": [
            b"200"
        ],
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nab\r\n"
        b"0\r\n\r\n": [b"400"],  # a broken body, whole: its 400
        b"GET /api/x HTTP/1.1\r\nHost: x\r\n": [],
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc": [],
        # Those before a request cut short are still answered (aiohttp's side: none was).
        b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\nPOST /api/x HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 10\r\n\r\nabc": [b"200"],
        b"HEAD /public/hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /api/y HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n": [b"200", b"200"],
    }
    async with running(front, socket_dir, fast_lane=fast_lane,
                       client_header_timeout=30, client_body_timeout=30) as run:  # fmt: skip
        loop = asyncio.get_running_loop()
        for raw, statuses in cases.items():
            started = loop.time()
            answer = await exchange(run.url, raw, timeout=10, half_close=True)
            took = loop.time() - started
            assert re.findall(rb"HTTP/1\.[01] (\d{3}) ", answer) == statuses, (raw, answer)
            assert not answer.endswith(b"<still open>") and took < 5, (raw, took)


@LANES
@pytest.mark.skipif(not _compat.IS_LINUX, reason="reads /proc/net/tcp")
async def test_a_chunked_body_that_breaks_in_a_later_read_is_400_at_once(
    front: Path, socket_dir: Path, fast_lane: bool
) -> None:
    """A chunk size that is not hex, in a read after the head and a first chunk: the
    request, already handed to its handler, gets the 400 at once with the parser's words,
    and the connection closes. It waited for --client-body-timeout (30 s here), and a
    client that half-closed then got nothing."""
    loop = asyncio.get_running_loop()
    async with running(front, socket_dir, fast_lane=fast_lane, client_body_timeout=30) as run:
        for path in (b"/api/x", b"/public/hello.txt"):
            for half_close in (False, True):
                reader, writer = await connect(run.url)
                writer.write(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")  # fmt: skip
                await writer.drain()
                assert await eventually(partial(all_read, writer))  # read: in its handler
                writer.write(b"zz\r\nhello\r\n0\r\n\r\n")
                if half_close:
                    writer.write_eof()
                started = loop.time()
                async with _compat.timeout(10):
                    answer = await reader.read()  # to the connection's end
                writer.close()
                assert answer.startswith(b"HTTP/1.1 400 "), (path, half_close, answer)
                assert b"Invalid character in chunk size" in answer, answer
                assert loop.time() - started < 5, (path, half_close)


def _waiting_to_close(port: int) -> int:
    """The proxy's connections on `port` that the client has closed and it has not."""
    return sum(
        local.endswith(f":{port:04X}") and state == "08" for local, _, state in tcp_sockets(port)
    )


@pytest.mark.skipif(shutil.which("curl") is None or not _compat.IS_LINUX,
                    reason="needs curl, and /proc/net/tcp to see the connections")  # fmt: skip
@pytest.mark.parametrize("lane", [(), ("--no-fast-lane",)], ids=["fast-lane", "aiohttp"])
async def test_curl_closing_once_answered_is_let_go(front: Path, lane: tuple[str, ...]) -> None:
    """curl reads the whole answer, then closes at once. The proxy closes its side too,
    whoever answered: under uvloop a close that came between an answer of aiohttp's side and
    its wait for the next request once left the connection open (CLOSE-WAIT, a descriptor
    each, for aiohttp's keep-alive hour): most /_/status requests did, and a monitor
    polling it ran the proxy out of descriptors."""
    event_loop = ("--event-loop", "uvloop") if importlib.util.find_spec("uvloop") else ()
    async with cli(str(front), "--bind", "127.0.0.1:0", *event_loop, *lane) as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        await run.expect(r"^serving on ")  # every child ready
        paths = ["/_/status", "/_/health", "/api/x", "/public/hello.txt", "/nowhere"]
        loop = " ".join(f"curl -s -o /dev/null {url}{path};" for path in paths)
        script = f"for i in 1 2 3 4 5; do {loop} done"
        curl = await asyncio.create_subprocess_exec("sh", "-c", script)
        assert await curl.wait() == 0
        port = int(url.rsplit(":", 1)[1])
        assert await eventually(lambda: _waiting_to_close(port) == 0, timeout=5), (
            f"{_waiting_to_close(port)} connections left open"
        )
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0


@LANES
async def test_slow_clients_time_out_and_free_their_slot(
    front: Path, socket_dir: Path, fast_lane: bool
) -> None:
    async with running(front, socket_dir, fast_lane=fast_lane,
                       client_header_timeout=0.5, client_body_timeout=0.5) as run:  # fmt: skip
        half_head = b"GET /api/x HTTP/1.1\r\nHost: x\r\n"
        # The static route has <concurrency>1: a slow upload must not hold its one slot.
        short_body = b"POST /public/hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"
        for raw in (half_head, short_body, b"G"):
            started = asyncio.get_running_loop().time()
            waiting = asyncio.create_task(exchange(run.url, raw, timeout=10))
            async with run.http.get(run.url + "/public/hello.txt") as reply:
                assert reply.status == 200  # served while the slow client waits
            answer = await waiting
            took = asyncio.get_running_loop().time() - started
            assert answer.startswith(b"HTTP/1.1 408 "), (raw, answer)
            assert b'"request_id"' in answer and took < 5, (raw, took)


@LANES
async def test_a_client_that_resets_before_its_answer_is_counted_as_nginx_does(
    write_manifest: WriteManifest, socket_dir: Path, fast_lane: bool
) -> None:
    """A client that goes before its answer (a reset: a tab closed, a fetch aborted) is
    counted 499, nginx's "client closed request", for an envelope child and a pass-through
    one, by either server: not the child's 200, nor 0."""
    path = write_manifest(
        process_xml("svc", "/api/*"),
        process_xml("web", "/web/*", mode="passthrough", script="raw_http.py"),
    )  # fmt: skip
    async with running(path, socket_dir, fast_lane=fast_lane) as run:

        async def reset_before_answer(target: bytes, pool: Pool) -> None:
            _, writer = await connect(run.url)
            writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            assert await eventually(lambda: sum(i.in_flight for i in pool.instances) == 1)
            reset(writer)
            assert await eventually(lambda: pool.stats.requests == 1, 10)
            assert pool.stats.by_status == {499: 1}, (target, pool.stats.by_status)

        await reset_before_answer(b"/api/slow", run.pool("svc"))  # answered after 1 s
        await reset_before_answer(b"/web/late", run.pool("web"))  # after 0.5 s


@LANES
async def test_a_client_that_resets_during_its_upload_is_499_not_the_childs_502(
    write_manifest: WriteManifest, socket_dir: Path, fast_lane: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A client that resets its connection in the middle of an upload streaming to a
    pass-through child (a tab closed mid-upload) is counted 499 and said nowhere as the
    child's failure: aiohttp's side logged a 502 warning for it."""
    path = write_manifest(process_xml("web", "/web/*", mode="passthrough", script="raw_http.py"))
    async with running(path, socket_dir, fast_lane=fast_lane) as run:
        pool = run.pool("web")
        _, writer = await connect(run.url)
        writer.write(b"POST /web/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n")
        writer.write(b"a" * 2_000_000)  # over the 1 MiB held before the child is asked
        await writer.drain()
        assert await eventually(lambda: sum(i.in_flight for i in pool.instances) == 1)
        reset(writer)
        assert await eventually(lambda: pool.stats.requests == 1, 10)
        assert pool.stats.by_status == {499: 1}, pool.stats.by_status
    assert " 502: " not in caplog.text, caplog.text


def _counted(stats: ProcessStats, requests: int) -> bool:
    return stats.requests == requests


@LANES
async def test_a_request_whose_body_never_all_comes_is_answered_and_counted_alike(
    write_manifest: WriteManifest, socket_dir: Path, fast_lane: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A routed request whose body stops (408 at --client-body-timeout) or whose client
    leaves mid-body (499: a tab closed mid-upload, a reset or a close) is the route's: in
    its statistics and its log line, in the same words from either server, whether its
    body would have been held in memory or on disk; the lane had counted neither."""
    path = write_manifest(process_xml("svc", "/api/*"))
    async with running(path, socket_dir, fast_lane=fast_lane, client_body_timeout=0.5) as run:
        stats = run.pool("svc").stats
        for length in (100, 3 * 1024**2):  # a body the lane holds; one to wait on disk
            head = f"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
            answer = await exchange(run.url, head.encode() + b"abc", timeout=10)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            for leave in (reset, lambda writer: writer.close()):
                counted = stats.requests + 1
                _, writer = await connect(run.url)
                writer.write(head.encode() + b"abc")
                await writer.drain()
                assert await eventually(partial(all_read, writer))  # (then it leaves)
                leave(writer)
                assert await eventually(partial(_counted, stats, counted)), length
        assert stats.by_status == {408: 2, 499: 4}, stats.by_status
    said = [r.getMessage() for r in caplog.records if " 408: " in r.getMessage()]
    assert len(said) == 2, said
    assert all(
        re.fullmatch(r"svc: \[\w+\] 408: no byte of the request body came for 0.5s "
                     r"\(--client-body-timeout\)", line) for line in said
    ), said  # fmt: skip


@LANES
async def test_a_stop_does_not_wait_for_a_body_no_child_has_yet(
    write_manifest: WriteManifest, socket_dir: Path, fast_lane: bool
) -> None:
    """A client still sending a body no child has yet (one the lane holds, a chunked one and
    an envelope one to wait on disk) is not a request in flight for a stop to wait for
    (shutdown_timeout, 5 s here): its connection closes unanswered and it is counted 499,
    as the fast lane ended it. aiohttp's side waited the 5 s."""
    path = write_manifest(
        process_xml("svc", "/api/*"),
        process_xml("raw", "/raw/*", mode="passthrough", script="raw_http.py"),
    )
    heads = [
        "POST /raw/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n",
        "POST /raw/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n",
        f"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: {3 * 1024**2}\r\n",
    ]
    readers = []
    async with running(path, socket_dir, fast_lane=fast_lane) as run:
        counted = {"svc": run.pool("svc").stats, "raw": run.pool("raw").stats}
        for head in heads:
            reader, writer = await connect(run.url)
            writer.write(f"{head}Expect: 100-continue\r\n\r\n".encode())
            # Asked for its body: the proxy has the request, and reads its body.
            continued = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert continued == b"HTTP/1.1 100 Continue\r\n\r\n", continued
            writer.write(b"abc" if "chunked" not in head else b"3\r\nabc\r\n")
            readers.append((reader, writer))
        stopping = time.monotonic()
    stopped = time.monotonic() - stopping
    assert stopped < 3, stopped
    for reader, writer in readers:
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    assert (counted["raw"].requests, counted["svc"].requests) == (2, 1)


@LANES
async def test_a_client_that_stops_reading_is_cut_off_and_frees_its_slot(
    front: Path,
    socket_dir: Path,
    tmp_path: Path,
    fast_lane: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As nginx's send_timeout: an answer its client takes nothing of for --send-timeout,
    a relayed download (the static route's one slot held meanwhile) or a 16 MiB envelope
    answer held in memory, ends with its connection. One that takes it in bursts, each
    wait shorter than the timeout, gets it whole, however long the whole takes."""
    big = tmp_path / "site" / "public" / "big.bin"
    big.touch()
    os.truncate(big, 256 << 20)  # sparse: no disk used
    clients: list[asyncio.StreamWriter] = []

    async def reading(target: bytes) -> asyncio.StreamReader:
        reader, writer = await small_window(run.url, target)
        clients.append(writer)
        return reader

    async with running(front, socket_dir, fast_lane=fast_lane, send_timeout=2.0) as run:
        reader = await reading(b"/api/big")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert b"Content-Length: 16777216\r\n" in head, head
        # 4 MiB, then 0.6 s of taking nothing (a slow client, not a wait): 2.4 s in all,
        # past the timeout, none of the waits as long (and 1.4 s short of it: this test's
        # process, the proxy's too, stalls for a second at times under -n 16).
        for _ in range(4):
            await asyncio.wait_for(reader.readexactly(4 << 20), 10)
            await asyncio.sleep(0.6)
        assert "took nothing of its answer" not in caplog.text
        for target, size in ((b"/public/big.bin", 256 << 20), (b"/api/big", 16 << 20)):
            reader = await reading(target)
            started = time.monotonic()
            # Nothing read until the proxy has given up on this client...
            assert await eventually(lambda: "took nothing of its answer" in caplog.text, 10)
            assert time.monotonic() - started < 8
            # ...whose connection then ends short of the answer.
            received = 0
            with contextlib.suppress(ConnectionResetError):
                async with _compat.timeout(10):
                    while chunk := await reader.read(1 << 20):
                        received += len(chunk)
            assert 0 < received < size, (target, received)
            caplog.clear()
            async with run.http.get(run.url + "/public/hello.txt") as reply:  # its slot is free
                assert reply.status == 200
    for writer in clients:
        writer.close()


@LANES
async def test_an_idle_client_connection_closes_after_the_keepalive_timeout(
    front: Path, socket_dir: Path, fast_lane: bool
) -> None:
    """As nginx's keepalive_timeout (75 s; aiohttp's own is an hour): a kept-alive connection
    with no request for --keepalive-timeout closes, one that goes on asking stays open."""
    async with running(front, socket_dir, fast_lane=fast_lane, keepalive_timeout=1.0) as run:
        reader, writer = await connect(run.url)
        # 2.4 s of requests, past the timeout, never idle for as long:
        for wait in (0.6, 0.6, 0.6, 0.6, 0):
            writer.write(b"GET /api/again HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await asyncio.wait_for(read_answer(reader), 10)).startswith(b"HTTP/1.1 200")
            answered = time.monotonic()
            await asyncio.sleep(wait)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the proxy
        assert 1.0 <= time.monotonic() - answered < 5
        writer.close()


@LANES
async def test_a_websocket_handshake_to_an_envelope_process_is_answered_and_explained(
    front: Path, socket_dir: Path, fast_lane: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A pipe child has no WebSockets: the handshake is answered as a plain request (as a
    server without them answers it), and the log says why the browser's WebSocket failed,
    once."""
    handshake = (
        b"GET /api/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    async with running(front, socket_dir, fast_lane=fast_lane) as run:
        for _ in range(2):
            reader, writer = await connect(run.url)
            writer.write(handshake)
            assert (await asyncio.wait_for(read_answer(reader), 10)).startswith(b"HTTP/1.1 200")
            writer.close()
    said = [r.getMessage() for r in caplog.records if "WebSocket handshake" in r.getMessage()]
    assert said == [
        "api: a WebSocket handshake (GET /api/live) came to this process, whose mode (pipe) "
        "has no WebSockets: it was answered as a plain request; a WebSocket server goes "
        "behind <communication_mode>passthrough</communication_mode>"
    ], said


def _somaxconn() -> int:
    """The kernel's cap on a listener's backlog."""
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss(8), Linux's, tells a backlog")
@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
async def test_the_listener_holds_a_crowd_of_connections_until_accepted(
    front: Path, socket_dir: Path, tls: bool
) -> None:
    """A backlog of 2048 (or the kernel's cap), as uvicorn's: asyncio's 100 overflowed under
    1000 clients connecting at once, and the kernel's dropped handshakes held requests 1-3 s."""
    async with running(front, socket_dir, tls_self_signed=tls) as run:
        port = run.url.rsplit(":", 1)[1]
        ss = await asyncio.create_subprocess_exec(
            "ss", "-ltnH", f"sport = :{port}", stdout=asyncio.subprocess.PIPE
        )
        listed = (await asyncio.wait_for(ss.communicate(), 10))[0].decode()
    cap = _somaxconn()
    backlogs = [int(line.split()[2]) for line in listed.splitlines()]  # Send-Q, for a listener
    assert backlogs and all(b == min(2048, cap) for b in backlogs), listed


@pytest.mark.skipif(_compat.IS_WINDOWS, reason="POSIX's limit on open files")
@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
async def test_clients_past_the_open_files_limit_wait_and_it_is_said_once(
    write_manifest: WriteManifest, tls: bool
) -> None:
    """Out of descriptors (ulimit -n 64 here, clients holding connections open), a new
    client waits to be accepted, and the proxy says why in one line: asyncio's loop logged
    its "socket.accept() out of system resource" for each refused accept, thousands of
    lines a second (CPython gh-151615), and the HTTPS listener ten a second. Once the
    connections close, the next client is served."""
    import resource

    path = write_manifest(process_xml("svc", "/api/*"))
    limited = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))  # noqa: E731
    flags = ("--tls", "self-signed") if tls else ()
    said = "cannot accept new clients: out of open files"
    held: list[socket.socket] = []
    async with cli(str(path), "--bind", "127.0.0.1:0", "--event-loop", "asyncio", *flags,
                   preexec=limited) as run:  # fmt: skip
        url = (await run.expect(r"listening on (https?://\S+)")).group(1)
        await run.expect(r"svc: ready")
        port = int(url.rsplit(":", 1)[1])
        for _ in range(80):  # more than the proxy may open: the last wait in its backlog
            held.append(socket.create_connection(("127.0.0.1", port)))
        await run.expect(said)
        for sock in held:
            sock.close()
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/api/x", ssl=False) as reply:  # (waits its turn)
                assert reply.status == 200
        await run.expect(r"200 GET /api/x ")  # (its output read up to that request's end)
        # A second passed (the retry of the refused accept): unsaid again meanwhile.
        assert sum(said in line for line in run.lines) == 1, run.lines[-20:]


@LANES
@ON_SHARED_LOOP
async def test_a_body_known_too_large_is_refused_before_100_continue(
    shared: SharedProxies, site: Path, fast_lane: bool
) -> None:
    run = await shared.get(*front_processes(site), fast_lane=fast_lane)
    for path in ("/api/x", "/public/hello.txt"):
        raw = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n"
               "Expect: 100-continue\r\n\r\n").encode()  # fmt: skip
        reader, writer = await connect(run.url)
        writer.write(raw)
        answer = await read_answer(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 413 "), answer
        assert b"Connection: close" in answer
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, not lingering
    # Within the limit, the client is asked for its body and the child gets it.
    reader, writer = await connect(run.url)
    writer.write(b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                 b"Expect: 100-continue\r\n\r\n")  # fmt: skip
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == (
        b"HTTP/1.1 100 Continue\r\n\r\n"
    )
    writer.write(b"abc")
    answer = await read_answer(reader)
    writer.close()
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["body"] == "YWJj"


@LANES
@ON_SHARED_LOOP
async def test_an_unusable_request_id_is_replaced_everywhere(
    shared: SharedProxies, site: Path, fast_lane: bool
) -> None:
    run = await shared.get(*front_processes(site), fast_lane=fast_lane)
    for given in ("a b", "x" * 201):
        async with run.http.get(run.url + "/api/x", headers={"X-Request-Id": given}) as reply:
            seen = await reply.json()
            used = reply.headers["X-Request-Id"]
        assert used != given and seen["request_id"] == used
        ids = [v for k, v in seen["headers"] if k.lower() == "x-request-id"]
        assert ids == [used]


def test_routing_table() -> None:
    """Pure cases of router.resolve: what each reading of a path gives."""
    router = Router([("/public/*", "P"), ("/api/*", "A"), ("/index.html", "I")])
    cases = {
        "/public/a/./b/": ("/public/a/b/", "P"),
        "/public//a": ("/public/a", "P"),
        "/public/a/..": ("/public/", "P"),
        "/%70ublic/a": ("/public/a", "P"),
        "/api?x=/public/..": ("/api", "A"),
        "http://h:1/api/v?x": ("/api/v", "A"),
        "HTTPS://h/api": ("/api", "A"),
        "/public/../api/x": ("/api/x", "A"),
        "/public/..": ("/", None),
        "/public/../index.html": ("/index.html", "I"),
        "/apiary": ("/apiary", None),
        "/a%2fb": ("/a/b", None),  # nobody takes it, however it is read
        "/public/a#b": ("/public/a", "P"),  # (a `#` read as the path's end or kept in it)
        "/public/sub#/../a": ("/public/sub", "P"),
        "/public/100%25": ("/public/100%", "P"),  # an escaped escape that stays inside
        "/public/%25zz": ("/public/%zz", "P"),
        "/public/a%252fb": ("/public/a%2fb", "P"),
    }
    for target, expected in cases.items():
        assert resolve(target, router.match) == expected, target
    for target in ("/..", "/a/../..", "/%zz", "/%0", "/a%00", "*", "h:1", "ftp://h/x",
                   "/public/a%2fb/../../api", "/public/..%5capi", "/public/..;/api",
                   "/public#/../api", "/public/%252e%252e/api", "/public/x%252f..%252f..%252fapi",
                   ):  # fmt: skip
        with pytest.raises(BadTarget):
            resolve(target, router.match)


@LANES
@ON_SHARED_LOOP
async def test_a_path_whose_escapes_are_not_utf8_is_routed_and_refused_in_json(
    shared: SharedProxies, site: Path, fast_lane: bool
) -> None:
    """`%E9` is Latin-1's é: decoded, not UTF-8. It is routed as any path is, and where no
    route matches, the 404 quotes it with U+FFFD (it made the error body fail: no answer)."""
    run = await shared.get(*front_processes(site), fast_lane=fast_lane)
    answer = await exchange(
        run.url, b"GET /api/caf%E9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["uri"] == "/api/caf%E9"
    for target in (b"/caf%E9", b"/caf%C3%A9%E9/x"):
        raw = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        answer = await exchange(run.url, raw)
        assert answer.startswith(b"HTTP/1.1 404 "), answer
        error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
        assert error.startswith("no route matches /caf") and "\ufffd" in error, error
    # The dashboard's own errors, which quote what was asked for, too.
    async with run.http.get(run.url + "/_/requests/%E9") as reply:
        assert reply.status == 404 and "\ufffd" in (await reply.json())["error"]


@LANES
@ON_SHARED_LOOP
async def test_a_targets_raw_utf8_reaches_the_child_percent_encoded(
    shared: SharedProxies, site: Path, fast_lane: bool
) -> None:
    """`curl 'http://localhost:3000/api/search?q=café'` sends the query's UTF-8 raw (curl
    8 encodes the path only); nginx takes it, llhttp refused it with a 400. The child gets
    the target as a browser would send it; header values keep their bytes."""
    run = await shared.get(*front_processes(site), fast_lane=fast_lane)
    raw = "GET /api/caf\u00e9?q=\u00fc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = await exchange(run.url, raw.encode())
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["uri"] == "/api/caf%C3%A9?q=%C3%BC"
    if shutil.which("curl"):
        curl = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--max-time", "10", f"{run.url}/api/search?q=caf\u00e9",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await curl.communicate()
        assert json.loads(out)["uri"] == "/api/search?q=caf%C3%A9", out


@LANES
@ON_SHARED_LOOP
async def test_a_client_that_leaves_before_its_answer_is_not_a_failure_of_ours(
    shared: SharedProxies, site: Path, fast_lane: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that sends its request and closes its side (`nc -N`, a script's socket)
    gets no answer, as from nginx (its 499): nothing is logged as an error, the rest go on."""
    expecting = b"Host: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
    leaving = [
        b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/x HTTP/1.1\r\n" + expecting,
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
        b"POST /public/x HTTP/1.1\r\n" + expecting,
    ]
    run = await shared.get(*front_processes(site), fast_lane=fast_lane)
    for raw in leaving:
        reader, writer = await connect(run.url)
        writer.write(raw)
        writer.write_eof()
        await asyncio.wait_for(reader.read(), 5)  # the proxy ends the connection
        writer.close()
    async with run.http.get(run.url + "/api/x") as reply:
        assert reply.status == 200
    failures = [r.getMessage() for r in caplog.records if r.levelno >= 40]
    assert not failures, failures


@LANES
@ON_SHARED_LOOP
async def test_pipelined_requests_cut_anywhere_are_each_answered_in_order(
    shared: SharedProxies, site: Path, fast_lane: bool
) -> None:
    """Requests sent back to back in two reads, cut at any byte near a message's end (a
    body's, a head's), are each answered, in order, by either server (and by aiohttp's side
    after the fast lane handed it the connection at /_/health). aiohttp's side once took
    what followed a body in the same read for a head's start: a head cut in its method
    ("HE" | "AD ...") was refused as HEGET, one cut before its last CRLF waited for ever,
    one cut in its target ("GET /" | "x HTTP/1.1") was judged an HTTP/0.9 request; and a
    head's CRLF CRLF cut ("\\r\\n\\r" | "\\nBAN ...") hid the next head's start (BAN refused)."""
    requests = [
        (b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", b"200"),
        (b"HEAD /api/z HTTP/1.1\r\nHost: x\r\n\r\n", b"200"),
        (b"BAN /api/y HTTP/1.1\r\nHost: x\r\n\r\n", b"200"),  # a method llhttp does not know
        (
            b"POST /api/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            b"200",
        ),
        (b"BAN /api/y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"200"),
    ]
    health = (b"GET /_/health HTTP/1.1\r\nHost: x\r\n\r\n", b"200")
    run = await shared.get(*front_processes(site), fast_lane=fast_lane)
    for these in (requests, [health, *requests]):
        sent = b"".join(raw for raw, _ in these)
        # Where it matters: a few bytes either side of each message's end (a body's, a
        # head's CRLF CRLF), which is the next one's method.
        ends = [m.end() for m in re.finditer(rb"\r\n\r\n(?!\d)|hello", sent)]
        cuts = sorted({at for end in ends for at in range(end - 3, end + 4)} - {len(sent)})
        whole = [sum(len(raw) for raw, _ in these[: n + 1]) for n in range(len(these))]
        for cut in cuts:
            reader, writer = await connect(run.url)
            # The first part, then the answers to what it held whole: it was read (in
            # one read, written in one piece) before the rest is sent.
            writer.write(sent[:cut])
            first = sum(1 for end in whole if end <= cut)
            statuses = await _statuses(reader, these[:first])
            writer.write(sent[cut:])
            statuses += await _statuses(reader, these[first:])
            writer.close()
            assert statuses == [status for _, status in these], (cut, sent[:cut][-20:])

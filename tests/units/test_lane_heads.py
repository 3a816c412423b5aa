"""Request heads as the fast lane reads and judges them (lane/http1.py, head_rules.py,
lane/message.py), and aiohttp's parser held to the same (aio/parser.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local_lambdas import (
    forwarding,
    head_rules,
)
from local_lambdas.aio import parser as aioparser
from local_lambdas.config import Fate
from local_lambdas.lane import http1, relay_request
from local_lambdas.lane import message as lane_message

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

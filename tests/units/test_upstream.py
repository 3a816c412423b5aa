"""A child's HTTP connection (transports/upstream.py, exchange.py, answer_head.py): an answer's
head read, kept connections and how long they may idle."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable

import pytest

from local_lambdas._compat import timeout
from local_lambdas.errors import NotConnected
from local_lambdas.transports import answer_head, exchange, upstream
from tests.helpers import eventually


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

"""The heads of the answers the proxy writes (lane/answer_heads.py) and a relayed answer's
writes (lane/relay.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp.http import SERVER_SOFTWARE

from local_lambdas.lane import answer_heads, relay

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

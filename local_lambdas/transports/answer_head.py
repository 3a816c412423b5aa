"""What a child's answer head says: what makes one the proxy refuses (`head_problem`, and
`not_http` for one llhttp cannot read), and,
read from its bytes without a parser, a header's value (`raw_header`), the body length its
one Content-Length gives (`content_length`), whether its body ends with the connection
(`close_delimited`), the head a child repeats from answer to answer (`kept_head`, for
transports/exchange.py's answers taken whole), and how long the connection may then wait
idle for the next request (`idle_limit`)."""

from __future__ import annotations

from typing import Final

from local_lambdas.envelope import MAX_HEAD
from local_lambdas.lane.http1 import NO_BODY

# How long a kept connection to a child may wait idle for the next request when its answers
# do not say how long the child keeps one: under the shortest common server's (gunicorn's
# 2 s; uvicorn, hypercorn and Node.js keep one 5 s).
IDLE_LIMIT: Final = 1.5


def head_problem(status: int, size: int, coding: str) -> str | None:
    """Why a final answer's head (`status`; `size`, its headers' bytes; `coding`, its
    Transfer-Encoding values joined, each after a comma) cannot be relayed, or None.
    llhttp reads any three digits as a status, 000 to 099 too; a body coded otherwise than
    chunked alone would go on undecoded and unmarked, read to the connection's end or, as
    `gzip, chunked`, dechunked but still gzip's (nginx's 502 too)."""
    if status < 100:
        return f"the child's answer has status {status:03d}"
    if size > MAX_HEAD:
        return f"the child's answer head is over {MAX_HEAD // 1024} KiB"
    if coding and coding.strip(", \t").lower() != "chunked":
        return (f"the child's answer has Transfer-Encoding {coding.strip(',')!r}: send it "
                "chunked, or with a Content-Length")  # fmt: skip
    return None


# HTTP/2 frame types a server sends first: SETTINGS, then GOAWAY for what it cannot read.
_HTTP2_FIRST: Final = (0x04, 0x07)


def http2_frame(first: bytes) -> bool:
    """Whether an answer begins with the frame an HTTP/2 server sends first."""
    return len(first) >= 9 and first[3] in _HTTP2_FIRST and first[5:9] == b"\0\0\0\0"


def not_http(first: bytes, parser_said: str) -> str:
    """Why an answer's head that llhttp refuses is not relayed, in words to act on: an
    HTTP/2 frame (an HTTP/2-only server), bytes that are no status line at all, else what
    llhttp said. `first`: the answer's first bytes."""
    if http2_frame(first):
        return (
            "the child answered in HTTP/2, as an HTTP/2-only server does (gRPC, Node.js's "
            "http2.createServer): local-lambdas speaks HTTP/1.1 to children; have it serve "
            "HTTP/1.1 too (Node.js: allowHTTP1)"
        )
    if not first.startswith(b"HTTP/"[: len(first)]):
        return f"the child's answer is not HTTP: it begins {first[:40]!r}"
    return f"the child's answer is not valid HTTP: {parser_said}"


def kept_head(first: bytes, status: int, keep_alive: bool) -> tuple[bytes, int]:
    """The head at the start of `first`, an answer's first read, when it came whole there
    with `status` (not after a 1xx), and the size of an answer with that head and the body
    its Content-Length gives on a kept connection (-1 if none: no length, no body by its
    status, or the connection ends); (b"", -1) when the head is not whole there."""
    end = first.find(b"\r\n\r\n") + 4
    if end <= 4 or first[9:12] != b"%d" % status:
        return b"", -1
    head = first[:end]
    length = content_length(head) if status not in NO_BODY else -1
    return head, end + length if length >= 0 and keep_alive else -1


def idle_limit(first: bytes) -> float:
    """How long the connection an answer came on (`first`, its first bytes) may wait idle
    and still carry the next request: a second less than the child says it keeps one
    (`Keep-Alive: timeout=N`, as Node.js and Apache say), else IDLE_LIMIT. A server closes
    a connection left idle that long; a request sent on it just then meets the close
    unanswered, and one that is not idempotent (a POST) cannot be sent again: a 502 (nginx's
    rule, and its 502s behind Node.js). So the proxy lets go of the connection first."""
    if b"\nkeep-alive" not in first.lower():  # (most answers: no such header to read)
        return IDLE_LIMIT
    value = raw_header(first, b"keep-alive")
    for param in (value or "").split(","):
        name, _, seconds = param.partition("=")
        seconds = seconds.strip()
        if name.strip().lower() == "timeout" and seconds.isdecimal() and len(seconds) < 10:
            return max(int(seconds) - 1.0, 0.0)
    return IDLE_LIMIT


def content_length(head: bytes) -> int:
    """The body's length that a head's one Content-Length gives; -1 when it has none, more
    than one, one that is not plain digits, or a Transfer-Encoding."""
    lower = head.lower()
    at = lower.find(b"\ncontent-length:")
    if at < 0 or lower.find(b"\ncontent-length:", at + 16) >= 0:
        return -1
    if lower.find(b"\ntransfer-encoding:") >= 0:
        return -1
    value = lower[at + 16 : lower.find(b"\n", at + 16)].strip()
    return int(value) if value.isdigit() else -1


def close_delimited(first: bytes) -> bool:
    """Whether the answer whose first bytes are `first` has a body that ends with the
    connection (no length, not chunked); not when its head did not come whole in its first
    read (seen broken, then)."""
    return (
        b"\r\n\r\n" in first or b"\n\n" in first
    ) and raw_header(first, b"content-length") is None and raw_header(
        first, b"transfer-encoding"
    ) is None  # fmt: skip


def raw_header(data: bytes, name: bytes) -> str | None:
    """The value of the first header `name` (lower-case) in the head at the start of
    `data`, an answer's raw bytes; None if it has none (in the part of its head there)."""
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    for line in head.split(b"\n")[1:]:
        field, colon, value = line.partition(b":")
        if colon and field.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None

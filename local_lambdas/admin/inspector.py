"""The request inspector's memory: the last LIMIT requests, each with its headers and the
first BODY bytes of each body, for the dashboard (dashboard.py) and /_/requests.

Recording is on the hot path, so it keeps references and does nothing else: headers are
redacted, bodies decoded and JSON made only when somebody looks. At most LIMIT x 2 x BODY
bytes of bodies (25 MiB) are held. The values of SECRET headers are never shown nor
replayed unless the proxy runs with --inspect-secrets. Compiled with the hot path
(setup.py): recording, interpreted, was 4% of a keep-alive request's instructions.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

from local_lambdas.envelope import valid_text
from local_lambdas.forwarding import as_utf8
from local_lambdas.stats import thousandths

LIMIT: Final = 200  # requests kept
BODY: Final = 64 * 1024  # bytes kept of each body
SECRET: Final = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
HIDDEN: Final = "(hidden: --inspect-secrets shows it)"
_now: Final = time.time

Headers = Iterable[tuple[str, str]]  # a list, or a view of a response's headers
Kept = tuple[Headers, "bytes | None"]  # headers, and a body (None: not kept)


class Exchange:
    """One request and its answer, as the client and the proxy saw them: a body is None
    when it was not kept (a streamed upload, a WebSocket), its first BODY bytes when it was
    longer (its size says how long)."""

    def __init__(
        self, id: str, time: float, method: str, target: str, process: str | None,
        status: int, ms: float, request_headers: Headers, request_body: bytes | None,
        request_size: int, response_headers: Headers, response_body: bytes | None,
        response_size: int,
    ) -> None:  # fmt: skip
        self.id = id
        self.time = time  # when it ended (Unix time)
        self.method = method
        self.target = target
        self.process = process
        self.status = status
        self.ms = ms
        self.request_headers = request_headers
        self.request_body = request_body
        self.request_size = request_size
        self.response_headers = response_headers
        self.response_body = response_body
        self.response_size = response_size

    def summary(self) -> dict[str, object]:
        return {"id": self.id, "time": self.time, "method": self.method,
                "target": self.target, "process": self.process, "status": self.status,
                "ms": thousandths(self.ms)}  # fmt: skip


class Inspector:
    """The last LIMIT exchanges, newest last; `on_record` hears of each (the live page)."""

    def __init__(
        self, *, secrets: bool = False, on_record: Callable[[Exchange], None] | None = None
    ) -> None:
        self.secrets = secrets
        self.on_record = on_record  # set only while someone listens (the dashboard's pages)
        # What record() was given, as a tuple: an Exchange is made only when looked at.
        self._kept: deque[_Record] = deque(maxlen=LIMIT)

    def record(
        self, request_id: str, method: str, target: str, process: str | None, status: int,
        seconds: float, request: Kept, response: Kept,
    ) -> None:  # fmt: skip
        sent, sent_body, sent_size = _kept(request)
        answered, answer_body, answer_size = _kept(response)
        record = (request_id, _now(), method, target, process, status, seconds, sent, sent_body,
                  sent_size, answered, answer_body, answer_size)  # fmt: skip
        self._kept.append(record)
        if self.on_record is not None:
            self.on_record(_exchange(record))

    def get(self, request_id: str) -> Exchange | None:
        """The newest exchange with that id (a client may send its own id twice)."""
        return next((_exchange(r) for r in reversed(self._kept) if r[0] == request_id), None)

    def newest_first(self) -> list[Exchange]:
        return [_exchange(record) for record in reversed(self._kept)]

    def headers(self, headers: Headers) -> list[tuple[str, str]]:
        """`headers` as shown: secret values hidden unless --inspect-secrets; bytes that are
        not UTF-8 (kept as lone surrogates, which JSON cannot carry) as U+FFFD."""
        secret = SECRET if not self.secrets else frozenset()
        return [(k, HIDDEN if k.lower() in secret else valid_text(v)) for k, v in headers]

    def detail(self, exchange: Exchange) -> dict[str, object]:
        """Everything the page shows of one exchange."""
        return exchange.summary() | {
            "request": {
                "headers": self.headers(exchange.request_headers),
                "body": render(
                    exchange.request_body, exchange.request_size, exchange.request_headers
                ),
            },
            "response": {
                "headers": self.headers(_with_id(exchange.response_headers, exchange.id)),
                "body": render(
                    exchange.response_body, exchange.response_size, exchange.response_headers
                ),
            },
        }

    def replayable(self, exchange: Exchange) -> str | None:
        """Why `exchange` cannot be sent again as it was; None when it can."""
        if exchange.request_body is None:
            return "its body was not kept (over 1 MiB: it streamed to the child, or waited on disk)"
        if exchange.request_size > len(exchange.request_body):
            return f"its body was larger than the {BODY // 1024} KiB the inspector keeps"
        return None

    def replay_headers(self, exchange: Exchange) -> list[tuple[str, str]]:
        """The headers to send again: not the framing, the id or the proxy's own, and secret
        ones only with --inspect-secrets."""
        dropped = _NOT_REPLAYED if self.secrets else _NOT_REPLAYED | SECRET
        return [(k, as_utf8(v)) for k, v in exchange.request_headers if k.lower() not in dropped]


# What record() keeps: id, time, method, target, process, status, seconds, then the
# request's headers, body (kept) and size, and the same of the answer.
_Record = tuple[str, float, str, str, "str | None", int, float,
                Headers, "bytes | None", int, Headers, "bytes | None", int]  # fmt: skip


def _kept(side: Kept) -> tuple[Headers, bytes | None, int]:
    """Headers, the body as kept (its first BODY bytes), and its size."""
    headers, body = side
    if body is None:
        return headers, None, 0
    size = len(body)
    return headers, (body[:BODY] if size > BODY else body), size


def _exchange(record: _Record) -> Exchange:
    (request_id, when, method, target, process, status, seconds, sent, sent_body, sent_size,
     answered, answer_body, answer_size) = record  # fmt: skip
    return Exchange(
        request_id, when, method, target, process, status, seconds * 1000, sent, sent_body,
        sent_size, answered, answer_body, answer_size,
    )  # fmt: skip


def _with_id(headers: Headers, request_id: str) -> list[tuple[str, str]]:
    """An answer's headers with the X-Request-Id every answer carries (the fast lane adds it
    as it writes the head, after the answer is recorded)."""
    headers = list(headers)
    if any(k.lower() == "x-request-id" for k, _ in headers):
        return headers
    return [*headers, ("X-Request-Id", request_id)]


_NOT_REPLAYED = frozenset({
    "content-length", "transfer-encoding", "connection", "keep-alive", "x-request-id",
    "expect", "upgrade", "te", "trailer", "host",
})  # fmt: skip


def render(body: bytes | None, size: int, headers: Headers) -> dict[str, object]:
    """A body as the page shows it: JSON pretty-printed, text as text, anything else as a
    hex dump; what was cut (`truncated`) or never kept (`kept: false`) is said."""
    if body is None:
        return {"kept": False, "size": None, "kind": "not kept", "text": ""}
    shown: dict[str, object] = {"kept": True, "size": size, "truncated": size > len(body)}
    if not body:
        return shown | {"kind": "empty", "text": ""}
    typed = next((v.lower() for k, v in headers if k.lower() == "content-type"), "")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        if size > len(body):  # cut in the middle of a character, perhaps
            try:
                text = body[:-3].decode("utf-8") + body[-3:].decode("utf-8", "ignore")
            except UnicodeDecodeError:
                return shown | {"kind": "binary", "text": hexdump(body)}
        else:
            return shown | {"kind": "binary", "text": hexdump(body)}
    if "json" in typed or text.lstrip()[:1] in ("{", "["):
        try:
            return shown | {"kind": "json", "text": json.dumps(json.loads(text), indent=2)}
        except ValueError:
            pass
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text[:4096]):
        return shown | {"kind": "binary", "text": hexdump(body)}
    return shown | {"kind": "text", "text": text}


def hexdump(data: bytes) -> str:
    """Offset, 16 bytes in hex, and those bytes as ASCII, a line each."""
    lines = []
    for at in range(0, len(data), 16):
        row = data[at : at + 16]
        ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{at:08x}  {row.hex(' '):<47}  {ascii_}")
    return "\n".join(lines)

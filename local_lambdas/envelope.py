"""The JSON envelope children speak in pipe and `http` modes (docs/protocol.md).

Request:  {"method", "uri", "headers": [[name, value], ...], "body": base64, "request_id", ...}
Response: {"status": 200, "headers": {...} or [[name, value], ...], "body": base64}

Here: the request object as a child gets it, the response object once checked, and the
proxy's own error body. Whatever a child sends is checked strictly, before any of it reaches
a client, by envelope_answer.py.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import pybase64

# Read on every request from compiled code: C-level constants rather than a module's
# attribute looked up twice (the module in globals, then the name in it) each time.
_dumps: Final = orjson.dumps
_NEWLINE: Final = orjson.OPT_APPEND_NEWLINE
_b64encode: Final = pybase64.b64encode

# Headers that describe one connection, not the message (RFC 9110 7.6.1's list): never
# passed on between the client and a child, in either direction. (Trailer, which announces
# trailer fields, is end-to-end: RFC 9110 6.6.2; the fields themselves do not cross, a
# relayed body being framed anew, as nginx frames it. So are Proxy-Authenticate and
# Proxy-Authorization, hop-by-hop in RFC 2616 only: nginx passes both, and a child that
# answers 407 gets its credentials.)
HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade"}
)
TOKEN_HEADER: Final = "X-Local-Lambdas-Token"  # the run's secret, on requests to HTTP children
SHOWN_BYTES: Final = 200  # how much of an invalid answer the log shows
# An answer whose head is larger is 502, in every mode, as nginx answers 'upstream sent too
# big header' (past 4-8 KiB there; roomier here, for large cookies and tokens): clients
# refuse such heads (curl past 100 KiB, browsers past 256 KiB, Node.js past 16 KiB).
MAX_HEAD: Final = 64 * 1024


class Request:
    """One client request as the child will see it. (Plain classes, here and below: a
    compiled dataclass's __init__ is still interpreted, for every request.)"""

    __slots__ = ("body", "client", "headers", "method", "repeats", "request_id", "token", "uri")

    def __init__(
        self, method: str, uri: str, headers: list[tuple[str, str]], body: bytes,
        request_id: str, client: str | None = None, token: str = "",
        repeats: Repeats | None = None,
    ) -> None:  # fmt: skip
        self.method = method
        self.uri = uri  # path and query string, as the client sent them
        self.headers = headers  # arrival order, repeats kept
        self.body = body
        self.request_id = request_id
        self.client = client
        self.token = token  # the run's secret (LOCAL_LAMBDAS_TOKEN): children can tell the proxy
        self.repeats = repeats  # its connection's, where its head repeats the last one

    def encode(self, *, line: bool = False) -> bytes:
        """The compact JSON request object of docs/protocol.md; with `line`, ended by a newline (the
        keep-alive framing), written by orjson rather than copied on. A request that repeats
        its connection's last one but for its id, which the proxy added as the last header,
        is the last one's JSON around its id (Repeats)."""
        repeats = self.repeats
        headers = self.headers
        if (
            repeats is not None and headers and not self.body
            and headers[-1][1] == self.request_id
        ):  # fmt: skip
            repeated = repeats.encoded(self, line)
            if repeated is not None:
                return repeated
        return self._dumps(line)

    def _dumps(self, line: bool) -> bytes:
        option = _NEWLINE if line else 0
        data = {
            "method": self.method,
            "uri": self.uri,
            "headers": self.headers,
            "body": _b64encode(self.body).decode("ascii") if self.body else "",
            "request_id": self.request_id,
            "client": self.client,
            "token": self.token,
        }
        try:
            return _dumps(data, option=option)
        except TypeError:
            # Bytes that are not UTF-8 in the request line or a header reach us as lone
            # surrogates, which JSON cannot carry: they become U+FFFD.
            data["uri"] = valid_text(self.uri)
            data["headers"] = [(valid_text(k), valid_text(v)) for k, v in self.headers]
            return orjson.dumps(data, option=option)


class Repeats:
    """One client connection's last request encoded but for its id (the last header's value
    and `request_id`), and, once such a request came again, its JSON cut where the id goes:
    a client repeating its request (a poller, a smoke test, a benchmark) has it written by
    a join rather than by orjson. Made from a request whose id is a mark that nothing else
    in it contains, so the cut JSON is orjson's byte for byte around any id that JSON writes
    as it is (none but a client's own has a quote or a backslash)."""

    __slots__ = ("client", "headers", "line", "method", "name", "parts", "token", "uri")

    def __init__(self) -> None:
        self.method = self.uri = self.token = ""
        self.client: str | None = None
        self.line = False
        self.headers: list[tuple[str, str]] = []  # but the last, the id's
        self.name = ""  # the last header's
        self.parts: list[bytes] | None = None  # the JSON around the id's two places, once made

    def encoded(self, request: Request, line: bool) -> bytes | None:
        """The JSON of `request` (whose last header's value is its id) when the last one
        encoded was the same but for its id; None to encode it anew."""
        headers = request.headers
        name = headers[-1][0]
        if (
            request.uri != self.uri or request.method != self.method
            or not _same_before_last(headers, self.headers) or name != self.name
            or request.client != self.client or request.token != self.token
            or line != self.line
        ):  # fmt: skip
            before = headers[:-1]
            self.method, self.uri, self.headers, self.name = (
                request.method, request.uri, before, name
            )  # fmt: skip
            self.client, self.token, self.line = request.client, request.token, line
            self.parts = None
            return None
        parts = self.parts
        if parts is None:
            marked = Request(
                request.method, request.uri, [*self.headers, (name, _MARK)], b"", _MARK,
                request.client, request.token,
            )  # fmt: skip
            parts = self.parts = marked._dumps(line).split(_MARK.encode())
        rid = request.request_id
        # (An id that JSON writes escaped, or the mark elsewhere in the request: orjson's.)
        if len(parts) != 3 or not rid.isascii():
            return None
        id_bytes = rid.encode()
        # (Ours are hex digits, told by one bytes.isalnum: str.isprintable costs 400
        # instructions on them.)
        if not id_bytes.isalnum() and not (
            rid.isprintable() and '"' not in rid and "\\" not in rid
        ):
            return None
        return b"".join((parts[0], id_bytes, parts[1], id_bytes, parts[2]))


def _same_before_last(headers: list[Any], kept: list[Any]) -> bool:
    """Whether `headers` but the last are `kept`'s, the same objects, as a connection's
    repeated head's are (lane.requests.Requests): comparing the strings in them costs a
    third of the JSON they spare, and all of it where one of them changes. (Lists of Any:
    compiled code reads a typed tuple out of a list as a new one.)"""
    return len(headers) - 1 == len(kept) and all(headers[at] is kept[at] for at in range(len(kept)))


_MARK: Final = "\ue000"  # a private-use character: the id's place in Repeats' JSON


class Response:
    """A child's answer, validated: safe to hand to a client as it is."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.headers!r}, <{len(self.body)} bytes>)"


def valid_text(text: str) -> str:
    """`text` read with surrogateescape, its bytes that are not UTF-8 as U+FFFD (for JSON)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def shown(raw: bytes) -> str:
    """A short, printable copy of what a child sent, for the log."""
    text = repr(raw[:SHOWN_BYTES])
    return text + (f" ... ({len(raw)} bytes)" if len(raw) > SHOWN_BYTES else "")


def error_body(message: str, request_id: str, process: str | None = None) -> bytes:
    """The proxy's error body (docs/protocol.md, "Errors"). A message that quotes a path
    whose escapes are not UTF-8 (`/caf%E9`) shows those bytes as U+FFFD."""
    body = {"error": message, "process": process, "request_id": request_id}
    try:
        return orjson.dumps(body)
    except TypeError:  # a lone surrogate, from surrogateescape
        body["error"] = valid_text(message)
        return orjson.dumps(body)

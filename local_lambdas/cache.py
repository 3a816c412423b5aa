"""The opt-in response cache (`<cache>SIZE</cache>`, or ENABLE_CACHE=1 as the earlier tool had).

A shared cache in the sense of RFC 9111, kept simple and safe:
- only GET answers are stored, and they serve GET and HEAD; keyed by the full URI (path and
  query) and by the request headers the answer's `Vary` names;
- only when the child says so: `Cache-Control: max-age=N` (or `s-maxage=N`, which wins), and
  never with `no-store`, `no-cache` or `private`; never `Vary: *`; never an error (status 400
  or more); never for a request with `Authorization`, nor a `Set-Cookie` answer;
- a client's `Cache-Control: no-cache` or `no-store` skips the lookup, and its `max-age=N`
  takes no stored answer older than N seconds (the answer may still refresh the entry);
- a client that holds the stored answer already (its `If-None-Match` names the answer's
  `ETag`, or, without one, its `If-Modified-Since` is no earlier than `Last-Modified`) is
  answered 304, as nginx answers from its cache (RFC 9110 13.1.2, 13.1.3, 15.4.5);
- an unsafe method's answer below 400 (a POST, PUT, DELETE or PATCH that changed what the
  URI names) drops what is stored for the URI and for the paths its `Location` and
  `Content-Location` give, as RFC 9111 4.4 asks: the next GET asks the child;
- bounded in bytes (and, with ENABLE_CACHE=N, in entries); the least recently used go first.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from local_lambdas.envelope import Request, Response
from local_lambdas.router import authority, origin_form

_DIRECTIVE = re.compile(r"([a-zA-Z-]+)\s*(?:=\s*\"?(\d+)\"?)?")
_NEVER = frozenset({"no-store", "no-cache", "private"})
_CACHEABLE_STATUS = frozenset({200, 203, 204, 300, 301, 308})
_SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')
# What a 304 keeps of the 200 it stands for (RFC 9110 15.4.5).
_NOT_MODIFIED_KEEPS = frozenset(
    {"cache-control", "content-location", "date", "etag", "expires", "last-modified", "vary"}
)


@dataclass(frozen=True)
class _Entry:
    response: Response
    vary: tuple[str, ...]  # lower-case header names
    varied: tuple[str | None, ...]  # the request's values of those headers
    stored: float
    expires: float
    size: int


class Cache:
    def __init__(
        self,
        max_bytes: int,
        *,
        max_entries: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._size = 0

    def lookup(self, request: Request) -> Response | None:
        """A fresh stored answer for this GET or HEAD, with its `Age`; None on a miss."""
        if request.method not in ("GET", "HEAD"):
            return None
        oldest = _oldest_taken(request)
        if oldest is None:
            return None
        entry = self._entries.get(request.uri)
        now = self._clock()
        if (
            entry is None or now >= entry.expires or now - entry.stored > oldest
            or _values(request, entry.vary) != entry.varied
        ):  # fmt: skip
            self.misses += 1
            return None
        self._entries.move_to_end(request.uri)
        self.hits += 1
        age = str(int(now - entry.stored))
        answer = entry.response
        if _not_modified(request, answer):
            kept = [(k, v) for k, v in answer.headers if k.lower() in _NOT_MODIFIED_KEEPS]
            return Response(304, [*kept, ("Age", age)], b"")
        return Response(answer.status, [*answer.headers, ("Age", age)], answer.body)

    def store(self, request: Request, response: Response) -> None:
        """Keeps `response` when it may serve `request`'s URI again; after an unsafe
        method's success, drops what it changed."""
        if request.method not in _SAFE:
            if response.status < 400:
                self._invalidate(request, response)
            return
        if request.method != "GET" or _header(request.headers, "authorization") is not None:
            return
        lifetime = _lifetime(response)
        if lifetime is None:
            return
        vary = tuple(
            name.strip().lower()
            for value in _all(response.headers, "vary")
            for name in value.split(",")
            if name.strip()
        )
        if "*" in vary:
            return
        size = len(response.body) + sum(len(k) + len(v) for k, v in response.headers) + 64
        if size > self.max_bytes:
            return
        self._drop(request.uri)
        now = self._clock()
        self._entries[request.uri] = _Entry(
            response, vary, _values(request, vary), now, now + lifetime, size
        )
        self._size += size
        while self._size > self.max_bytes or (
            self.max_entries is not None and len(self._entries) > self.max_entries
        ):
            self._drop(next(iter(self._entries)))

    @property
    def size(self) -> int:
        """Bytes held now (bodies, headers, and a little for each entry)."""
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    def _invalidate(self, request: Request, response: Response) -> None:
        self._drop(request.uri)
        host = _header(request.headers, "host")
        for name in ("location", "content-location"):
            for value in _all(response.headers, name):
                uri = _local_uri(value.strip(), host)
                if uri is not None:
                    self._drop(uri)

    def _drop(self, uri: str) -> None:
        entry = self._entries.pop(uri, None)
        if entry is not None:
            self._size -= entry.size


def _local_uri(value: str, host: str | None) -> str | None:
    """A `Location`'s path and query where it names this proxy's origin: a path (`/a?b`), or
    an absolute URL with the request's host; None for another origin or a relative one."""
    if value.startswith("/") and not value.startswith("//"):
        return value.partition("#")[0]
    if host is None or not value.lower().startswith(("http://", "https://")):
        return None
    if authority(value).lower() != host.lower():
        return None
    return origin_form(value).partition("#")[0]


def _not_modified(request: Request, answer: Response) -> bool:
    """Whether the client holds `answer` already: its `If-None-Match` names the answer's
    `ETag` (compared weakly, `*` naming any), or, sent without one, its `If-Modified-Since`
    is no earlier than the answer's `Last-Modified`."""
    if answer.status != 200:
        return False
    tags = _all(request.headers, "if-none-match")
    if tags:
        etag = _header(answer.headers, "etag")
        if any(value.strip() == "*" for value in tags):
            return True
        if etag is None:
            return False
        weak = etag.strip().removeprefix("W/")
        return any(
            tag.removeprefix("W/") == weak for value in tags for tag in _ENTITY_TAG.findall(value)
        )
    since = _header(request.headers, "if-modified-since")
    modified = _header(answer.headers, "last-modified")
    if since is None or modified is None:
        return False
    try:
        return parsedate_to_datetime(modified) <= parsedate_to_datetime(since)
    except (TypeError, ValueError):  # a date that is not one: no validator
        return False


def _oldest_taken(request: Request) -> float | None:
    """The oldest stored answer, in seconds, the request may be served (its `Cache-Control:
    max-age=N`: a browser's reload sends `max-age=0`, to see the child's answer now); None
    when it may be served none (`no-cache`, `no-store`, `Authorization`)."""
    if _header(request.headers, "authorization") is not None:
        return None
    directives = _directives(_all(request.headers, "cache-control"))
    if {"no-cache", "no-store"} & directives.keys():
        return None
    limit = directives.get("max-age")
    return float("inf") if limit is None else float(limit)


def _lifetime(response: Response) -> float | None:
    """Seconds the answer stays fresh, or None when it must not be stored."""
    if response.status not in _CACHEABLE_STATUS:
        return None
    if _header(response.headers, "set-cookie") is not None:
        return None
    directives = _directives(_all(response.headers, "cache-control"))
    if _NEVER & directives.keys():
        return None
    seconds = directives.get("s-maxage", directives.get("max-age"))
    return float(seconds) if seconds else None


def _directives(values: list[str]) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for value in values:
        for name, number in _DIRECTIVE.findall(value):
            found[name.lower()] = int(number) if number else None
    return found


def _all(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name]


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


def _values(request: Request, names: tuple[str, ...]) -> tuple[str | None, ...]:
    """The request's value of each header `names` lists, every line of it combined (RFC 9110
    5.3): two requests differ if any line of a Vary header does."""
    combined = []
    for name in names:
        lines = _all(request.headers, name)
        combined.append(", ".join(lines) if lines else None)
    return tuple(combined)

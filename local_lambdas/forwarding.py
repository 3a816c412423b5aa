"""The pass-through rules both HTTP servers keep (docs/protocol.md, "Pass-through"), as nginx
keeps them: which headers go on either way (`end_to_end`: not hop-by-hop, not named by a
Connection header), the ones the proxy sets or answers itself (`NOT_FORWARDED`), the target
under <strip_prefix>, redirects to the child put back under the proxy, and header text as
aiohttp can write it (and whether it can be written at all).
Pure functions, compiled with the lane.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote

from local_lambdas.envelope import HOP_BY_HOP, TOKEN_HEADER
from local_lambdas.router import already_normal, as_read, normal_path

Pairs = Iterable[tuple[str, str]]
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~"  # RFC 3986 pchar: left as they are when re-escaping
# Never passed on from a client: set by the proxy on the way to the child, or, for Expect,
# answered by it (as nginx clears it: a child that sends no 100 Continue would be waited for).
NOT_FORWARDED: Final = frozenset({"x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix",
                           "x-request-id", TOKEN_HEADER.lower(), "expect"})  # fmt: skip
# What of a client's headers end_to_end drops: hop-by-hop ones and those above.
FROM_CLIENT_DROPPED: Final = HOP_BY_HOP | NOT_FORWARDED
# Header names seen, in lower case: the same few names come with every request and answer
# (their hash is kept by the string, so a lookup costs less than lower()). Bounded, in case
# a client invents a name per request.
_LOWER: Final[dict[str, str]] = {}
_LOWER_KEPT: Final = 1024


def lowered(name: str) -> str:
    """A header name in lower case (from _LOWER when seen before)."""
    lower = _LOWER.get(name)
    if lower is None:
        lower = name.lower()
        if len(_LOWER) < _LOWER_KEPT:
            _LOWER[name] = lower
    return lower


def named_by(connection: str) -> list[str]:
    """The headers a Connection header's value names as hop-by-hop, but for those that are
    hop-by-hop anyway (and `close`)."""
    named = []
    for token in connection.split(","):
        token = token.strip().lower()
        if token not in HOP_BY_HOP and token != "close":
            named.append(token)
    return named


def end_to_end(headers: Pairs, dropped: frozenset[str]) -> list[tuple[str, str, str]]:
    """(lower-case name, name, value) of the headers that go on: not in `dropped` (the
    hop-by-hop ones and the direction's own), not named by a Connection header. One pass;
    a second only when a Connection header names a header that is not hop-by-hop (the
    usual `keep-alive` and `close` name none). Both ways, on both servers."""
    kept = []
    named: list[str] = []
    for name, value in headers:
        lower = lowered(name)
        if lower == "connection":
            named += named_by(value)
        elif lower not in dropped:
            kept.append((lower, name, value))
    if named:
        kept = [header for header in kept if header[0] not in named]
    return kept


def strip_prefix(target: str, prefix: str | None, path: str) -> tuple[str, str | None]:
    """The target the child gets under <strip_prefix>, and what was taken off (None when
    the request is not under the prefix: it goes on as it came). `path` is the target's
    normalised path, which the route matched: a target under the prefix only once
    normalised (`//api/a`, `/./api/a`, `/%61pi/a`), or whose rest would lead elsewhere once
    normalised (`/api/../api/a`: `/../api/a`), goes on as nginx sends it, the normalised path
    less the prefix, re-escaped, with the query as sent."""
    if not prefix:
        return target, None
    stripped = prefix.rstrip("/")
    if target == stripped or target.startswith((stripped + "/", stripped + "?")):
        rest = target[len(stripped) :]
        raw = rest.partition("?")[0].partition("#")[0]  # the path, as resolve reads it
        if already_normal(raw) or normal_path(raw or "/") == (path[len(stripped) :] or "/"):
            return (rest if rest.startswith("/") else "/" + rest), stripped
    # The normalised path is compared with the prefix read the same way (one written as a
    # URL spells it, `/caf%C3%A9`, begins `/café/x`); what was taken off is said as written.
    normal = as_read(stripped)
    if path == normal or path.startswith(normal + "/"):
        rest = quote(path[len(normal) :], safe=_PATH_SAFE, errors="surrogateescape")
        query = target.find("?")
        if query != -1:
            rest += target[query:]
        return (rest if rest.startswith("/") else "/" + rest), stripped
    return target, None


REDIRECTS: Final = frozenset({"location", "content-location", "refresh"})


# Where a child listens, as its redirects name it: (host in lower case, port).
Origin = tuple[str, int]
# Names of this machine a child on one of them may give as its own (a server listening on
# every address, 0.0.0.0, may name that).
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "[::1]", "0.0.0.0"})


def put_back(name: str, value: str, prefix: str | None, origin: Origin | None) -> str:
    """A redirect of the child's as the client must get it, as nginx's default
    proxy_redirect does: one to the child's own address (`http://127.0.0.1:PORT/sub/`, which
    the client cannot reach, or not through the proxy) becomes the path it names (`/sub/`),
    and a path of the child's (`Location: /sub/`, `Refresh: 0; url=/sub/`) goes back under
    the prefix the proxy stripped, unless it is under it already. `name` is one of
    REDIRECTS, in lower case; `origin` is the child's address."""
    if name == "refresh":
        delay, sep, url = value.partition("url=")
        return f"{delay}{sep}{_put_back(url, prefix, origin)}" if sep else value
    return _put_back(value, prefix, origin)


def _put_back(url: str, prefix: str | None, origin: Origin | None) -> str:
    if origin is not None and url[:7].lower() == "http://":
        rest = url[7:]
        cut = len(rest)
        for mark in "/?#":
            at = rest.find(mark)
            if at != -1 and at < cut:
                cut = at
        host, colon, port = rest[:cut].rpartition(":")
        host = host.lower()
        if (
            colon and port == str(origin[1])
            and (host == origin[0] or (host in _LOOPBACK and origin[0] in _LOOPBACK))
        ):  # fmt: skip
            url = rest[cut:] if rest[cut:].startswith("/") else "/" + rest[cut:]
    if prefix and url.startswith("/") and not url.startswith("//") and not _under(url, prefix):
        return prefix + url
    return url


_COOKIE_PATH: Final = re.compile(r"(;\s*path\s*=\s*)(/[^;]*)", re.IGNORECASE)


def cookie_put_back(value: str, prefix: str) -> str:
    """A Set-Cookie of the child's as the client must get it: its `Path` of the child's
    (`Path=/auth/refresh`) under the prefix the proxy stripped, as its redirects are
    (nginx's proxy_cookie_path, written out), or the browser never sends it back. `Path=/`
    (every path) and a path under the prefix already are left as they are. Each `Path` of
    a cookie that has several (browsers take the last)."""

    def under_prefix(found: re.Match[str]) -> str:
        path = found.group(2).rstrip()
        if path == "/" or _under(path, prefix):
            return found.group(0)
        return f"{found.group(1)}{prefix}{found.group(2)}"

    return _COOKIE_PATH.sub(under_prefix, value)


def _under(url: str, prefix: str) -> bool:
    """Whether a child's path is under the prefix already: a child told it in
    X-Forwarded-Prefix (Flask behind werkzeug's ProxyFix, Spring's forwarded headers) writes
    its redirects there, and must not get the prefix twice."""
    return url.startswith(prefix) and url[len(prefix) : len(prefix) + 1] in ("", "/", "?", "#")


def own_address(transport: asyncio.BaseTransport | None) -> str:
    """The address a client connected to, as a Host header names it: the proxy's own name
    for a request that gave none (nginx's $host falls back to its server name)."""
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not isinstance(sockname, tuple):
        return "localhost"
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# What no head may carry: control characters but HTAB (RFC 9110 5.5, RFC 9112 4). A CR or an
# LF could split a line, and aiohttp refuses to write any of them.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def has_control(text: str) -> bool:
    """Whether `text`, for a head (a header value, a reason phrase), has a control character."""
    return not text.isprintable() and _CONTROL.search(text) is not None  # (printable: none)


def as_utf8(text: str) -> str:
    """`text` (bytes read with surrogateescape) as aiohttp can write it in a head, which it
    encodes in strict UTF-8: bytes that are not UTF-8 (a Latin-1 value, as Node and
    Werkzeug write them) go as the Latin-1 characters they are, UTF-8 as it came. (The fast
    lane writes the bytes back as they were.)"""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("latin-1")
    return text

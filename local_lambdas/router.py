"""Matching a request to the process that serves it (docs/protocol.md, "Routing"). No aiohttp.

Patterns: `/exact` matches only itself; `/dir/` matches everything under `/dir/` (and `/dir`
is redirected there: `folder`); `/api/*` matches `/api` and everything under `/api/`, never
`/apiary`. The most specific pattern wins whatever the manifest's order: exact before
prefix, longer prefix before shorter.

Routes are matched on the normalised path, as nginx matches its locations: percent-escapes
decoded, runs of slashes merged, `.` and `..` segments removed (RFC 3986 section 5.2.4); a
path that climbs above `/` is refused. The target itself goes to the child as the client sent
it, so a child that resolves the path its own way must still land inside its route: where the
path holds what servers read differently (an encoded slash, a backslash, `;` parameters, a
`#`, an escape escaped again), each reading is routed too, and a path whose readings land on
different processes is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Final, Generic, TypeVar
from urllib.parse import unquote_to_bytes

T = TypeVar("T")

_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODED_SLASH: Final = re.compile(r"%2[fF]")


class BadTarget(ValueError):
    """The request target cannot be routed safely: the client gets 400 with this message."""


class Router(Generic[T]):
    """Maps paths to targets; built once from (pattern, target) pairs."""

    def __init__(self, routes: Iterable[tuple[str, T]]) -> None:
        self._exact: dict[str, T] = {}
        prefixes: list[tuple[str, str, T]] = []  # (prefix, pattern, target)
        for pattern, target in routes:
            if pattern.endswith("/*"):
                base = pattern[:-2]
                # "/api/*" also answers "/api" itself, but an exact "/api" route beats it.
                self._exact.setdefault(base or "/", target)
                prefixes.append((base + "/", pattern, target))
            elif pattern.endswith("/"):
                prefixes.append((pattern, pattern, target))
            else:
                self._exact[pattern] = target
        # Longer prefix first; for the same prefix "/api/*" before "/api/" (it is longer).
        prefixes.sort(key=lambda p: (len(p[0]), len(p[1])), reverse=True)
        # Each prefix under its first segment ("/api/v1/" under "api"), so that a request is
        # compared with the few that can fit it, not with every route (a manifest of 200
        # functions: 3.8 us a request); "/" alone fits every path, tried after them.
        self._catch_all: list[tuple[str, T]] = []
        self._by_segment: dict[str, list[tuple[str, T]]] = {}
        for prefix, _, target in prefixes:
            segment = _first_segment(prefix)
            bucket = self._by_segment.setdefault(segment, []) if segment else self._catch_all
            bucket.append((prefix, target))
        self._folders = frozenset(pattern for _, pattern, _ in prefixes if pattern[-1] == "/")

    def match(self, path: str) -> T | None:
        """The target whose pattern fits `path` (normalised, no query) most specifically."""
        target = self._exact.get(path)
        if target is not None:
            return target
        if self._by_segment:  # (none with `/*` alone)
            for prefix, candidate in self._by_segment.get(_first_segment(path), ()):
                if path.startswith(prefix):
                    return candidate
        for prefix, candidate in self._catch_all:
            if path.startswith(prefix):
                return candidate
        return None

    def folder(self, path: str) -> bool:
        """Whether `path`, matched by no route, is a `/dir/` route's folder without its
        slash (`/dir`): nginx redirects it to `/dir/`, where relative links resolve."""
        return path + "/" in self._folders

    def unmatched(self, path: str) -> str:
        """Why `path` matches no route, for its 404: with the exact route it lies below, if
        any (`/files` for /files/a.txt), the pattern that would have taken it."""
        said = f"no route matches {path}"
        above = [p for p in self._exact if p != "/" and path.startswith(p + "/")]
        if not above:
            return said
        route = max(above, key=len)
        return f"{said}; the route {route} matches {route} alone, {route}/* what is below it too"


def _first_segment(path: str) -> str:
    """`api` for /api/v1/x and /api; empty for /."""
    end = path.find("/", 1)
    return path[1:end] if end != -1 else path[1:]


def resolve(target: str, match: Callable[[str], T | None]) -> tuple[str, T | None]:
    """The normalised path of a request target and what `match` routes it to.

    Raises BadTarget for a target that is not a path (nor an absolute URL), a malformed
    escape, a NUL, a path that climbs above `/`, or one that the chosen target's server
    could read as a path outside its routes.
    """
    if target[:1] == "/":
        raw = target.partition("?")[0]
        if already_normal(raw):  # (the usual request: a few scans and the match)
            return raw, match(raw)
    raw = target_path(target)
    path = normalise(_decoded(raw).split("/"))
    chosen = match(path)
    if chosen is None:
        return path, None  # nobody gets it, however it is read
    unfragmented = origin_form(target).partition("?")[0]
    for reading in _other_readings(raw, unfragmented):
        try:
            other: str | None = normalise(reading)
        except BadTarget:
            other = None
        if other != path and (other is None or match(other) is not chosen):
            said = unfragmented[:100]
            raise BadTarget(f"the path {said!r} is ambiguous: servers read it differently")
    return path, chosen


def origin_form(target: str) -> str:
    """An absolute-form target (`http://host/a?b`) as the origin form (`/a?b`) that children
    are sent; any other target as it is."""
    if target.startswith("/"):
        return target
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise BadTarget(f"the request target {target[:100]!r} is not a path")
    path = rest[_authority_end(rest) :]
    return path if path.startswith("/") else "/" + path


def authority(target: str) -> str:
    """The host (and port) an absolute-form target names (`http://h:81/a` gives `h:81`): what
    RFC 9112 (3.2.2) has a proxy send as the Host header in place of the client's."""
    rest = target.partition("://")[2]
    return rest[: _authority_end(rest)].rpartition("@")[2]  # (less any userinfo: RFC 9110 4.2.4)


def _authority_end(rest: str) -> int:
    """Where the authority that starts `rest` (a URL less its scheme) ends: at its path or
    its query."""
    return min((at for at in (rest.find("/"), rest.find("?")) if at != -1), default=len(rest))


def target_path(target: str) -> str:
    """The path of an origin-form (`/a?b`) or absolute-form (`http://h/a?b`) target, as sent."""
    target = origin_form(target)
    end = len(target)
    for mark in "?#":
        at = target.find(mark, 0, end)
        if at != -1:
            end = at
    return target[:end] or "/"


def already_normal(raw: str) -> bool:
    """Whether `raw` (a path as sent, no query) is its own normal form, and no server
    reads it otherwise: nothing to decode, merge or resolve, and nothing servers read
    differently."""
    return not ("%" in raw or "/." in raw or "//" in raw or ";" in raw or "\\" in raw
                or "#" in raw)  # fmt: skip


def normal_path(raw: str) -> str | None:
    """`raw` (a path as sent, no query) as routes read it; None where it cannot be read (it
    climbs above `/`, a malformed escape)."""
    try:
        return normal_form(raw)
    except BadTarget:
        return None


def as_read(raw: str) -> str:
    """`raw` (a path as written, no query) as routes read it; as it is where it cannot be
    read. A <strip_prefix> is read so (forwarding.strip_prefix, the manifest's checks)."""
    return raw if already_normal(raw) else normal_path(raw) or raw


def normal_form(raw: str) -> str:
    """`raw` (a path as sent, no query) as routes read it; raises BadTarget saying why it
    cannot be read."""
    return normalise(_decoded(raw).split("/"))


def normalise(segments: list[str]) -> str:
    """RFC 3986 5.2.4 over `segments` (a path split at "/", the first one empty), with empty
    segments merged away as nginx's merge_slashes does."""
    kept: list[str] = []
    for segment in segments[1:]:
        if segment in ("", "."):
            continue
        if segment == "..":
            if not kept:
                raise BadTarget("the path climbs above /")
            kept.pop()
            continue
        kept.append(segment)
    trailing = segments[-1] in ("", ".", "..") and kept
    return "/" + "/".join(kept) + ("/" if trailing else "")


def _decoded(raw: str) -> str:
    if "%" not in raw:
        return raw
    if _BAD_ESCAPE.search(raw):
        raise BadTarget(f"the path {raw[:100]!r} has a malformed %-escape")
    text = unquote_to_bytes(raw).decode("utf-8", "surrogateescape")
    if "\0" in text:
        raise BadTarget("the path holds an encoded NUL")
    return text


def _other_readings(raw: str, unfragmented: str) -> Iterable[list[str]]:
    """The path as servers other than nginx may split it, where that can differ;
    `unfragmented` is the target's path with what follows a `#` still in it."""
    if unfragmented != raw:  # a `#` read as part of the path, not a fragment's start: no
        # fragment is sent in a request, and Go's net/http and hypercorn keep it
        yield _decoded(unfragmented).split("/")
        yield from _split_readings(unfragmented)
    yield from _split_readings(raw)


def _split_readings(raw: str) -> Iterable[list[str]]:
    """`raw` as servers that split its segments otherwise than nginx read it."""
    if _ENCODED_SLASH.search(raw):  # an encoded slash kept inside its segment
        yield [_decoded(s).replace("/", "%2F") for s in raw.split("/")]
    decoded = _decoded(raw)
    if "\\" in decoded:  # a backslash read as a separator (Windows servers)
        yield decoded.replace("\\", "/").split("/")
    if ";" in decoded:  # path parameters dropped (Java servlet containers: /a/..;/b)
        yield [s.partition(";")[0] for s in decoded.split("/")]
    if "%" in decoded and not _BAD_ESCAPE.search(decoded):  # decoded twice (an app that
        yield _decoded(decoded).split("/")  # unquotes the path its server unquoted: %252e)

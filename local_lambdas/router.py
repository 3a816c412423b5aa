"""Matching a request path to the process that serves it (DESIGN section 5). No aiohttp here.

Patterns: `/exact` matches only itself; `/dir/` matches everything under `/dir/`; `/api/*`
matches `/api` and everything under `/api/`, never `/apiary`. The most specific pattern wins
whatever the manifest's order: exact before prefix, longer prefix before shorter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


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
        self._prefixes = [(prefix, target) for prefix, _, target in prefixes]

    def match(self, path: str) -> T | None:
        """The target whose pattern fits `path` (no query string) most specifically."""
        target = self._exact.get(path)
        if target is not None:
            return target
        for prefix, candidate in self._prefixes:
            if path.startswith(prefix):
                return candidate
        return None

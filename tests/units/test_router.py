"""Routing and the values routes and origins are written as (router.py,
config_values.py): tables."""

from __future__ import annotations

import re

import pytest

from local_lambdas.config_values import check_origin, check_route
from local_lambdas.router import Router

ROUTES = ["/api/*", "/api/v2/*", "/exact", "/dir/", "/api/v2/special"]
ROUTING = {
    "/api": "/api/*", "/api/": "/api/*", "/api/x/y": "/api/*", "/apiary": None,
    "/api/v2": "/api/v2/*", "/api/v2/z": "/api/v2/*", "/api/v2/special": "/api/v2/special",
    "/exact": "/exact", "/exact/": None, "/exactly": None, "/dir": None, "/dir/": "/dir/",
    "/dir/a/b": "/dir/", "/": None,
}  # fmt: skip


@pytest.mark.parametrize("order", [ROUTES, ROUTES[::-1]])
def test_most_specific_route_wins_whatever_the_order(order: list[str]) -> None:
    router = Router((r, r) for r in order)
    assert {path: router.match(path) for path in ROUTING} == ROUTING


@pytest.mark.parametrize(("written", "read"), [
    ("/api/*", "/api/*"), ("/", "/"), ("/*", "/*"), ("/dir/", "/dir/"), ("/exact", "/exact"),
    # As request paths are read: a route written as a URL spells it matches that URL.
    ("/caf%C3%A9/*", "/caf\u00e9/*"), ("/ex%61ct", "/exact"), ("/a%20b/", "/a b/"),
    ("/a//b/*", "/a/b/*"), ("/a/./b", "/a/b"), ("/a/x/../b/", "/a/b/"),
])  # fmt: skip
def test_a_route_is_read_as_request_paths_are(written: str, read: str) -> None:
    assert check_route(written) == read


def test_only_a_folder_routes_path_without_its_slash_is_a_folder() -> None:
    router = Router((r, r) for r in ROUTES)
    folders = [
        p for p in ("/dir", "/dir/", "/di", "/api", "/api/v2", "/exact", "/") if router.folder(p)
    ]
    assert folders == ["/dir"]


def test_a_404_below_an_exact_route_names_the_pattern_that_would_take_it() -> None:
    router = Router((r, r) for r in ROUTES)
    hint = "; the route /exact matches /exact alone, /exact/* what is below it too"
    assert router.unmatched("/exact/a.txt") == "no route matches /exact/a.txt" + hint
    assert router.unmatched("/exactly") == "no route matches /exactly"  # (not below it)
    assert router.unmatched("/") == "no route matches /"


def test_catch_all() -> None:
    router = Router([("/*", "all"), ("/a/*", "a"), ("/a/b/", "ab"), ("/b/", "b")])
    paths = ("/", "/x", "/a/b", "/ab", "/a/b/c", "/a/bc", "/b", "/b/x", "/bb/x")
    assert [router.match(p) for p in paths] == [
        "all", "all", "a", "all", "ab", "a", "all", "b", "all"
    ]  # fmt: skip


@pytest.mark.parametrize(("written", "fix"), [
    ("http://localhost:5173", None), ("https://app.test:8443", None), ("*", None),
    ("null", None), ("chrome-extension://abc", None), ("http://[::1]:3000", None),
    ("http://a.test/", "http://a.test"), ("localhost:5173", "http://localhost:5173"),
    ("http://LocalHost:5173", "http://localhost:5173"), ("HTTPS://a.test", "https://a.test"),
    ("http://a.test/app?x=1", "http://a.test"), ("http://a.test:80", "http://a.test"),
    ("https://a.test:443", "https://a.test"), ("https://a.test:80", None),
    # No browser sends these, whatever the spelling: no host, a space, a port not a number.
    ("http://", "scheme://host[:port]"), ("http://a b", "scheme://host[:port]"),
    ("http://a.test:x", "scheme://host[:port]"), ("http://[::1", "scheme://host[:port]"),
])  # fmt: skip
def test_an_origin_is_spelt_as_browsers_send_it(written: str, fix: str | None) -> None:
    """A <cors> or --cors origin spelt otherwise would never match: refused, with the fix."""
    if fix is None:
        assert check_origin(written) == written
    else:
        shown = fix if fix.startswith("scheme") else f'"{fix}"'
        with pytest.raises(ValueError, match=f"write {re.escape(shown)}"):
            check_origin(written)

"""Pass-through's request as the child gets it (forwarding.py, lane/relay_request.py): the
target, the headers, redirects and cookies put back under the proxy."""

from __future__ import annotations

import pytest

from local_lambdas import (
    forwarding,
    router,
)


@pytest.mark.parametrize(("target", "prefix", "child_gets", "taken"), [
    ("/api/users?x=1", "/api", "/users?x=1", "/api"),
    ("/api", "/api", "/", "/api"),
    ("/api?x", "/api", "/?x", "/api"),
    ("/api/a%7e%2Fb?q=%zz", "/api", "/a%7e%2Fb?q=%zz", "/api"),  # as sent, byte for byte
    ("/api/users", "/api/", "/users", "/api"),  # a prefix written with its slash
    ("/apiary/x", "/api", "/apiary/x", None),  # not under it: as it came
    # Under the prefix only once normalised, as the route matched it: nginx's way, the
    # normalised path less the prefix, re-escaped, the query as sent.
    ("//api/a?q", "/api", "/a?q", "/api"),
    ("/./api/a", "/api", "/a", "/api"),
    ("/api/./a", "/api", "/./a", "/api"),  # under it as sent: the rest as sent
    ("/%61pi/a%20b", "/api", "/a%20b", "/api"),
    ("/x/../api/a", "/api", "/a", "/api"),
    # Under it as sent, but the rest, normalised, is another path: the normalised one.
    ("/api/../api/a?q", "/api", "/a?q", "/api"),
    ("/api/%2e%2e/api/a", "/api", "/a", "/api"),
    ("/api/x/../../api/a", "/api", "/a", "/api"),
    ("/api/x/../a%7e", "/api", "/x/../a%7e", "/api"),  # the same path: as sent
    # A prefix written as a URL spells it takes off the path it spells, however sent.
    ("/caf%C3%A9/x?q", "/caf%C3%A9", "/x?q", "/caf%C3%A9"),
    ("/caf\u00e9/x?q", "/caf%C3%A9", "/x?q", "/caf%C3%A9"),
    ("/caf%c3%a9/x", "/caf%C3%A9", "/x", "/caf%C3%A9"),
])  # fmt: skip
def test_the_target_a_pass_through_child_gets(
    target: str, prefix: str, child_gets: str, taken: str | None
) -> None:
    path, _ = router.resolve(target, lambda path: None)
    assert forwarding.strip_prefix(target, prefix, path) == (child_gets, taken)


@pytest.mark.parametrize(("name", "value", "prefix", "client_gets"), [
    ("location", "/sub/?x=1", "/app", "/app/sub/?x=1"),
    ("location", "/sub/", None, "/sub/"),
    ("location", "//cdn.example/x", "/app", "//cdn.example/x"),  # another host's
    ("location", "sub/", "/app", "sub/"),  # relative to the request: already under it
    # A child told the prefix (X-Forwarded-Prefix: Flask's ProxyFix, Spring) writes paths
    # under it already: never twice.
    ("location", "/app/sub/", "/app", "/app/sub/"),
    ("location", "/app", "/app", "/app"),
    ("location", "/app?x=1", "/app", "/app?x=1"),
    ("location", "/apple/", "/app", "/app/apple/"),  # another path that begins the same
    ("location", "http://127.0.0.1:9002/app/sub", "/app", "/app/sub"),
    ("refresh", "0; url=/app/a", "/app", "0; url=/app/a"),
    # The child's own address, which the client cannot reach, or not through the proxy:
    # the path it names (nginx's proxy_redirect default), under the prefix.
    ("location", "http://127.0.0.1:9002/sub/", "/app", "/app/sub/"),
    ("location", "HTTP://127.0.0.1:9002/sub/", None, "/sub/"),
    ("location", "http://127.0.0.1:9002", "/app", "/app/"),
    ("location", "http://127.0.0.1:9002?q", None, "/?q"),
    ("location", "http://localhost:9002/a#top", "/app", "/app/a#top"),  # its machine's names
    ("location", "http://[::1]:9002/a", None, "/a"),
    ("content-location", "http://0.0.0.0:9002/a", None, "/a"),
    ("refresh", "0; url=http://127.0.0.1:9002/a", "/app", "0; url=/app/a"),
    ("refresh", "5", "/app", "5"),
    # Not the child: another port, another host, another scheme, or no port at all.
    ("location", "http://127.0.0.1:9003/a", "/app", "http://127.0.0.1:9003/a"),
    ("location", "http://example.com:9002/a", "/app", "http://example.com:9002/a"),
    ("location", "https://127.0.0.1:9002/a", "/app", "https://127.0.0.1:9002/a"),
    ("location", "http://127.0.0.1/a", "/app", "http://127.0.0.1/a"),
    ("location", "http://user@127.0.0.1:9002x/a", None, "http://user@127.0.0.1:9002x/a"),
    # The proxy itself (the Host the client sent): left as written, even under a prefix,
    # since a child may name another route on purpose (README, "Any web server").
    ("location", "http://localhost:3000/items/", "/app", "http://localhost:3000/items/"),
])  # fmt: skip
def test_a_redirect_to_the_child_is_put_back_under_the_proxy(
    name: str, value: str, prefix: str | None, client_gets: str
) -> None:
    assert forwarding.put_back(name, value, prefix, ("127.0.0.1", 9002)) == client_gets


@pytest.mark.parametrize(("value", "client_gets"), [
    ("t=1; Path=/auth/refresh; HttpOnly", "t=1; Path=/app/auth/refresh; HttpOnly"),
    ("t=1; HttpOnly; path = /auth", "t=1; HttpOnly; path = /app/auth"),  # any case, spaces
    ("t=1; Path=/apple", "t=1; Path=/app/apple"),  # another path that begins the same
    ("t=1; Path=/", "t=1; Path=/"),  # every path: it reaches the prefix's too
    ("t=1; Path=/app", "t=1; Path=/app"),  # under the prefix already (X-Forwarded-Prefix)
    ("t=1; Path=/app/x", "t=1; Path=/app/x"),
    ("t=1", "t=1"),  # the request's own path, which is the client's
    ("t=1; Path=x", "t=1; Path=x"),  # not a path: the browser ignores it
    ("path=/x; Max-Age=5", "path=/x; Max-Age=5"),  # a cookie named path, not the attribute
    ("t=1; Path=/a; Path=/b", "t=1; Path=/app/a; Path=/app/b"),  # the browser takes the last
])  # fmt: skip
def test_a_cookies_path_is_put_back_under_the_prefix(value: str, client_gets: str) -> None:
    assert forwarding.cookie_put_back(value, "/app") == client_gets


def test_a_redirect_to_a_named_upstream_is_its_own_but_not_to_this_machine() -> None:
    upstream = ("api.internal", 8000)  # a route-only <upstream>: localhost is not it
    assert forwarding.put_back("location", "http://API.internal:8000/x", None, upstream) == "/x"
    assert forwarding.put_back("location", "http://localhost:8000/x", None, upstream) == (
        "http://localhost:8000/x"
    )


@pytest.mark.parametrize(("headers", "kept"), [
    ([("Host", "a"), ("Accept", "*/*"), ("Connection", "Keep-Alive")], ["Host", "Accept"]),
    ([("HOST", "a"), ("keep-alive", "timeout=5"), ("TE", "trailers")], ["HOST"]),
    # A header a Connection header names is hop-by-hop too, whichever comes first.
    ([("X-Hop", "1"), ("Connection", "close, X-HOP"), ("X-End", "2")], ["X-End"]),
    ([("Connection", "x-hop"), ("connection", "x-other"), ("X-Hop", "1"), ("X-Other", "2"),
      ("X-End", "3")], ["X-End"]),
    ([("Upgrade", "websocket"), ("Connection", "upgrade"), ("Origin", "o")], ["Origin"]),
    # The direction's own: from a client, what the proxy sets itself.
    ([("X-Forwarded-Proto", "https"), ("X-Request-Id", "i"), ("Expect", "100-continue"),
      ("X-Forwarded-For", "1.2.3.4")], ["X-Forwarded-For"]),
])  # fmt: skip
def test_the_headers_that_go_on(headers: list[tuple[str, str]], kept: list[str]) -> None:
    for _ in range(2):  # the second time with the names already seen
        got = forwarding.end_to_end(headers, forwarding.FROM_CLIENT_DROPPED)
        assert [name for _, name, _ in got] == kept
        assert all(lower == name.lower() for lower, name, _ in got)

"""The response cache: what is stored and served, from tables with a fake clock, and end to end."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from local_lambdas.cache import Cache
from local_lambdas.envelope import Request, Response
from tests.helpers import WriteManifest, process_xml, running


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(uri: str = "/a?x=1", *headers: tuple[str, str], method: str = "GET") -> Request:
    return Request(method, uri, list(headers), b"", "rid")


def answer(*headers: tuple[str, str], status: int = 200, body: bytes = b"hi") -> Response:
    return Response(status, list(headers), body)


MAX_AGE = ("Cache-Control", "max-age=60")

# (request, response) -> stored?
STORE = {
    "max-age": (get(), answer(MAX_AGE), True),
    "s-maxage": (get(), answer(("Cache-Control", "s-maxage=5")), True),
    "no cache-control": (get(), answer(), False),
    "max-age=0": (get(), answer(("Cache-Control", "max-age=0")), False),
    "no-store": (get(), answer(("Cache-Control", "max-age=60, no-store")), False),
    "no-cache": (get(), answer(("Cache-Control", "no-cache, max-age=60")), False),
    "private": (get(), answer(("Cache-Control", "private, max-age=60")), False),
    "error": (get(), answer(MAX_AGE, status=500), False),
    "not found": (get(), answer(MAX_AGE, status=404), False),
    "set-cookie": (get(), answer(MAX_AGE, ("Set-Cookie", "a=1")), False),
    "vary star": (get(), answer(MAX_AGE, ("Vary", "*")), False),
    "post": (get(method="POST"), answer(MAX_AGE), False),
    "authorization": (get("/a", ("Authorization", "x")), answer(MAX_AGE), False),
}


@pytest.mark.parametrize("case", STORE)
def test_what_is_stored(case: str) -> None:
    request, response, stored = STORE[case]
    cache = Cache(1 << 20, clock=Clock())
    cache.store(request, response)
    assert (cache.lookup(get(request.uri)) is not None) is stored


# (request, its answer) -> the URIs stored before that are dropped by it (RFC 9111 4.4)
INVALIDATE = {
    "post": (get("/a?x=1", method="POST"), answer(), {"/a?x=1"}),
    "delete": (get("/b", method="DELETE"), answer(status=204), {"/b"}),
    "put, redirected": (get("/b", method="PUT"), answer(status=303), {"/b"}),
    "a failed post": (get("/b", method="POST"), answer(status=409), set()),
    "a safe method": (get("/b", method="OPTIONS"), answer(), set()),
    "post, created": (
        get("/b", ("Host", "Example.test:3000"), method="POST"),
        answer(("Location", "http://example.test:3000/c#new"), ("Content-Location", "/d")),
        {"/b", "/c", "/d"},
    ),
    "post, another origin": (
        get("/b", ("Host", "example.test"), method="POST"),
        answer(("Location", "http://other.test/c"), ("Content-Location", "//other.test/d")),
        {"/b"},
    ),
}


@pytest.mark.parametrize("case", INVALIDATE)
def test_what_an_unsafe_method_drops(case: str) -> None:
    request, response, dropped = INVALIDATE[case]
    cache = Cache(1 << 20, clock=Clock())
    uris = ["/a?x=1", "/a", "/b", "/c", "/d"]
    for uri in uris:
        cache.store(get(uri), answer(MAX_AGE))
    cache.store(request, response)
    assert {uri for uri in uris if cache.lookup(get(uri)) is None} == dropped


def test_fresh_for_max_age_with_age_header() -> None:
    clock = Clock()
    cache = Cache(1 << 20, clock=clock)
    cache.store(get(), answer(MAX_AGE))
    clock.now += 59
    hit = cache.lookup(get())
    assert hit is not None and ("Age", "59") in hit.headers and hit.body == b"hi"
    assert cache.lookup(get(method="HEAD")) is not None
    assert cache.lookup(get("/a?x=2")) is None  # the query is part of the key
    clock.now += 1
    assert cache.lookup(get()) is None


TAGGED = (MAX_AGE, ("ETag", '"v1"'), ("Last-Modified", "Mon, 07 Dec 2026 08:00:00 GMT"),
          ("Content-Type", "text/plain"))  # fmt: skip
# The client's validators -> answered 304 from the cache?
CONDITIONAL = {
    "its etag": (("If-None-Match", '"v1"'), True),
    "its etag, weak": (("If-None-Match", 'W/"v1"'), True),
    "among others": (("If-None-Match", '"v0", "v1"'), True),
    "any": (("If-None-Match", "*"), True),
    "another etag": (("If-None-Match", '"v2"'), False),
    "a bare tag": (("If-None-Match", "v1"), False),
    "since then": (("If-Modified-Since", "Mon, 07 Dec 2026 08:00:00 GMT"), True),
    "since later": (("If-Modified-Since", "Tue, 08 Dec 2026 08:00:00 GMT"), True),
    "since before": (("If-Modified-Since", "Sun, 06 Dec 2026 08:00:00 GMT"), False),
    "not a date": (("If-Modified-Since", "yesterday"), False),
    # If-None-Match decides when both are sent (RFC 9110 13.2.2).
    "etag over date": (("If-None-Match", '"v2"'), False),
}


@pytest.mark.parametrize("case", CONDITIONAL)
def test_a_client_holding_the_stored_answer_gets_304(case: str) -> None:
    header, unchanged = CONDITIONAL[case]
    cache = Cache(1 << 20, clock=Clock())
    cache.store(get(), answer(*TAGGED))
    headers = [header]
    if case == "etag over date":
        headers.append(("If-Modified-Since", "Tue, 08 Dec 2026 08:00:00 GMT"))
    hit = cache.lookup(get("/a?x=1", *headers))
    assert hit is not None
    if unchanged:
        assert (hit.status, hit.body) == (304, b"")
        names = [name for name, _ in hit.headers]  # what a 304 keeps of the 200, and Age
        assert names == ["Cache-Control", "ETag", "Last-Modified", "Age"], names
    else:
        assert (hit.status, hit.body) == (200, b"hi")


def test_no_304_without_a_validator_to_compare() -> None:
    cache = Cache(1 << 20, clock=Clock())
    cache.store(get(), answer(MAX_AGE))  # neither ETag nor Last-Modified
    for header in (
        ("If-None-Match", '"v1"'),
        ("If-Modified-Since", "Tue, 08 Dec 2026 08:00:00 GMT"),
    ):
        hit = cache.lookup(get("/a?x=1", header))
        assert hit is not None and hit.status == 200


def test_client_no_cache_skips_the_lookup() -> None:
    cache = Cache(1 << 20, clock=Clock())
    cache.store(get(), answer(MAX_AGE))
    assert cache.lookup(get("/a?x=1", ("Cache-Control", "no-cache"))) is None


def test_a_clients_max_age_takes_no_older_answer() -> None:
    """A browser's reload (F5) sends `Cache-Control: max-age=0`: it gets the child's answer
    of now, not the one stored a moment ago."""
    clock = Clock()
    cache = Cache(1 << 20, clock=clock)
    cache.store(get(), answer(MAX_AGE))
    clock.now += 0.5
    assert cache.lookup(get("/a?x=1", ("Cache-Control", "max-age=0"))) is None
    clock.now += 9.5
    assert cache.lookup(get("/a?x=1", ("cache-control", "max-age=10"))) is not None
    assert cache.lookup(get("/a?x=1", ("Cache-Control", "max-age=9"))) is None
    assert cache.lookup(get()) is not None


def test_vary_keys_on_the_named_request_headers() -> None:
    cache = Cache(1 << 20, clock=Clock())
    cache.store(get("/v", ("Accept", "text/html")), answer(MAX_AGE, ("Vary", "Accept")))
    assert cache.lookup(get("/v", ("accept", "text/html"))) is not None
    assert cache.lookup(get("/v", ("Accept", "application/json"))) is None


def test_vary_compares_every_line_of_a_repeated_header() -> None:
    cache = Cache(1 << 20, clock=Clock())
    mine = get("/v", ("Cookie", "theme=dark"), ("Cookie", "user=alice"))
    cache.store(mine, answer(MAX_AGE, ("Vary", "Cookie")))
    assert cache.lookup(get("/v", ("Cookie", "theme=dark"), ("Cookie", "user=alice"))) is not None
    assert cache.lookup(get("/v", ("Cookie", "theme=dark"), ("Cookie", "user=bob"))) is None
    assert cache.lookup(get("/v", ("Cookie", "theme=dark"))) is None


def test_bounded_in_entries_with_a_capacity() -> None:
    cache = Cache(1 << 20, max_entries=2, clock=Clock())
    for name in "abc":
        cache.store(get(f"/{name}"), answer(MAX_AGE))
    assert len(cache) == 2 and cache.lookup(get("/a")) is None


def test_bounded_in_bytes_least_recently_used_first() -> None:
    cache = Cache(1300, clock=Clock())  # room for three entries of 300 bytes and their headers
    for name in ("a", "b", "c"):
        cache.store(get(f"/{name}"), answer(MAX_AGE, body=b"x" * 300))
    assert cache.lookup(get("/a")) is not None  # now the most recently used
    cache.store(get("/d"), answer(MAX_AGE, body=b"x" * 300))
    assert [cache.lookup(get(f"/{n}")) is not None for n in "abcd"] == [True, False, True, True]
    cache.store(get("/huge"), answer(MAX_AGE, body=b"x" * 2000))
    assert cache.lookup(get("/huge")) is None


@pytest.mark.skipif(
    sys.platform == "win32", reason="its test child (behave.py) serves Unix sockets only"
)
@pytest.mark.parametrize("fast_lane", [True, False], ids=["fast-lane", "aiohttp"])
async def test_cache_end_to_end(
    write_manifest: WriteManifest, socket_dir: Path, fast_lane: bool
) -> None:
    path = write_manifest(process_xml("svc", "/api/*", extra="<cache>1MiB</cache>"))
    async with running(path, socket_dir, fast_lane=fast_lane) as run:

        async def fetch(url: str, method: str = "GET") -> tuple[int, bytes, str | None]:
            async with run.http.request(method, run.url + url) as reply:
                return reply.status, await reply.read(), reply.headers.get("Age")

        first = await fetch("/api/cached")
        assert first[2] is None
        assert await fetch("/api/cached") == (200, first[1], "0")  # served from the cache
        # A client holding it (its ETag) is told so from the cache, with no body.
        tag = f'"v{first[1].decode()}"'
        async with run.http.get(run.url + "/api/cached", headers={"If-None-Match": tag}) as r:
            assert (r.status, await r.read(), r.headers.get("ETag")) == (304, b"", tag)
        assert (await fetch("/api/cached", "HEAD"))[0] == 200
        assert (await fetch("/api/cached?other"))[1] != first[1]
        async with run.http.get(run.url + "/_/status") as reply:
            stats = (await reply.json())["processes"]["svc"]["cache"]
        assert (stats["hits"], stats["entries"]) == (3, 2) and stats["bytes"] > 0
        async with run.http.get(run.url + "/_/metrics") as reply:
            assert 'local_lambdas_cache_hits_total{process="svc"} 3.0' in await reply.text()
        errors = [await fetch("/api/cachederror") for _ in range(2)]
        assert errors[0][1] != errors[1][1]  # never cached
        assert (await fetch("/api/cached", "POST"))[1] != first[1]  # only GET and HEAD
        # The POST may have changed what the URI names: the next GET asks the child.
        after = await fetch("/api/cached")
        assert after[1] != first[1] and after[2] is None
        assert await fetch("/api/cached") == (200, after[1], "0")


def test_enable_cache_takes_the_earlier_tools_forms() -> None:
    from local_lambdas.options.values import DEFAULT_CACHE, cache_setting

    for off in ("", "0", "false", "No", "off"):
        assert cache_setting(off) == (None, None), off
    for on in ("1", "true", "YES", "on"):
        assert cache_setting(on) == (DEFAULT_CACHE, None), on
    assert cache_setting("5000") == (DEFAULT_CACHE, 5000)
    with pytest.raises(ValueError, match="how many answers to keep"):
        cache_setting("lots")

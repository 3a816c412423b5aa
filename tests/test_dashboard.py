"""The dashboard at /_/ and the request inspector behind it: what is recorded from both
lanes (envelope modes in the fast lane, pass-through in aiohttp's server), what is hidden,
replays, bounds, the event stream, and who may see it. The page itself, in a real browser,
is in test_browser.py."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from local_lambdas import _compat
from local_lambdas.admin import event_stream
from local_lambdas.admin.inspector import BODY, HIDDEN, LIMIT
from tests.helpers import (
    CHILDREN,
    PYTHON,
    Running,
    WriteManifest,
    cli,
    connect,
    process_xml,
    read_answer,
    running,
)


def web_xml(pid: str, route: str) -> str:
    return (
        f"<process><id>{pid}</id><executable>{PYTHON}</executable>"
        f"<arg>{CHILDREN / 'web_child.py'}</arg><route>{route}</route>"
        "<communication_mode>passthrough</communication_mode>"
        f"<strip_prefix>{route.removesuffix('/*')}</strip_prefix></process>"
    )


async def detail(run: Running, request_id: str) -> dict[str, Any]:
    async with run.http.get(f"{run.url}/_/requests/{request_id}") as reply:
        assert reply.status == 200, await reply.text()
        return await reply.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("fast_lane", [True, False])
async def test_requests_are_kept_with_headers_and_bodies(
    write_manifest: WriteManifest, socket_dir: Path, fast_lane: bool
) -> None:
    path = write_manifest(process_xml("api", "/api/*"), web_xml("web", "/web/*"))
    async with running(path, socket_dir, fast_lane=fast_lane) as run:
        headers = {"Authorization": "Bearer s3cret", "Cookie": "a=1", "X-Tag": "t"}
        async with run.http.post(run.url + "/api/x?q=1", data=b'{"a": [1, 2]}',
                                 headers=headers) as reply:  # fmt: skip
            first = reply.headers["X-Request-Id"]
        async with run.http.get(run.url + "/api/binary") as reply:
            binary = reply.headers["X-Request-Id"]
        async with run.http.post(run.url + "/web/echo", data=b"to the web child") as reply:
            relayed = reply.headers["X-Request-Id"]
            answer = await reply.read()
        async with run.http.get(run.url + "/nowhere") as reply:
            missing = reply.headers["X-Request-Id"]
        async with run.http.get(run.url + "/_/requests") as reply:
            listed = [r["id"] for r in (await reply.json())["requests"]]
        assert listed == [missing, relayed, binary, first]  # newest first, admin left out

        one = await detail(run, first)
        assert (one["method"], one["target"], one["process"], one["status"]) == (
            "POST", "/api/x?q=1", "api", 200)  # fmt: skip
        sent = dict(one["request"]["headers"])
        assert sent["Authorization"] == HIDDEN and sent["Cookie"] == HIDDEN
        assert sent["X-Tag"] == "t"
        pretty = '{\n  "a": [\n    1,\n    2\n  ]\n}'
        assert one["request"]["body"] == {
            "kept": True, "size": 13, "truncated": False, "kind": "json", "text": pretty,
        }  # fmt: skip
        assert one["response"]["body"]["kind"] == "json"
        assert json.loads(one["response"]["body"]["text"])["method"] == "POST"
        assert ["X-Request-Id", first] in one["response"]["headers"]
        hexed = (await detail(run, binary))["response"]["body"]
        assert hexed["kind"] == "binary" and hexed["text"].startswith("00000000  00 01 02 03")
        web = await detail(run, relayed)
        assert web["process"] == "web" and web["request"]["body"]["text"] == "to the web child"
        assert web["response"]["body"]["text"] == json.dumps(json.loads(answer), indent=2)
        assert (await detail(run, missing))["status"] == 404


async def test_replay_sends_the_request_again(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("api", "/api/*"))
    async with running(path, socket_dir) as run:
        async with run.http.put(run.url + "/api/log?x=1", data=b"again",
                                headers={"X-Tag": "t"}) as reply:  # fmt: skip
            old = reply.headers["X-Request-Id"]
        async with run.http.post(f"{run.url}/_/requests/{old}/replay") as reply:
            assert reply.status == 200, await reply.text()
            replayed = await reply.json()
        assert replayed["replay_of"] == old
        new = replayed["request"]
        assert new["id"] != old and (new["method"], new["target"]) == ("PUT", "/api/log?x=1")
        seen = json.loads(new["response"]["body"]["text"])
        assert seen["request_id"] == new["id"]  # the child saw the new request
        assert base64_text(seen["body"]) == "again" and ["X-Tag", "t"] in seen["headers"]
        # The child's line with the id is in the request's detail, and not the other's.
        logs = (await detail(run, new["id"]))["logs"]
        assert [line["text"] for line in logs if line["source"] == "api"] == [
            f"handling request {new['id']}"
        ]
        async with run.http.post(f"{run.url}/_/requests/nope/replay") as reply:
            assert reply.status == 404


def base64_text(data: str) -> str:
    import base64

    return base64.b64decode(data).decode()


async def test_bounds_and_what_cannot_be_replayed(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("api", "/api/*"))
    async with running(path, socket_dir) as run:
        big = b"x" * (BODY + 10)
        async with run.http.post(run.url + "/api/big", data=big) as reply:
            large = reply.headers["X-Request-Id"]
        body = (await detail(run, large))["request"]["body"]
        assert body["size"] == BODY + 10 and body["truncated"] and len(body["text"]) == BODY
        async with run.http.post(f"{run.url}/_/requests/{large}/replay") as reply:
            assert reply.status == 409
            assert "larger than the 64 KiB" in (await reply.json())["error"]
        for n in range(LIMIT + 5):
            async with run.http.get(f"{run.url}/api/{n}") as reply:
                assert reply.status == 200
        async with run.http.get(run.url + "/_/requests") as reply:
            kept = (await reply.json())["requests"]
        assert len(kept) == LIMIT and kept[0]["target"] == f"/api/{LIMIT + 4}"
        async with run.http.get(f"{run.url}/_/requests/{large}") as reply:
            assert reply.status == 404  # pushed out


async def test_secrets_shown_only_when_asked(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("api", "/api/*"))
    async with running(path, socket_dir, inspect_secrets=True) as run:
        async with run.http.get(run.url + "/api/cookies", headers={"Cookie": "a=1"}) as reply:
            rid = reply.headers["X-Request-Id"]
        one = await detail(run, rid)
        assert ["Cookie", "a=1"] in one["request"]["headers"]
        assert ["Set-Cookie", "a=1"] in one["response"]["headers"]


async def test_no_inspector_records_nothing_but_the_page_stays(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("api", "/api/*"))
    async with running(path, socket_dir, inspector=False) as run:
        async with run.http.get(run.url + "/api/x") as reply:
            assert reply.status == 200
        async with run.http.get(run.url + "/_/requests") as reply:
            assert reply.status == 404
            assert "inspector is off" in (await reply.json())["error"]
        async with run.http.get(run.url + "/_/") as reply:
            assert reply.status == 200 and reply.content_type == "text/html"
            assert "default-src 'none'" in reply.headers["Content-Security-Policy"]
    # Off by default on a public address.
    async with running(path, socket_dir, host="0.0.0.0") as run:
        assert not run.started.recording
        # Its URL (the dashboard's, `run`'s LOCAL_LAMBDAS_URL) is the loopback one: browsers
        # refuse http://0.0.0.0.
        assert run.url.startswith("http://127.0.0.1:")
        async with run.http.get(run.url + "/api/x") as reply:
            assert reply.status == 200


async def test_the_event_stream_carries_status_logs_and_requests(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("api", "/api/*"))
    async with running(path, socket_dir) as run:
        async with run.http.get(run.url + "/_/events") as stream:
            assert stream.headers["Content-Type"] == "text/event-stream"

            seen: list[tuple[str, dict]] = []  # type: ignore[type-arg]

            async def until(name: str, test=lambda data: True) -> dict:  # type: ignore[no-untyped-def,type-arg]
                """The first event `name` whose data passes `test`, in whatever order."""
                at = 0
                async with _compat.timeout(10):
                    event = ""
                    while True:
                        for kind, data in seen[at:]:
                            if kind == name and test(data):
                                return data
                        at = len(seen)
                        line = (await stream.content.readline()).decode().rstrip("\n")
                        assert line or not stream.content.at_eof(), "the stream ended"
                        if line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: "):
                            seen.append((event, json.loads(line[6:])))

            status = await until("status")
            assert status["processes"]["api"]["state"] == "READY"
            async with run.http.get(run.url + "/api/log") as reply:
                rid = reply.headers["X-Request-Id"]
            request = await until("request")
            assert request["id"] == rid and request["status"] == 200
            line = await until("log", lambda data: data["source"] == "api")
            assert line["text"] == f"handling request {rid}"
        # HEAD: the stream's head alone, and the connection goes on to the next request.
        reader, writer = await connect(run.url)
        health = b"GET /_/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        writer.write(b"HEAD /_/events HTTP/1.1\r\nHost: localhost\r\n\r\n" + health)
        head = await read_answer(reader, head_only=True)
        assert head.startswith(b"HTTP/1.1 200 ") and b"text/event-stream" in head, head
        answer = await read_answer(reader)
        assert answer.startswith(b"HTTP/1.1 200 ") and b'"status": "ok"' in answer, answer
        assert await reader.read() == b""
        writer.close()
        # A stop ends open streams rather than waiting for them.
        async with run.http.get(run.url + "/_/events") as stream:
            await stream.content.readline()
            await run.started.drain()
            async with _compat.timeout(5):
                await stream.content.read()


async def test_the_log_starts_with_the_runs_first_line(write_manifest: WriteManifest) -> None:
    """The children start while the dashboard loads (lifecycle.py): its log still has every
    line the console showed from the first."""
    path = write_manifest(process_xml("api", "/api/*"))
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        url = (await run.expect(r"dashboard: (http://\S+)")).group(1)
        async with aiohttp.ClientSession() as http, http.get(url + "events") as stream:
            async with _compat.timeout(10):
                while (await stream.content.readline()) != b"event: logs\n":
                    pass
                data = (await stream.content.readline()).decode()
        kept = [entry["text"] for entry in json.loads(data.removeprefix("data: "))]
        assert kept[0].startswith("listening on "), kept
        assert any(line.startswith("api: starting") for line in kept), kept
        run.proc.terminate()
        assert await run.finish() == 0


async def test_the_dashboard_answers_loopback_clients_only(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("api", "/api/*"))
    async with running(path, socket_dir) as run:
        async with run.http.get(run.url + "/_/requests",
                                headers={"X-Forwarded-For": "203.0.113.9"}) as reply:  # fmt: skip
            assert reply.status == 200  # a header is no proof: the connection is loopback
        async with run.http.post(run.url + "/_/requests") as reply:
            assert reply.status == 405
        async with run.http.get(run.url + "/_/requests/x/y/z") as reply:
            assert reply.status == 404


def own_address() -> str | None:
    """This machine's address on its network (not loopback), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: it only picks a route
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


async def test_other_clients_are_refused(write_manifest: WriteManifest, socket_dir: Path) -> None:
    """A client at the machine's own network address is not loopback: a real connection."""
    address = own_address()
    if address is None:
        pytest.skip("this machine has no network address but loopback")
    path = write_manifest(process_xml("api", "/api/*"))
    async with running(path, socket_dir, host="0.0.0.0", inspector=True) as run:
        outside = run.url.replace("127.0.0.1", address)
        for name in ("", "events", "requests", "requests/x"):
            async with run.http.get(f"{outside}/_/{name}") as reply:
                assert reply.status == 403, name
        async with run.http.get(outside + "/_/health") as reply:
            assert reply.status == 200


async def test_aiohttp_client_sees_the_page(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("api", "/api/*"))
    async with running(path, socket_dir) as run, aiohttp.ClientSession() as http:
        async with http.get(run.url + "/_/") as reply:
            page = await reply.text()
    assert 'id="process-rows"' in page and "EventSource" in page
    assert "http://" not in page.split("<script>")[1]  # nothing fetched from elsewhere


async def test_another_sites_page_can_neither_act_nor_read(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A browser on this machine is a loopback client, whatever page it shows: another
    site's page must not restart processes or replay requests (a form or fetch POST), nor
    read the dashboard under a name re-pointed at 127.0.0.1 (DNS rebinding). The headers are
    those browsers send; the dashboard's own page (tests/test_browser.py) still acts."""
    path = write_manifest(process_xml("api", "/api/*"))
    async with running(path, socket_dir) as run:
        host = run.url.removeprefix("http://")
        async with run.http.get(run.url + "/api/x") as reply:
            rid = reply.headers["X-Request-Id"]
        pid = run.child("api").pid
        actions = ["/_/processes/api/restart", f"/_/requests/{rid}/replay"]
        for action in actions:
            for headers in (
                {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
                {"Origin": "https://evil.example"},  # an older browser
                {"Sec-Fetch-Site": "same-site"},  # another port of localhost
                {"Origin": "null"},
            ):  # a sandboxed page or a file
                async with run.http.post(run.url + action, headers=headers) as reply:
                    assert reply.status == 403, (action, headers)
                    assert "refuses" in (await reply.json())["error"]
                    assert reply.headers["X-Request-Id"]  # as every answer of the proxy's
        assert run.child("api").pid == pid  # not restarted
        for name in ("", "status", "metrics", "requests", f"requests/{rid}"):
            async with run.http.get(f"{run.url}/_/{name}",
                                    headers={"Host": "rebound.example:80"}) as reply:  # fmt: skip
                assert reply.status == 403, name
                assert "--admin-public" in (await reply.json())["error"]
        probe = {"Host": "lb.example", "X-Request-Id": "probe-1"}
        async with run.http.get(run.url + "/_/health", headers=probe) as reply:
            assert reply.status == 200  # probes from anywhere, as before
            assert reply.headers["X-Request-Id"] == "probe-1"  # the client's own, back
        # Local names and addresses read; the page's own requests act.
        for name in (host, f"localhost:{run.url.rsplit(':', 1)[1]}", "app.localhost", "[::1]:80"):
            async with run.http.get(run.url + "/_/status", headers={"Host": name}) as reply:
                assert reply.status == 200, name
        own = {"Origin": run.url, "Sec-Fetch-Site": "same-origin"}
        async with run.http.post(f"{run.url}/_/requests/{rid}/replay", headers=own) as reply:
            assert reply.status == 200, await reply.text()
        async with run.http.post(run.url + actions[0], headers=own) as reply:
            assert reply.status == 200, await reply.text()
        assert run.child("api").pid != pid


async def test_a_page_too_far_behind_is_ended_after_what_waits() -> None:
    """A page's events wait in a list: it wakes at the first, takes them all at once, and is
    ended (to reconnect and start afresh) when QUEUE are waiting, its stream ending after
    them; one that hears nothing waits `timeout` (a ping is then due)."""
    page = event_stream.Page()
    assert not await page.wait(0.01) and not page.ended
    assert page.send(b"a") and page.send(b"b")
    assert await page.wait(5) and page.take() == [b"a", b"b"] and page.take() == []
    for n in range(event_stream.QUEUE):
        assert page.send(b"%d" % n)
    assert not page.send(b"one too many") and page.ended
    assert await page.wait(5) and len(page.take()) == event_stream.QUEUE
    assert not page.send(b"after the end") and page.take() == []

"""The fast lane (lane/fastlane.py) against aiohttp's server: the same answers, byte for byte but
the Date; hand-overs at a request's first byte, pipelined or not; slow and leaving clients.

Raw sockets, so that what goes over the wire is what the tests see."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.helpers import (
    WriteManifest,
    connect,
    eventually,
    in_both_lanes,
    process_xml,
    read_answer,
    running,
)

pytestmark = pytest.mark.asyncio


# Requests whose answers do not depend on the run (a fixed request id, no pids).
ALIKE = [
    b"GET /api/cookies HTTP/1.1\r\nHost: x\r\nX-Request-Id: r1\r\n\r\n",
    b"HEAD /api/cookies HTTP/1.1\r\nHost: x\r\nX-Request-Id: r2\r\n\r\n",
    b"GET /api/empty HTTP/1.1\r\nHost: x\r\nX-Request-Id: r3\r\n\r\n",
    b"HEAD /api/empty HTTP/1.1\r\nHost: x\r\nX-Request-Id: r3h\r\n\r\n",  # Length: 0 too
    b"GET /api/binary HTTP/1.1\r\nHost: x\r\nX-Request-Id: r4\r\n\r\n",  # no Content-Type
    b"GET /api/status999 HTTP/1.1\r\nHost: x\r\nX-Request-Id: r5\r\n\r\n",  # 502
    b"GET /api/cookies HTTP/1.0\r\nX-Request-Id: r6\r\nConnection: keep-alive\r\n\r\n",
    b"POST /api/cookies HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-Request-Id: r7\r\n\r\nabc",
    # Refusals without a body (a browser's /favicon.ico): the lane's too, the connection kept.
    b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\nX-Request-Id: r8\r\n\r\n",  # 404
    b"HEAD /nowhere HTTP/1.1\r\nHost: x\r\nX-Request-Id: r9\r\n\r\n",
    b"DELETE /only/x HTTP/1.1\r\nHost: x\r\nX-Request-Id: r10\r\n\r\n",  # 405, with Allow
    b"GET /nowhere HTTP/1.0\r\nX-Request-Id: r11\r\n\r\n",  # closes after it (HTTP/1.0)
]


async def test_both_lanes_answer_alike(write_manifest: WriteManifest, socket_dir: Path) -> None:
    path = write_manifest(
        process_xml("svc", "/api/*", mode="pipe-keepalive"),
        process_xml("only", "/only/*", mode="pipe-keepalive", extra="<methods>GET</methods>"),
    )
    answers = await in_both_lanes(path, socket_dir, ALIKE, ends=True)  # HTTP/1.0 ends it
    assert answers[True] == answers[False]
    assert answers[True][0].startswith(b"HTTP/1.1 201 Created\r\nSet-Cookie: a=1\r\n")
    assert b"\r\nConnection: keep-alive\r\n" in answers[True][6]  # HTTP/1.0, kept alive


async def test_pipelined_requests_keep_their_order_across_a_hand_over(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("svc", "/api/*", mode="pipe-keepalive"))
    async with running(path, socket_dir) as run:
        reader, writer = await connect(run.url)
        writer.write(
            b"GET /api/first HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nxx"  # aiohttp's 404
            b"POST /api/third HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
        )
        first, second, third = [await read_answer(reader) for _ in range(3)]
        writer.close()
        assert first.startswith(b"HTTP/1.1 200") and b'"/api/first"' in first
        assert second.startswith(b"HTTP/1.1 404") and b"no route matches /nowhere" in second
        assert third.startswith(b"HTTP/1.1 200") and b'"/api/third"' in third
        echoed = json.loads(third.split(b"\r\n\r\n", 1)[1])
        assert echoed["body"] == "aGk="  # "hi", cut at its Content-Length
        assert (run.lane.served, run.lane.handed_over) == (1, 1)


async def test_requests_the_lane_leaves_to_aiohttp(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("svc", "/api/*", mode="pipe"))
    async with running(path, socket_dir) as run:
        # A chunked upload: aiohttp decodes it, the child sees the whole body.
        reader, writer = await connect(run.url)
        writer.write(
            b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        answer = await read_answer(reader)
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["body"] == "YWJjZGU="  # abcde
        writer.close()
        # Not HTTP, and a head over the lane's 8 KiB: aiohttp's 400, and 431 (a header line
        # past aiohttp's limit).
        for raw, status in ((b"\x16\x03\x01 hello\r\n\r\n", b"400 Bad Request"),
                            (b"GET /api/x HTTP/1.1\r\nX: " + b"a" * 9000,
                             b"431 Request Header Fields Too Large")):  # fmt: skip
            reader, writer = await connect(run.url)
            writer.write(raw)
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 " + status), answer[:80]  # as nginx
        # HTTP/1.1 without Host: aiohttp's 400 too.
        reader, writer = await connect(run.url)
        writer.write(b"GET /api/x HTTP/1.1\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 400")
        writer.close()
        # A protocol llhttp knows but the lane does not speak: aiohttp's to judge.
        reader, writer = await connect(run.url)
        writer.write(b"GET /api/x RTSP/1.0\r\n\r\n")
        await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert run.lane.served == 0 and run.lane.handed_over == 5
        async with run.http.get(run.url + "/api/still") as reply:  # and the lane still serves
            assert reply.status == 200
        assert run.lane.served == 1


async def test_a_request_that_arrives_byte_by_byte(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("svc", "/api/*", mode="pipe-keepalive"))
    async with running(path, socket_dir) as run:
        reader, writer = await connect(run.url)
        raw = b"PUT /api/slowly HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        # (Each byte cut on its own: units/test_lane_requests.py.)
        for i in range(len(raw)):
            writer.write(raw[i : i + 1])
            await writer.drain()
        answer = await read_answer(reader)
        writer.close()
        echoed = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert (echoed["method"], echoed["uri"], echoed["body"]) == (
            "PUT",
            "/api/slowly",
            "aGVsbG8=",
        )
        assert run.lane.served == 1


async def test_a_client_that_leaves_before_its_answer(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("svc", "/api/*", mode="pipe-keepalive"))
    async with running(path, socket_dir) as run:
        _, writer = await connect(run.url)
        writer.write(b"GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\n")  # answered after 1 s
        await writer.drain()
        writer.close()
        lane = run.lane
        # The answer is dropped once it comes; the request is counted, nothing else breaks.
        assert await eventually(lambda: lane.served == 1 and not lane.connections, 10)
        async with run.http.get(run.url + "/api/after") as reply:
            assert reply.status == 200


async def test_idle_connections_are_closed(write_manifest: WriteManifest, socket_dir: Path) -> None:
    path = write_manifest(process_xml("svc", "/api/*", mode="pipe-keepalive"))
    async with running(path, socket_dir) as run:
        lane = run.lane
        reader, writer = await connect(run.url)
        writer.write(b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(reader)).startswith(b"HTTP/1.1 200")
        lane.sweep()  # within the idle timeout (--keepalive-timeout, 75 s): kept
        assert len(lane.connections) == 1
        lane.idle_timeout = 0
        lane.sweep()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the proxy
        writer.close()


async def test_a_connections_task_ends_with_it(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """One task serves a connection's requests and waits between them: it ends when the
    connection goes to aiohttp or closes, rather than waiting for ever."""
    path = write_manifest(process_xml("svc", "/api/*", mode="pipe-keepalive"))
    async with running(path, socket_dir) as run:
        lane = run.lane
        for then in (b"GET /_/health HTTP/1.1\r\nHost: x\r\n\r\n", None):
            reader, writer = await connect(run.url)
            for path_ in (b"/api/one", b"/api/two"):  # the second wakes the waiting task
                writer.write(b"GET " + path_ + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                assert path_ in await read_answer(reader)
            (connection,) = lane.connections
            task = connection.task
            assert task is not None and not task.done()  # waiting for a third request
            if then is not None:  # handed over: aiohttp answers the health check
                writer.write(then)
                assert (await read_answer(reader)).startswith(b"HTTP/1.1 200")
            writer.close()
            assert await eventually(task.done)
            assert task.exception() is None
        assert (lane.served, lane.handed_over) == (4, 1)


async def test_a_failure_inside_the_lane_closes_only_its_connection(
    write_manifest: WriteManifest,
    socket_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_manifest(process_xml("svc", "/api/*", mode="pipe-keepalive"))
    async with running(path, socket_dir) as run:
        # (Through the inspector's listener: a compiled class's methods stay as they are.)
        inspector = run.lane.proxy.inspector
        assert inspector is not None  # on by default on loopback

        def broken(exchange: object) -> None:
            monkeypatch.setattr(inspector, "on_record", None)  # once
            raise RuntimeError("a bug after the answer was written")

        monkeypatch.setattr(inspector, "on_record", broken)
        reader, writer = await connect(run.url)
        writer.write(b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(reader)).startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, not left hanging
        writer.close()
        assert "GET /api/x: failed inside local-lambdas" in caplog.text
        assert "a bug after the answer was written" in caplog.text  # its traceback
        async with run.http.get(run.url + "/api/after") as reply:
            assert reply.status == 200

"""Route-only processes (<upstream>): requests for their routes pass through to an address
where something else runs; nothing is started, readiness is the address accepting."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from local_lambdas import manifest
from local_lambdas.errors import ManifestError
from tests.helpers import (
    CHILDREN,
    PYTHON,
    WriteManifest,
    eventually,
    fixed_port,
    process_xml,
    running,
)


async def serve_elsewhere(port: int) -> web.AppRunner:
    """A web server the proxy does not run (a colleague's, a container's)."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.raw_path, "host": request.host})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_requests_go_to_the_upstream_once_it_accepts(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    port = fixed_port()
    path = write_manifest(
        f"<process><id>remote</id><upstream>http://127.0.0.1:{port}</upstream>"
        "<route>/remote/*</route></process>",
        process_xml("local", "/local/*"),
    )
    async with running(path, socket_dir, wait=False) as run:
        pool = run.pool("remote")
        # Nothing listens there yet: it waits, saying so.
        assert await eventually(lambda: pool.instances[0].state.value == "STARTING")
        assert "to accept connections" in pool.instances[0].reason
        elsewhere = await serve_elsewhere(port)
        try:
            assert await pool.wait_ready(10)
            async with run.http.get(run.url + "/remote/a%2Fb?x=1") as reply:
                assert reply.status == 200
                seen = await reply.json()
            assert seen["path"] == "/remote/a%2Fb?x=1"  # the target as sent
            assert seen["host"] == run.url.removeprefix("http://")  # and Host
            assert run.child("remote").pid is None  # nothing was started
        finally:
            await elsewhere.cleanup()


@pytest.mark.parametrize(("extra", "says"), [
    ("<executable>python3</executable>", "has both <executable> and <upstream>"),
    ("", None),
])  # fmt: skip
def test_upstream_forms(tmp_path: Path, extra: str, says: str | None) -> None:
    path = tmp_path / "manifest.xml"
    for upstream, ok in (("http://127.0.0.1:8080", True), ("http://[::1]:8080/", True),
                         ("127.0.0.1:8080", False), ("http://host", False),
                         ("http://h:1/path", False), ("http://[::1:8080", False),
                         ("http://h:0", False), ("http://h:99999", False),
                         ("http://u@h:1", False), ("http://h:1?q", False),
                         ("http://h:1#", False)):  # fmt: skip
        path.write_text(f"<manifest><process><id>r</id><upstream>{upstream}</upstream>"
                        f"<route>/r/*</route>{extra}</process></manifest>")  # fmt: skip
        try:
            loaded = manifest.load(path, socket_dir=Path("/tmp/ll-x"), base=tmp_path, env_files=[])
        except ManifestError as exc:
            messages = " ".join(p.message for p in exc.problems)
            assert not ok or (says is not None and says in messages), messages
            assert '<> "None"' not in messages, messages  # (a whole process's fault)
        else:
            assert ok and says is None, upstream
            assert loaded.processes[0].communication_mode.value == "passthrough"


async def test_streams_and_websockets_pass_through_to_the_upstream(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A real web server the proxy does not run: its event stream arrives event by event,
    and a WebSocket is relayed both ways with its close code."""
    port = fixed_port()
    server = await asyncio.create_subprocess_exec(
        PYTHON, str(CHILDREN / "web_child.py"), env={**os.environ, "PORT": str(port)}
    )
    try:
        path = write_manifest(
            f"<process><id>svc</id><upstream>http://127.0.0.1:{port}</upstream>"
            "<route>/svc/*</route><strip_prefix>/svc</strip_prefix></process>"
        )
        async with running(path, socket_dir) as run:
            async with run.http.get(run.url + "/svc/events") as reply:
                assert reply.headers["Content-Type"].startswith("text/event-stream")
                stamps = []
                async for line in reply.content:
                    if line.startswith(b"data: "):
                        stamps.append((json.loads(line[6:])["sent"], time.time()))
            assert len(stamps) == 3
            # Streamed, not buffered: the first event arrived before the last was sent.
            assert stamps[0][1] < stamps[2][0], stamps
            async with run.http.ws_connect(run.url + "/svc/ws") as socket:
                await socket.send_str("hello")
                assert (await socket.receive()).data == "echo: hello"
                await socket.send_bytes(b"\x00\x01")
                assert (await socket.receive()).data == b"\x01\x00"
                await socket.send_str("bye")
                closed = await socket.receive()
                assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4001
    finally:
        server.kill()
        await server.wait()

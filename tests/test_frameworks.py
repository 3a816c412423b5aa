"""Real web frameworks behind pass-through, run as their users run them: Flask's development
server (`app.run`), FastAPI under uvicorn's command line, and Express started by `npm start`
(npm is the proxy's child, node its child). Flask, FastAPI and uvicorn come with the test
extra; Express is installed from npm for the module, which is skipped, with the reason, when
npm or its registry is missing. Each framework gets the same questions: the request as it
came (less the stripped prefix), bodies with and without a length, a redirect put back under
the prefix, HEAD, an event stream as it is flushed, a client that leaves a stream, and a stop
that leaves no process behind. The servers that speak WebSocket (uvicorn with the websockets
package, Express with ws) get a WebSocket's questions too: the subprotocol they choose, text
and a 1 MiB binary message, close codes and reasons both ways, and their death mid-connection.
esbuild's development server (installed with Express) serves on, though it stops when its
standard input ends.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from local_lambdas import _compat
from local_lambdas._compat import processes
from tests.helpers import (
    CHILDREN,
    PYTHON,
    WriteManifest,
    eventually,
    process_xml,
    processes_running,
    running,
)

pytestmark = pytest.mark.skipif(not _compat.IS_LINUX, reason="finds processes in /proc")
APPS = CHILDREN / "frameworks"


def _passthrough(executable: str, args: list[str], workdir: Path) -> str:
    return (
        f"<process><id>app</id><executable>{executable}</executable>"
        + "".join(f"<arg>{arg}</arg>" for arg in args)
        + f"<working_dir>{workdir}</working_dir><route>/app/*</route>"
        "<strip_prefix>/app</strip_prefix><communication_mode>passthrough</communication_mode>"
        "<startup_timeout>60s</startup_timeout></process>"
    )


@pytest.fixture(scope="module")
def express(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("Node.js and npm are not installed")
    workdir = tmp_path_factory.mktemp("express")
    for name in ("express_app.js", "package.json"):
        shutil.copy(APPS / name, workdir / name)
    try:  # --prefer-offline: what npm's cache holds is not asked for again (7 s -> 2 s here)
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline"],
            cwd=workdir, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.skip("npm install express did not finish within 300 s")
    if done.returncode != 0:
        pytest.skip(f"npm install express failed: {done.stderr.strip()[-300:]}")
    yield workdir


def _manifest_for(framework: str, request: pytest.FixtureRequest) -> str:
    if framework == "flask":
        pytest.importorskip("flask")
        return _passthrough(PYTHON, [str(APPS / "flask_app.py")], APPS)
    if framework == "fastapi":
        pytest.importorskip("fastapi")
        pytest.importorskip("uvicorn")
        args = ["-m", "uvicorn", "fastapi_app:app", "--port", "${PORT}", "--no-access-log"]
        return _passthrough(PYTHON, args, APPS)
    workdir: Path = request.getfixturevalue("express")
    return _passthrough("npm", ["start"], workdir)


@pytest.mark.parametrize("framework", ["flask", "fastapi", "express"])
async def test_a_framework_behind_pass_through(
    framework: str, write_manifest: WriteManifest, socket_dir: Path,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    path = write_manifest(_manifest_for(framework, request))
    async with running(path, socket_dir) as run:
        app = run.url + "/app"
        host = run.url.removeprefix("http://")
        async with run.http.get(app + "/echo?q=1&empty=") as reply:
            assert reply.status == 200, await reply.text()
            seen = await reply.json()
        assert seen["path"] == "/echo" and seen["query"] == "q=1&empty="
        assert seen["prefix"] == "/app" and seen["host"] == host

        # A body with a length, and one in chunks (read whole, sent with its length).
        async def chunks() -> AsyncIterator[bytes]:
            yield b"hello, "
            yield b"world"

        for body in (b"hello, world", chunks()):
            async with run.http.post(app + "/echo", data=body) as reply:
                assert (await reply.json())["body"] == "hello, world"

        async with run.http.get(app + "/redirect", allow_redirects=False) as reply:
            assert reply.status == 302
            assert reply.headers["Location"] == "/app/echo?from=redirect"
        async with run.http.get(app + "/login", allow_redirects=False) as reply:  # told
            assert reply.headers["Location"] == "/app/echo?from=login"  # never put back twice
        async with run.http.head(app + "/echo") as reply:
            assert reply.status in (200, 405) and await reply.read() == b""

        # Events arrive as the framework flushes them: the first before the stream ends.
        async with run.http.get(app + "/stream") as reply:
            assert reply.headers["Content-Type"].startswith("text/event-stream")
            first = await reply.content.readuntil(b"\n\n")
            assert first == b"data: 0\n\n" and not reply.content.at_eof()
            rest = await reply.read()
        assert rest.count(b"data: ") == 2

        # A client that leaves an endless stream frees the child's slot.
        pool = run.pool("app")
        async with aiohttp.ClientSession() as own, own.get(app + "/forever") as reply:
            await reply.content.readuntil(b"\n\n")
            assert pool.instances[0].in_flight == 1
        assert await pool.wait_for(lambda: pool.instances[0].in_flight == 0, 10)
        async with run.http.get(app + "/echo") as reply:
            assert reply.status == 200

        server = {"flask": "flask_app.py", "fastapi": "fastapi_app:app"}.get(
            framework, "express_app.js"
        )
        assert processes_running(server), "the framework's server process is not to be found"
    # The stop took the server too (npm start's node included).
    assert await eventually(lambda: not processes_running(server), 5)


# aiohttp's side relays every server's frames with the same code: Express (whose npm start
# once lost a race there) stands for both.
@pytest.mark.parametrize(("framework", "fast_lane"), [
    ("fastapi", True), ("express", True), ("express", False),
], ids=["fastapi-tunnel", "express-tunnel", "express-aiohttp"])  # fmt: skip
async def test_a_frameworks_websocket_behind_pass_through(
    framework: str, fast_lane: bool, write_manifest: WriteManifest, socket_dir: Path,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    if framework == "fastapi":
        pytest.importorskip("websockets")
    path = write_manifest(_manifest_for(framework, request))
    async with running(path, socket_dir, fast_lane=fast_lane) as run:
        url = run.url + "/app/ws"
        async with run.http.ws_connect(url, protocols=["chat"]) as socket:
            assert socket.protocol == "chat"  # the child's choice, as it wrote it
            await socket.send_str("hello")
            assert (await socket.receive(5)).data == "hello"
            big = bytes(range(256)) * 4096  # 1 MiB
            await socket.send_bytes(big)
            assert (await socket.receive(10)).data == big
            await socket.send_str("close-me")  # the child closes: its code and reason
            closing = await socket.receive(5)
            assert (closing.type, closing.data, closing.extra) == (
                aiohttp.WSMsgType.CLOSE,
                4002,
                "done",
            )
        async with run.http.ws_connect(url) as socket:
            assert socket.protocol is None
            await socket.close(code=4001, message=b"bye")  # the client's code, answered
            assert socket.close_code == 4001
        # The child dies mid-connection: the client gets 1011, not a hang.
        async with run.http.ws_connect(url) as socket:
            await socket.send_str("ping")
            assert (await socket.receive(5)).data == "ping"
            child = run.child("app")
            assert child.pid is not None
            processes.kill_group(child.pid)  # npm start's node too
            ended = await socket.receive(10)
            assert ended.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert socket.close_code == 1011, (ended, socket.close_code)


async def test_esbuild_watching_as_a_worker_beside_the_server_of_its_output(
    express: Path, write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A Procfile's `esbuild --watch` beside a web server: nothing is routed to the watcher
    (<communication_mode>none</communication_mode>); it runs on (its input held open, as
    `--watch` stops at its end) and rebuilds what the server serves as the source changes."""
    esbuild = express / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        pytest.skip("npm installed no esbuild (its platform package is missing)")
    site = express / "watched"
    (site / "out").mkdir(parents=True)
    (site / "in.js").write_text("console.log('first')")
    path = write_manifest(
        f"<process><id>bundle</id><executable>{esbuild}</executable><arg>in.js</arg>"
        "<arg>--bundle</arg><arg>--outdir=out</arg><arg>--watch</arg>"
        f"<working_dir>{site}</working_dir><communication_mode>none</communication_mode>"
        "</process>",
        process_xml("web", "/web/*", mode="passthrough", script="static_files.py",
                    args=(str(site / "out"),), extra="<strip_prefix>/web</strip_prefix>"),
    )  # fmt: skip

    async def serves(text: str) -> bool:
        async with run.http.get(run.url + "/web/in.js") as reply:
            try:
                return reply.status == 200 and text in await reply.text()
            except aiohttp.ClientPayloadError:  # (see below)
                return False

    async with running(path, socket_dir) as run:
        watcher = run.child("bundle").pid
        assert await eventually(lambda: serves("first"), 20)
        # The file server gives the file's size, then reads it: when esbuild rewrites it
        # between the two, the answer is short and the proxy cuts it off, as it must.
        (site / "in.js").write_text("console.log('second')")
        assert await eventually(lambda: serves("second"), 20)
        assert run.child("bundle").pid == watcher and run.child("bundle").restarts == 0


async def test_esbuilds_dev_server_serves_on(
    express: Path, write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """esbuild's --serve stops as soon as its standard input ends ("[serve] stopped
    automatically because stdin was closed"): a child's input is held open (spawned.py)."""
    esbuild = express / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        pytest.skip("npm installed no esbuild (its platform package is missing)")
    (express / "in.js").write_text("console.log('bundled')")
    args = ["in.js", "--bundle", "--outdir=out", "--servedir=.", "--serve=127.0.0.1:${PORT}"]
    path = write_manifest(
        f"<process><id>esb</id><executable>{esbuild}</executable>"
        + "".join(f"<arg>{arg}</arg>" for arg in args)
        + f"<working_dir>{express}</working_dir><route>/esb/*</route>"
        "<strip_prefix>/esb</strip_prefix><communication_mode>passthrough</communication_mode>"
        "</process>"
    )
    async with running(path, socket_dir) as run:
        pid = run.child("esb").pid
        for _ in range(3):
            async with run.http.get(run.url + "/esb/out/in.js") as reply:
                assert reply.status == 200 and "bundled" in await reply.text()
        assert run.child("esb").pid == pid and run.child("esb").restarts == 0

"""The child helpers (Python's local_lambdas.child and the Node.js one) in every mode."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import CHILDREN, WriteManifest, eventually, running

MODES = ["pipe", "pipe-keepalive", "http"]
NODE = shutil.which("node")
HELPERS = {
    "python": (sys.executable, CHILDREN / "helper_child.py"),
    "node": (NODE, CHILDREN / "helper_child.js"),
}


def helper_process(language: str, mode: str) -> str:
    executable, script = HELPERS[language]
    if executable is None:
        pytest.skip("node is not installed (.ci/run installs it with apt-get)")
    return (
        f"<process><id>h</id><executable>{executable}</executable><arg>{script}</arg>"
        f"<route>/h/*</route><communication_mode>{mode}</communication_mode></process>"
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("language", ["python", "node"])
async def test_helper_serves_every_mode(
    write_manifest: WriteManifest, socket_dir: Path, language: str, mode: str
) -> None:
    path = write_manifest(helper_process(language, mode))
    body = bytes(range(256))
    async with running(path, socket_dir) as run:
        for _ in range(3):  # several on one connection in keep-alive mode
            async with run.http.patch(
                run.url + "/h/x?a=1&a=2", data=body, headers=[("X-Tag", "t1"), ("X-Tag", "t2")]
            ) as reply:
                assert reply.status == 201
                assert reply.headers.getall("Set-Cookie") == ["a=1", "b=2"]
                seen = json.loads(await reply.read())
            assert seen["method"] == "PATCH" and seen["uri"] == "/h/x?a=1&a=2"
            assert seen["path"] == "/h/x" and seen["query"] == {"a": ["1", "2"]}
            assert [v for k, v in seen["headers"] if k == "X-Tag"] == ["t1", "t2"]
            assert seen["x_tag"] == "t1"
            assert base64.b64decode(seen["body"]) == body
            assert seen["request_id"] == reply.headers["X-Request-Id"]
        async with run.http.get(run.url + "/h/boom") as reply:
            assert reply.status == 500
        async with run.http.get(run.url + "/h/after") as reply:
            assert reply.status == 201  # the child went on serving


@pytest.mark.parametrize("language", ["python", "node"])
async def test_what_a_handler_returns_that_is_not_an_answer_is_500_saying_what(
    write_manifest: WriteManifest,
    socket_dir: Path,
    language: str,
) -> None:
    """A handler that returns nothing, a string, a status "200", a body that is a number or
    AWS Lambda's {statusCode, body}: the Node.js helper answered 200 with an empty body (a
    string), with "handler failed" (a number) or as a 200 (Lambda's), the Python one closed
    the connection (a 502 blaming the child). Each is a 500, and the child's output says
    what the handler returned."""
    path = write_manifest(helper_process(language, "pipe-keepalive"))
    said = {
        "none": "returned None" if language == "python" else "returned undefined",
        "str": "returned 'a string', not a Response" if language == "python"
        else 'returned "a string", not {status, headers, body}',
        "status": "status '200' is not an int" if language == "python"
        else 'status "200" is not an integer',
        "body": "body 5 is not bytes or str" if language == "python"
        else "body 5 is not a string or a Buffer",
        # AWS Lambda's shape (which the Node.js helper took as a 200)
        "lambda": "returned {'statusCode': 404, 'body': 'x'}, not a Response"
        if language == "python"
        else "returned statusCode 404, AWS Lambda's name for it: return {status, headers, body}",
    }  # fmt: skip
    async with running(path, socket_dir) as run:
        lines = run.child("h").output.lines  # (the last few, as they come)
        for wrong, words in said.items():
            async with run.http.get(f"{run.url}/h/{wrong}") as reply:
                assert (reply.status, await reply.text()) == (500, "handler failed\n"), wrong
            printed = lambda words=words: any(words in line for line in lines)  # noqa: E731
            assert await eventually(printed), (wrong, list(lines))
        async with run.http.get(run.url + "/h/after") as reply:
            assert reply.status == 201  # the child went on serving


async def test_an_async_python_handler_is_awaited(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """`async def handle(...)`, as FastAPI's users write: it was sent back as a coroutine
    (a 500). Each request runs it to completion, so it may await."""
    script = tmp_path / "async_child.py"
    script.write_text(
        "import asyncio\n"
        "from local_lambdas.child import Request, Response, serve\n"
        "async def handle(request: Request) -> Response:\n"
        "    await asyncio.sleep(0.01)\n"
        "    return Response(200, {}, 'awaited ' + request.path)\n"
        "serve(handle)\n"
    )
    path = write_manifest(
        f"<process><id>h</id><executable>{sys.executable}</executable><arg>{script}</arg>"
        "<route>/h/*</route><communication_mode>pipe-keepalive</communication_mode></process>"
    )
    async with running(path, socket_dir) as run:
        for _ in range(2):
            async with run.http.get(run.url + "/h/x") as reply:
                assert (reply.status, await reply.text()) == (200, "awaited /h/x")


def test_python_helper_imports_without_aiohttp() -> None:
    code = (
        "import sys, local_lambdas.child; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'lxml')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_helper_outside_local_lambdas_says_so() -> None:
    result = subprocess.run(
        [sys.executable, str(CHILDREN / "helper_child.py")],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "run this under local-lambdas" in result.stderr

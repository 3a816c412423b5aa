"""The polyglot example: children in C, Node.js, Perl and Python, one mode each, each driven
through the real proxy; and the shell-script example, a script socat runs per request. A
child whose runtime is missing is skipped, saying which."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree
from yarl import URL

from tests.helpers import running

POLYGLOT = Path(__file__).parents[1] / "examples" / "polyglot"
SHELL = Path(__file__).parents[1] / "examples" / "shell"
NEEDS = {"c": "cc", "node": "node", "perl": "perl", "python": "python3"}
# What each child sees of the path: the passthrough child gets it less <strip_prefix>.
SEEN_URI = {"c": "/c/x?y=1&y=2", "node": "/node/x?y=1&y=2", "perl": "/perl/x?y=1&y=2",
            "python": "/x?y=1&y=2"}  # fmt: skip


@pytest.fixture(scope="module")
def built() -> None:
    if shutil.which("cc") is None:
        return
    # Built aside and renamed into place: each xdist worker builds it, and another's test may
    # be loading the manifest, which checks the executable, while this one writes it.
    aside = POLYGLOT / f"echo-c.{os.getpid()}"
    subprocess.run(["cc", "-O2", "-Wall", "-o", str(aside), str(POLYGLOT / "echo.c")], check=True)
    os.replace(aside, POLYGLOT / "echo-c")


def one_process_manifest(language: str, tmp_path: Path) -> Path:
    """The example's own <process> for `language`, alone, its working_dir the example's."""
    if shutil.which(NEEDS[language]) is None:
        pytest.skip(f"{NEEDS[language]} is not installed (.ci/run installs it with apt-get)")
    root = etree.parse(str(POLYGLOT / "manifest.xml")).getroot()
    process = next(p for p in root if p.findtext("id") == language)
    etree.SubElement(process, "working_dir").text = str(POLYGLOT)
    path = tmp_path / f"{language}.xml"
    path.write_bytes(b"<manifest>" + etree.tostring(process) + b"</manifest>")
    return path


@pytest.mark.parametrize("language", list(NEEDS))
async def test_polyglot_child(language: str, tmp_path: Path, socket_dir: Path, built: None) -> None:
    path = one_process_manifest(language, tmp_path)
    body = bytes(range(256)) * 4
    async with running(path, socket_dir) as run:
        async with run.http.post(
            run.url + f"/{language}/x?y=1&y=2", data=body,
            headers=[("X-Tag", "one"), ("X-Tag", "two"), ("Content-Type", "application/x-bin")],
        ) as reply:  # fmt: skip
            assert reply.status == 200, await reply.text()
            seen = json.loads(await reply.read())
        assert seen["lang"] == language
        assert seen["method"] == "POST"
        assert seen["uri"] == SEEN_URI[language]
        assert [v for k, v in seen["headers"] if k.lower() == "x-tag"] == ["one", "two"]
        assert base64.b64decode(seen["body"]) == body
        async with run.http.get(run.url + f"/{language}/teapot") as reply:
            assert reply.status == 418
            assert (await reply.json())["error"] == "I am a teapot"


def test_the_polyglot_manifest_is_valid(built: None) -> None:
    from local_lambdas import manifest

    missing = [tool for tool in NEEDS.values() if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    # run.sh starts it from its own folder, where its relative paths start.
    loaded = manifest.load(POLYGLOT / "manifest.xml", socket_dir=Path("/tmp/ll-x"), base=POLYGLOT)
    assert {p.communication_mode.value for p in loaded.processes} == {
        "pipe", "pipe-keepalive", "http", "passthrough"}  # fmt: skip


def shell_manifest(tmp_path: Path, working_dir: Path) -> Path:
    """examples/shell/manifest.xml as it is, run from `working_dir` (its handler.sh)."""
    missing = [tool for tool in ("socat", "jq") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (.ci/run installs them with apt-get)")
    root = etree.parse(str(SHELL / "manifest.xml")).getroot()
    etree.SubElement(root[0], "working_dir").text = str(working_dir)
    path = tmp_path / "shell.xml"
    path.write_bytes(etree.tostring(root))
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="socat listens on a Unix socket")
async def test_a_shell_script_behind_socat(tmp_path: Path, socket_dir: Path) -> None:
    """examples/shell/ as it is: socat on the pipe runs handler.sh per request; the body is
    counted in bytes (binary, NULs included), the target given back as sent (never run by
    the shell), and /teapot is 418."""
    async with running(shell_manifest(tmp_path, SHELL), socket_dir) as run:
        body = bytes(range(256)) * 4
        async with run.http.post(run.url + "/sh/x?y=1&y=2", data=body) as reply:
            assert reply.status == 200, await reply.text()
            assert await reply.text() == "POST /sh/x?y=1&y=2: 1024 bytes, from sh\n"
        target = "/sh/a%22b'c$(id)`id`;*"
        async with run.http.get(URL(run.url + target, encoded=True)) as reply:  # as it is
            assert await reply.text() == f"GET {target}: 0 bytes, from sh\n"
        async with run.http.get(run.url + "/sh/teapot?x=1") as reply:
            assert reply.status == 418
            assert await reply.text() == "I am a teapot\n"


@pytest.mark.skipif(sys.platform == "win32", reason="socat listens on a Unix socket")
async def test_a_shell_script_slower_than_half_a_second_is_answered(
    tmp_path: Path, socket_dir: Path
) -> None:
    """socat shuts a connection half a second after its request has ended unless told
    otherwise (`-t`): the example's line lets a script take longer (under a loaded machine
    the example's own handler did, and its answer was a 502)."""
    (tmp_path / "real.sh").symlink_to(SHELL / "handler.sh")
    slow = tmp_path / "handler.sh"
    slow.write_text("#!/bin/sh\nsleep 1.5\nexec ./real.sh\n")
    slow.chmod(0o755)
    async with running(shell_manifest(tmp_path, tmp_path), socket_dir) as run:
        async with run.http.post(run.url + "/sh/slow", data=b"hi") as reply:
            assert reply.status == 200, await reply.text()
            assert await reply.text() == "POST /sh/slow: 2 bytes, from sh\n"

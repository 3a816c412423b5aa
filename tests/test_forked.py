"""The tests' fork server (tests/forked.py) starts a command as `python -m local_lambdas`
does: the same output, exit status and answer to a signal, in the working folder and with
the environment asked for, as a process of its own."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests import forked
from tests.helpers import cli, command, manifest_text, process_xml

pytestmark = pytest.mark.skipif(
    not forked.forkable({}), reason="no fork here (Windows): every command is exec'd"
)


def _alike(lines: list[str]) -> list[str]:
    """Lines with what differs from run to run made alike: ports, pids, times, ids, the
    width of a table's column that holds them (a pid of 4 digits or of 5), and the order of
    lines from tasks running side by side."""
    alike = (re.sub(r"\d+(\.\d+)?", "N", re.sub(r"[0-9a-f]{8,}", "X", line)) for line in lines)
    return sorted(re.sub(r"(─|\s)\1+", r"\1", line) for line in alike)


async def _observed(
    tmp_path: Path,
) -> tuple[str, list[str], int, object, list[str], int, list[tuple[int, str, str]]]:
    """A run that serves, answers one request and stops on SIGINT, then one whose manifest
    is missing: which way it was started, and what each said and ended with. (One in a
    folder that is not there is not started at all.) Then `check` of each, its output and
    its errors read apart."""
    async with cli("manifest.xml", "--bind", "127.0.0.1:0", cwd=tmp_path,
                   env={"GREETING": "hello"}) as run:  # fmt: skip
        way = type(run.proc).__name__
        if sys.platform.startswith("linux"):
            assert os.readlink(f"/proc/{run.proc.pid}/cwd") == str(tmp_path)
        url = (await run.expect(r"^serving on (http://\S+)"))[1]
        async with (
            aiohttp.ClientSession() as http,
            http.get(url + "/api/x?names=GREETING") as reply,
        ):
            seen = await reply.json()
        run.proc.send_signal(signal.SIGINT)
        code = await run.finish()
    async with cli("missing.xml", cwd=tmp_path) as failed:
        failed_code = await failed.finish()
    with pytest.raises(FileNotFoundError):  # a folder that is not there
        async with cli("manifest.xml", cwd=tmp_path / "gone"):
            pass
    checked = [
        await command("check", name, cwd=tmp_path, env={"GREETING": "hello"})
        for name in ("manifest.xml", "gone.xml")
    ]
    apart = [(done.returncode, done.stdout, done.stderr) for done in checked]
    return way, _alike(run.lines), code, seen, _alike(failed.lines), failed_code, apart


async def test_a_forked_command_is_an_execd_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    child = process_xml(
        "api", "/api/*", script="env_child.py", args=("${GREETING}",), mode="pipe-keepalive"
    )
    (tmp_path / "manifest.xml").write_text(manifest_text(child))
    by_fork = await _observed(tmp_path)
    monkeypatch.setattr(forked, "forkable", lambda added: False)
    by_exec = await _observed(tmp_path)
    assert (by_fork[0], by_exec[0]) == ("Forked", "Process")
    assert by_fork[1:] == by_exec[1:]
    assert by_fork[3] == {"argv": ["hello"], "env": {"GREETING": "hello"}}
    assert by_fork[5] != 0 and "missing.xml" in by_fork[4][0]
    (ok, _, _), (failed, said, why) = by_fork[6]  # (errors, and only they, on stderr)
    assert (ok, failed) == (0, 1) and "gone.xml" in why and "gone.xml" not in said

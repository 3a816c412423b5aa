"""Processes that start on their first request and sleep when idle: counted before and after,
with requests held across every stop and start, none failed."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from pathlib import Path

import pytest

from tests.helpers import WriteManifest, eventually, gone, load, process_xml, run_command, running


async def test_started_by_its_first_request(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(
        process_xml("lazy", "/lazy/*", extra="<start>on-request</start>"),
        process_xml("eager", "/eager/*"),
    )
    async with running(path, socket_dir) as run:
        pool = run.pool("lazy")
        assert pool.instances == [] and pool.sleeping
        async with run.http.get(run.url + "/_/ready") as reply:
            assert reply.status == 200  # an idle on-request process counts as ready
        async with run.http.get(run.url + "/_/status") as reply:
            assert (await reply.json())["processes"]["lazy"]["state"] == "IDLE"
        async with run.http.get(run.url + "/lazy/pid") as reply:  # held while it starts
            assert reply.status == 200
            assert int(await reply.text()) == run.child("lazy").pid


async def test_a_restart_or_reload_leaves_it_asleep_and_returns(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """Restarting a process that starts on request (`local-lambdas restart`, a file --watch
    saw change), asleep or awake, gives a new one that sleeps until its next request; the
    restart answers at once rather than waiting for a start no request has asked for (it
    held every later reload up for good)."""
    path = write_manifest(process_xml("lazy", "/lazy/*", extra="<start>on-request</start>"))
    async with running(path, socket_dir) as run:
        for awake in (False, True):
            if awake:
                async with run.http.get(run.url + "/lazy/pid") as reply:
                    assert reply.status == 200
            assert await asyncio.wait_for(run.supervisor.restart("lazy"), 5)
            pool = run.pool("lazy")
            assert pool.instances == [] and pool.sleeping
        write_manifest(process_xml("lazy", ["/lazy/*", "/v2/*"], extra="<start>on-request</start>"))
        await asyncio.wait_for(run.started.reload(True, []), 5)
        async with run.http.get(run.url + "/v2/pid") as reply:  # its first request starts it
            assert reply.status == 200
            assert int(await reply.text()) == run.child("lazy").pid


async def test_its_build_runs_at_launch_and_it_sleeps_until_asked(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """A process that starts on request is built as the run starts, as any process is, then
    sleeps: its <build> never ran (its first request started it unbuilt), and a build that
    fails makes it FATAL with the reason, not a request's surprise."""
    built = tmp_path / "built"
    extra = f"<start>on-request</start><build>echo built >> {built}</build>"
    failing = "<start>on-request</start><build>exit 3</build>"
    path = write_manifest(
        process_xml("lazy", "/lazy/*", extra=extra), process_xml("broken", "/b/*", extra=failing)
    )
    async with running(path, socket_dir, wait=False) as run:
        pool = run.pool("lazy")
        assert await eventually(lambda: pool.sleeping, 10)
        assert built.read_text() == "built\n" and pool.instances == []
        async with run.http.get(run.url + "/lazy/pid") as reply:  # its first request starts it
            assert reply.status == 200
            assert int(await reply.text()) == run.child("lazy").pid
        assert built.read_text() == "built\n"  # (built once: not again as it wakes)
        assert await eventually(lambda: run.pool("broken").blocked is not None, 10)
        async with run.http.get(run.url + "/b/x") as reply:
            assert reply.status == 503
            assert "its <build> failed: exited with code 3" in (await reply.json())["error"]


async def test_a_wake_while_it_builds_is_answered_by_its_start_not_later(
    write_manifest: WriteManifest, socket_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`run` and `check --boot` wake every process as they begin: one started at launch
    that was still building took that wake for later, and started again at once each time
    its <idle_timeout> put it to sleep."""
    extra = "<build>sleep 0.2</build><idle_timeout>0.3s</idle_timeout>"
    path = write_manifest(process_xml("svc", "/svc/*", extra=extra))
    caplog.set_level(logging.INFO, logger="local_lambdas")
    async with running(path, socket_dir, wait=False) as run:
        pool = run.pool("svc")
        assert not pool.started  # (building)
        run.supervisor.wake_all()
        assert await eventually(lambda: pool.started, 10)
        assert await eventually(lambda: pool.sleeping, 10)  # idle: asleep
        assert pool.instances == [] and not pool.started
    starts = [r for r in caplog.records if r.getMessage().startswith("svc: starting;")]
    assert len(starts) == 1, caplog.text  # (not started again as it went to sleep)


async def test_asleep_when_idle_awake_on_demand(
    write_manifest: WriteManifest, socket_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    extra = (
        "<start>on-request</start><idle_timeout>0.3s</idle_timeout><stop_timeout>2s</stop_timeout>"
    )
    path = write_manifest(process_xml("lazy", "/lazy/*", extra=extra))
    caplog.set_level(logging.INFO, logger="local_lambdas")
    async with running(path, socket_dir) as run:
        pool = run.pool("lazy")
        pids = []
        for _ in range(3):
            async with load(run, "/lazy/x", clients=4) as result:
                assert await eventually(lambda: result.total >= 20)
            assert result.failures == []
            pid = run.child("lazy").pid
            assert pid is not None
            pids.append(pid)
            # Quiet: it goes to sleep, its process is stopped.
            assert await eventually(lambda: pool.sleeping, 10)
            assert await gone(pid)
        assert len(set(pids)) == 3  # each burst woke a new process
    # Said with its <idle_timeout>, not the microseconds the check happened to come at.
    assert "lazy: no request for 0.3s (<idle_timeout>): stopping" in caplog.text, caplog.text


@pytest.mark.parametrize("command", ["run", "check --boot"])
def test_run_and_check_boot_start_on_request_processes_once_to_prove_them(
    tmp_path: Path, command: str
) -> None:
    """Each process that starts on request is started once, and proved: one built first,
    or waiting for what it depends on, too (woken before it could sleep, it slept, and the
    command waited for it for good)."""
    on_request = "<start>on-request</start>"
    (tmp_path / "manifest.xml").write_text(
        "<manifest>"
        + process_xml("lazy", "/lazy/*", extra=on_request)
        + process_xml("built", "/built/*", extra=f"{on_request}<build>sleep 0.2</build>")
        + process_xml("after", "/after/*", extra=f"{on_request}<depends_on>eager</depends_on>")
        + process_xml("eager", "/eager/*")
        + "</manifest>"
    )  # fmt: skip
    check = (
        "import json, os, urllib.request\n"
        "url = os.environ['LOCAL_LAMBDAS_URL'] + '/_/status'\n"
        "processes = json.load(urllib.request.urlopen(url))['processes']\n"
        "states = {name: process['state'] for name, process in processes.items()}\n"
        "assert set(states.values()) == {'READY'}, states\n"
    )
    argv = ["run", "--", sys.executable, "-c", check] if command == "run" else ["check", "--boot"]
    done = run_command(*argv, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    if command == "check --boot":
        for name in ("lazy", "built", "after", "eager"):
            assert re.search(rf"{name} .*GET /{name} -> 200", done.stdout), done.stdout

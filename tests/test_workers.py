"""Processes nothing is routed to (<communication_mode>none</communication_mode>): a queue
worker, a watcher, beside the routed children, started, restarted and stopped as they are."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from local_lambdas.supervision.states import State
from tests.helpers import (
    CHILDREN,
    WriteManifest,
    eventually,
    gone,
    process_xml,
    running,
    worker_xml,
)


async def test_a_worker_runs_beside_the_routes_and_stops_with_them(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    said = tmp_path / "worker.json"
    path = write_manifest(
        process_xml("svc", "/api/*"),
        worker_xml(
            "queue", str(CHILDREN / "worker.py"), str(said), extra="<instances>2</instances>"
        ),
    )
    async with running(path, socket_dir) as run:
        workers = run.pool("queue").instances
        assert [w.state for w in workers] == [State.READY, State.READY]
        assert await eventually(said.exists, 10)
        facts = json.loads(said.read_text())
        assert facts["pid"] in {w.pid for w in workers}
        # Told who it is, and no address: it is to listen nowhere.
        env = facts["env"]
        assert env["LOCAL_LAMBDAS_ID"] in ("queue#1", "queue#2"), env
        assert env["PORT"] is env["HTTP_ADDRESS"] is env["PIPE_ADDRESS"] is None, env
        # It works on while the routes serve.
        jobs = Path(f"{said}.jobs")
        assert await eventually(lambda: jobs.exists() and len(jobs.read_text().split()) >= 3, 10)
        async with run.http.get(run.url + "/api/x") as reply:
            assert reply.status == 200
        async with run.http.get(run.url + "/_/status") as reply:
            status = (await reply.json())["processes"]["queue"]
        assert status["mode"] == "none" and status["routes"] == [], status
        assert [i["state"] for i in status["instances"]] == ["READY", "READY"], status
        assert [i["address"] for i in status["instances"]] == [None, None], status
        pids = [w.pid for w in workers]
    for pid in pids:
        assert pid is not None and await gone(pid)


async def test_a_worker_that_keeps_failing_is_given_up_on_and_the_routes_serve(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    failing = "import sys; print('no queue at redis://127.0.0.1:6379'); sys.exit(3)"
    path = write_manifest(
        process_xml("svc", "/api/*"),
        worker_xml("queue", "-c", failing, extra="<start_retries>1</start_retries>"),
    )
    async with running(path, socket_dir, wait=False) as run:
        worker = run.child("queue")
        assert await eventually(lambda: worker.state is State.FATAL, 10), worker.account()
        assert worker.restarts == 1
        assert worker.account(said=True) == (
            "FATAL: gave up after 2 failed starts in a row (<start_retries>: 1): exited with "
            "code 3; its last output: no queue at redis://127.0.0.1:6379"
        )
        assert await eventually(lambda: run.child("svc").state is State.READY, 10)
        async with run.http.get(run.url + "/api/x") as reply:
            assert reply.status == 200
        async with run.http.get(run.url + "/_/ready") as reply:  # the run is not all ready
            assert reply.status == 503


async def test_a_worker_that_keeps_ending_by_itself_is_told_it_is_a_task(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A one-off job written as a worker exits 0 again and again: once given up on, the
    reason says where such a program goes."""
    path = write_manifest(
        worker_xml("migrate", "-c", "print('migrated')", extra="<start_retries>1</start_retries>")
    )
    async with running(path, socket_dir, wait=False) as run:
        job = run.child("migrate")
        assert await eventually(lambda: job.state is State.FATAL, 10), job.account()
        assert job.reason == (
            "gave up after 2 failed starts in a row (<start_retries>: 1): exited with code 0; "
            "a program that ends by itself (a migration, a build) is a <task>, run once before "
            "what depends on it; a worker that may finish takes <restart>on-failure</restart>"
        )


async def test_a_worker_is_replaced_in_its_place_never_beside_itself(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """A restart (a reload, --watch) stops the running copy before the new one starts: two
    copies of a scheduler would both fire. The worker finds out by the lock it takes."""
    said = tmp_path / "worker.json"
    path = write_manifest(worker_xml("beat", str(CHILDREN / "worker.py"), str(said)))
    async with running(path, socket_dir) as run:
        assert await eventually(said.exists, 10)
        first = json.loads(said.read_text())
        assert first["alone"] is True
        said.unlink()
        assert await run.supervisor.restart("beat")
        assert await eventually(said.exists, 10)
        second = json.loads(said.read_text())
        assert second["pid"] != first["pid"] and second["alone"] is True, second
        assert await gone(first["pid"])


async def test_a_worker_a_reload_puts_back_as_it_stops_waits_for_its_old_copy(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """A worker one reload removes stops after that reload is over (its job at hand, half a
    second); another reload that puts it back (an edit undone and saved again) starts the
    new copy once the old one has stopped, never beside it."""
    said = tmp_path / "worker.json"
    worker = worker_xml("beat", str(CHILDREN / "worker.py"), str(said))
    path = write_manifest(worker)
    async with running(path, socket_dir) as run:
        assert await eventually(said.exists, 10)
        first = json.loads(said.read_text())
        said.unlink()
        write_manifest(worker_xml("other", "-c", "import time; time.sleep(60)"))
        removing = asyncio.create_task(run.started.reload(True, []))
        assert await eventually(lambda: any(p.id == "beat" for p in run.supervisor.retiring))
        write_manifest(worker)
        await asyncio.wait_for(run.started.reload(True, []), 20)
        assert await eventually(said.exists, 10)
        second = json.loads(said.read_text())
        assert second["pid"] != first["pid"] and second["alone"] is True, second
        await asyncio.wait_for(removing, 10)


async def test_a_worker_whose_build_fails_at_a_restart_runs_on_saying_so(
    write_manifest: WriteManifest,
    socket_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Replaced in its place, a worker's <build> runs before the running copy stops: one
    that fails leaves that copy working (as a routed process's running instance serves
    on), and the next restart that builds replaces it, never two copies side by side."""
    build = f"<build>test ! -f {tmp_path / 'BROKEN'}</build>"
    path = write_manifest(worker_xml("w", "-c", "import time; time.sleep(60)", extra=build))
    async with running(path, socket_dir) as run:
        first = run.child("w").pid
        assert first is not None
        (tmp_path / "BROKEN").write_text("")
        assert not await run.supervisor.restart("w")
        assert "its <build> failed: exited with code 1" in run.supervisor.failed_replacements["w"]
        assert "w did not become ready" in caplog.text, caplog.text
        assert "; the running one stays" in caplog.text, caplog.text
        assert run.pool("w").blocked is None and run.child("w").pid == first
        assert run.child("w").state is State.READY
        (tmp_path / "BROKEN").unlink()
        assert await run.supervisor.restart("w")
        assert run.child("w").state is State.READY and run.child("w").pid != first
        assert await gone(first)

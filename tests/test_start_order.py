"""Start order: <depends_on> chains and diamonds, <task>s that must succeed first, failures
that keep their dependents from starting, and --only with what it depends on."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from local_lambdas import manifest
from local_lambdas.errors import ManifestError
from local_lambdas.supervision import start_order, tasks
from local_lambdas.supervision.states import State
from tests.helpers import (
    CHILDREN,
    PYTHON,
    WriteManifest,
    cli,
    eventually,
    process_xml,
    run_command,
    running,
)

BEHAVE = CHILDREN / "behave.py"


def task_xml(tid: str, code: str, *, needs: tuple[str, ...] = (), extra: str = "") -> str:
    deps = "".join(f"<depends_on>{n}</depends_on>" for n in needs)
    return (f"<task><id>{tid}</id><executable>{PYTHON}</executable><arg>-c</arg>"
            f"<arg>{code}</arg>{deps}{extra}</task>")  # fmt: skip


def needing(pid: str, route: str, *needs: str, marker: Path | None = None) -> str:
    """A pipe child that depends on `needs`; with `marker`, one that exits 1 unless that
    file exists when it starts (so a start before its task had finished shows as a restart)."""
    deps = "".join(f"<depends_on>{n}</depends_on>" for n in needs)
    if marker is None:
        return process_xml(pid, route, extra=deps)
    return (f"<process><id>{pid}</id><executable>sh</executable><arg>-c</arg>"
            f"<arg>test -f {marker} &amp;&amp; exec {PYTHON} {BEHAVE}</arg>"
            f"<route>{route}</route>{deps}</process>")  # fmt: skip


async def test_a_chain_starts_in_order(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "migrated"
    code = f"import time; time.sleep(0.3); open({str(marker)!r}, 'w').close(); print('migrated')"
    path = write_manifest(
        needing("web", "/web/*", "api"),
        needing("api", "/api/*", "migrate", marker=marker),
        task_xml("migrate", code),
    )
    async with running(path, socket_dir) as run:
        async with run.http.get(run.url + "/web/x") as reply:
            assert reply.status == 200
        assert run.supervisor.tasks["migrate"].state == "DONE"
        assert run.child("api").restarts == 0  # it never started before the marker existed
        assert "migrated" in run.supervisor.tasks["migrate"].output.lines


async def test_a_task_that_reads_its_input_sees_it_end(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A <task> (or <build>) that asks (apt-get without -y, "are you sure?") reads the end of
    its input and goes on, rather than waiting for ever for what no one will type; a
    process's input, by contrast, stays open (tests/test_wild_children.py)."""
    code = "import sys; print('read', repr(sys.stdin.read()))"
    path = write_manifest(
        task_xml("ask", code, extra="<timeout>10s</timeout>"), needing("api", "/api/*", "ask")
    )
    async with running(path, socket_dir) as run:
        assert run.supervisor.tasks["ask"].state == "DONE"
        assert "read ''" in run.supervisor.tasks["ask"].output.lines


async def test_a_stop_while_a_task_runs_stops_it_and_says_nothing_more(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """SIGTERM while a <task> runs and a process waits for it: the task's program is stopped
    with the rest, the process never starts, and no Python warning follows the stop (the
    waiting process's start was once left as a coroutine never awaited)."""
    pid_file = tmp_path / "task.pid"
    code = (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
            "print('migrating', flush=True); time.sleep(60)")  # fmt: skip
    path = write_manifest(needing("api", "/api/*", "migrate"), task_xml("migrate", code))
    async with cli(str(path)) as run:
        await run.expect(r"migrate\s+\| migrating")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    assert any(line.endswith("| stopped") for line in run.lines), run.lines
    assert not any("Warning" in line or "never awaited" in line for line in run.lines), run.lines
    assert not any("api: starting" in line for line in run.lines), run.lines
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


async def test_a_diamond_and_held_requests(write_manifest: WriteManifest, socket_dir: Path) -> None:
    path = write_manifest(
        task_xml("setup", "import time; time.sleep(0.5)"),
        needing("a", "/a/*", "setup"), needing("b", "/b/*", "setup"),
        needing("c", "/c/*", "a", "b"),
    )  # fmt: skip
    async with running(path, socket_dir, wait=False) as run:
        # Asked for at once: held while setup runs and a and b start, then answered.
        async with run.http.get(run.url + "/c/x") as reply:
            assert reply.status == 200
        assert all(run.pool(p).started for p in "abc")


async def test_a_failed_task_keeps_its_dependents_down(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(
        task_xml("migrate", "import sys; print('no database'); sys.exit(2)"),
        needing("api", "/api/*", "migrate"),
        process_xml("other", "/other/*"),
    )
    async with running(path, socket_dir, wait=False) as run:
        await run.supervisor.failed.wait()
        async with run.http.get(run.url + "/api/x") as reply:
            assert reply.status == 503
            error = (await reply.json())["error"]
        assert "api was not started: task migrate failed: exited with code 2" in error
        async with run.http.get(run.url + "/other/x") as reply:
            assert reply.status == 200  # the rest serves on
        async with run.http.get(run.url + "/_/status") as reply:
            status = await reply.json()
        assert status["tasks"]["migrate"]["state"] == "FAILED"
        assert status["tasks"]["migrate"]["last_output"] == ["no database"]
        assert run.pool("api").instances == []


async def test_a_task_over_its_timeout_fails(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(
        task_xml("slow", "import time; time.sleep(60)", extra="<timeout>0.5s</timeout>"),
        needing("api", "/api/*", "slow"),
    )
    async with running(path, socket_dir, wait=False) as run:
        await run.supervisor.failed.wait()
        assert "still running after 0.5s" in run.supervisor.tasks["slow"].reason


async def test_only_brings_what_it_depends_on(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(
        task_xml("setup", "pass"), needing("a", "/a/*", "setup"),
        needing("c", "/c/*", "a"), process_xml("other", "/other/*"),
    )  # fmt: skip
    async with running(path, socket_dir, only=("c",)) as run:
        async with run.http.get(run.url + "/c/x") as reply:
            assert reply.status == 200
        assert run.pool("a").started and not run.pool("other").started


@pytest.mark.parametrize(("command", "status", "says"), [
    (["run", "--", sys.executable, "-c", "print('ran')"], 3, "task migrate failed"),
    ([], 1, "stopping: task migrate failed"),
])  # fmt: skip
def test_a_failed_task_ends_the_command(
    tmp_path: Path, command: list[str], status: int, says: str
) -> None:
    (tmp_path / "manifest.xml").write_text(
        "<manifest>" + task_xml("migrate", "raise SystemExit(2)")
        + needing("api", "/api/*", "migrate") + "</manifest>"
    )  # fmt: skip
    done = run_command(*(command or ["--bind", "127.0.0.1:0"]), cwd=tmp_path)
    assert done.returncode == status, done.stdout + done.stderr
    assert says in done.stdout + done.stderr
    assert "ran" not in done.stdout.splitlines()


@pytest.mark.parametrize(("body", "says"), [
    (needing("a", "/a/*", "nope"), '<depends_on> "nope" is no process or task'),
    (needing("a", "/a/*", "b") + needing("b", "/b/*", "a"), "goes round in a circle: a -> b -> a"),
    (task_xml("t", "pass", needs=("t",)), "goes round in a circle: t -> t"),
    (task_xml("a", "pass") + process_xml("a", "/a/*"), '<id> "a" is already used'),
])  # fmt: skip
def test_dependency_mistakes_are_manifest_errors(tmp_path: Path, body: str, says: str) -> None:
    path = tmp_path / "manifest.xml"
    path.write_text(f"<manifest>{body}</manifest>")
    with pytest.raises(ManifestError) as caught:
        manifest.load(path, socket_dir=Path("/tmp/ll-x"), base=tmp_path, env_files=[])
    assert any(says in p.message for p in caught.value.problems), caught.value.problems


def test_a_missing_dependency_is_told_of_the_process_that_names_it(tmp_path: Path) -> None:
    """Two processes that share an id by mistake: the <depends_on> of the second is the
    second's problem, told once, at its line; not the first's too."""
    path = tmp_path / "manifest.xml"
    path.write_text("<manifest>\n" + process_xml("b", "/b/*") + "\n"
                    + needing("b", "/d/*", "zzz") + "\n</manifest>")  # fmt: skip
    with pytest.raises(ManifestError) as caught:
        manifest.load(path, socket_dir=Path("/tmp/ll-x"), base=tmp_path, env_files=[])
    missing = [p for p in caught.value.problems if '"zzz" is no process' in p.message]
    assert [p.line for p in missing] == [3]
    assert any('<id> "b" is already used' in p.message for p in caught.value.problems)


async def test_a_build_runs_before_the_first_start(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """It runs before the process's address is chosen: its line is the shell's to expand
    (never ours), and the process's <env>s that name an instance's values are not its own
    (they once had it, and so the process, wait for ever)."""
    marker = tmp_path / "built"
    build = (f'sleep 0.3 &amp;&amp; echo "[$AT] [${{BEYOND-none}}] [$KEPT] $$" > {marker}'
             " &amp;&amp; echo compiled")  # fmt: skip
    env = ('<env name="AT">${PIPE_ADDRESS}</env><env name="BEYOND">${AT}.x</env>'
           '<env name="KEPT">kept</env>')  # fmt: skip
    svc = needing("svc", "/s/*", marker=marker).replace(
        "</process>", f"{env}<build>{build}</build></process>"
    )
    path = write_manifest(svc)
    async with running(path, socket_dir) as run:
        async with run.http.get(run.url + "/s/x") as reply:
            assert reply.status == 200
        assert run.child("svc").restarts == 0  # it started after the build, not before
    assert re.fullmatch(r"\[\] \[none\] \[kept\] \d+\n", marker.read_text()), marker.read_text()


@pytest.mark.parametrize(("build", "raises", "says"), [
    ("echo broken; exit 3", False, "its <build> failed: exited with code 3"),
    # Whatever else goes wrong starting it fails it too, saying so, rather than leaving its
    # requests held to their queue timeout: here its build's run raises (a defect made by
    # hand: none is known).
    ("true", True, "svc was not started: RuntimeError: made to fail"),
])  # fmt: skip
async def test_a_failed_build_at_start_up_is_fatal(
    build: str, raises: bool, says: str, write_manifest: WriteManifest, socket_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    async def raising(*_: object, **__: object) -> None:
        raise RuntimeError("made to fail")

    if raises:
        monkeypatch.setattr(tasks.TaskRun, "run", raising)
    path = write_manifest(process_xml("svc", "/s/*", extra=f"<build>{build}</build>"))
    async with running(path, socket_dir, wait=False) as run:
        pool = run.pool("svc")
        assert await pool.wait_for(lambda: pool.blocked is not None, 20)
        async with run.http.get(run.url + "/s/x") as reply:
            assert reply.status == 503
            assert says in (await reply.json())["error"]


async def test_a_build_past_its_limit_is_stopped_saying_which_limit(
    write_manifest: WriteManifest, socket_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A <build> was stopped after the 5 minutes a <task> has by default, saying "(its
    <timeout>)": a cold build of a large project failed, and the message sent its user to
    the process's <timeout>, which bounds requests, not builds. A build has 30 minutes
    (here made short, as waiting them out cannot be), and its failure says which limit."""
    monkeypatch.setattr(start_order, "BUILD_TIMEOUT", 0.5)
    path = write_manifest(process_xml("svc", "/s/*", extra="<build>sleep 30</build>"))
    async with running(path, socket_dir, wait=False) as run:
        pool = run.pool("svc")
        assert await pool.wait_for(lambda: pool.blocked is not None, 20)
        said = "its <build> failed: still running after 0.5s (the longest a <build> may run)"
        assert said in (pool.blocked or ""), pool.blocked


async def test_a_reload_starts_what_it_adds_in_order_and_runs_the_tasks_it_adds(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """A reload (SIGHUP, a --watch edit of the manifest) that adds a process and one that
    depends on it, or a <task> and one that needs it: the dependent's wait looked for what
    it needs among the running pools only, and died on a KeyError, and the reload waited
    for it for good (holding every later reload and restart). Now each starts in its order,
    the task runs once, and a task that fails leaves its dependent unstarted without ending
    the run, until a reload runs it again."""
    seeded = tmp_path / "seeded"
    path = write_manifest(process_xml("a", "/a/*"))
    async with running(path, socket_dir) as run:
        write_manifest(
            process_xml("a", "/a/*"),
            process_xml("c", "/c/*"), needing("d", "/d/*", "c"),
            task_xml("seed", f"open({str(seeded)!r}, 'w').close()"),
            needing("e", "/e/*", "seed", marker=seeded),
            task_xml("broken", "raise SystemExit(4)"), needing("f", "/f/*", "broken"),
        )  # fmt: skip
        await asyncio.wait_for(run.started.reload(True, []), 30)
        for name in "acde":
            assert run.pool(name).state is State.READY, (name, run.pool(name).why_not_ready())
        assert run.child("e").restarts == 0  # (started once the task had run)
        assert run.supervisor.tasks["seed"].state == "DONE" and seeded.exists()
        # A new process never started answers 503 saying why, as at start-up (not 404).
        said = run.supervisor.failed_replacements["f"]
        assert said == "FATAL: f was not started: task broken failed: exited with code 4", said
        async with run.http.get(run.url + "/f/x") as reply:
            assert reply.status == 503
            assert "task broken failed: exited with code 4" in (await reply.json())["error"]
        assert not run.supervisor.failed.is_set()  # (the run goes on)
        # The next reload is not held up, runs no task that ran again, and gives the one
        # that failed, fixed, another go: what needs it starts then.
        seeded.unlink()
        write_manifest(
            process_xml("a", ["/a/*", "/a2/*"]), process_xml("c", "/c/*"),
            task_xml("seed", f"open({str(seeded)!r}, 'w').close()"),
            task_xml("broken", "pass"), needing("f", "/f/*", "broken"),
        )  # fmt: skip
        await asyncio.wait_for(run.started.reload(True, []), 30)
        assert run.pool("a").state is State.READY and not seeded.exists()
        assert run.supervisor.tasks["broken"].state == "DONE"
        assert run.pool("f").state is State.READY, run.pool("f").why_not_ready()


async def test_a_dependent_waits_for_what_replaced_the_process_it_waited_for(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """d waits for c, which is slow to start; a reload replaces c (its fix saved, say) while
    d still waits: d goes on to wait for the new c, and starts once it is ready, rather
    than be given up on (or wait on the old one, which never will be)."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)  # (never opened for writing: the first c never listens)
    slow = "<startup_timeout>60s</startup_timeout>"
    gated = process_xml("c", "/c/*", script="gated.py", args=(str(gate),), extra=slow)
    path = write_manifest(gated, needing("d", "/d/*", "c"))
    async with running(path, socket_dir, wait=False) as run:
        assert await eventually(lambda: bool(run.pool("c").instances), 10)
        write_manifest(process_xml("c", "/c/*"), needing("d", "/d/*", "c"))
        await asyncio.wait_for(run.started.reload(True, []), 30)
        assert await run.pool("d").wait_ready(20), run.pool("d").why_not_ready()
        assert not run.supervisor.failed.is_set() and run.pool("c").state is State.READY


def test_check_boot_reports_a_failed_task(tmp_path: Path) -> None:
    (tmp_path / "manifest.xml").write_text(
        "<manifest>" + task_xml("migrate", "raise SystemExit(2)")
        + needing("api", "/api/*", "migrate") + process_xml("other", "/other/*") + "</manifest>"
    )  # fmt: skip
    done = run_command("check", "--boot", "--ready-timeout", "20", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "task migrate failed: exited with code 2" in done.stdout
    assert "other" in done.stdout and "GET /other -> 200" in done.stdout


async def test_the_serving_table_waits_for_what_starts_after_a_build_or_its_needs(
    write_manifest: WriteManifest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The table of what serves what comes once every process is ready: with a <build>, or
    a <depends_on>, it came at once, empty or without them, and never again. It lists
    every process: one asleep until its first request, or whose build failed, was left
    out."""
    gate = tmp_path_factory.mktemp("gate") / "go"
    build = f"<build>until [ -e {gate} ]; do sleep 0.05; done</build>"
    path = write_manifest(
        process_xml("a", "/a/*", extra=build), needing("b", "/b/*", "a"),
        process_xml("c", "/c/*", extra="<start>on-request</start>"),
        process_xml("d", "/d/*", extra="<build>exit 3</build>"),
    )  # fmt: skip
    async with cli(str(path), "--bind", "127.0.0.1:0") as run:
        await run.expect(r"a build: running")
        gate.write_text("")
        await run.expect(r"b: ready")
        await run.expect(r"^serving on ")
        for pid, state in ("a", "READY"), ("b", "READY"), ("c", "IDLE"), ("d", "FATAL"):
            await run.expect(rf"^\s+/{pid}/\*\s+{pid}\s.*{state}")  # in the manifest's order
        run.proc.send_signal(signal.SIGINT)
        assert await run.finish() == 0
    assert sum(line.startswith("serving on ") for line in run.lines) == 1, run.lines

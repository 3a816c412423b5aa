"""--watch end to end: a saved file restarts the process that owns it (after its build),
the manifest followed by its content, and nothing else sets a restart off: the proxy's own
output, a restart's or a build's writes, tools' hidden folders, a file written again as it
was."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from local_lambdas import _compat
from tests.helpers import (
    CHILDREN,
    PYTHON,
    WAIT,
    Cli,
    WriteManifest,
    alive,
    cli,
    compiles_again,
    eventually,
    git,
    gone,
    process_xml,
    processes_running,
    worker_xml,
)


async def test_watch_restarts_the_process_whose_files_changed(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    workdir = tmp_path / "svc"
    workdir.mkdir()
    path = write_manifest(
        process_xml("svc", "/api/*", extra=f"<working_dir>{workdir}</working_dir>")
    )
    async with cli(str(path), "--bind", "127.0.0.1:0", "--watch", "--watch-ignore", "*.log") as run:
        await run.expect(r"svc: ready")
        await run.expect(r"watching ")
        (workdir / "ignored.log").write_text("noise\n")
        (workdir / "handler.py").write_text("# changed\n")
        await run.expect(r"files changed: restarting svc")
        await run.expect(r"reloaded: 1 started, 0 kept, 1 stopped")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    restarts = [line for line in run.lines if "files changed" in line]
    assert len(restarts) == 1, restarts  # two writes, one restart


def _without_dac_override() -> None:
    """In the child before it runs the proxy: root as a user is, without the capabilities
    that read any folder (dropped from the bounding set, which root's next program's
    capabilities come from)."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="needs Linux and root, to be a user another user's folder is closed to",
)
async def test_watch_goes_on_past_a_folder_it_may_not_read(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """A database's folder inside the project (a container's bind mount, owned by its user
    with mode 0700) made --watch give up on the whole working_dir: "Permission denied":
    files there no longer restart anything. The folder is left out; the rest is watched."""
    workdir = tmp_path / "svc"
    (workdir / "pgdata" / "base").mkdir(parents=True)
    os.chown(workdir / "pgdata", 999, 999)  # (postgres's uid in its image)
    (workdir / "pgdata").chmod(0o700)
    path = write_manifest(
        process_xml("svc", "/api/*", extra=f"<working_dir>{workdir}</working_dir>")
    )
    flags = ("--bind", "127.0.0.1:0", "--watch")
    async with cli(str(path), *flags, preexec=_without_dac_override) as run:
        await run.expect(r"svc: ready")
        await run.expect(r"watching ")
        (workdir / "handler.py").write_text("# changed\n")
        await run.expect(r"files changed: restarting svc")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    assert not any("cannot watch" in line for line in run.lines), run.lines


async def test_watch_follows_the_manifest_by_its_content(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """Saved as sed -i and editors save (a new file renamed over the old one), in the folder
    that is also the children's working directory."""
    path = write_manifest(
        process_xml("a", "/a/*"), process_xml("b", "/b/*", extra="<stop_timeout>3s</stop_timeout>")
    )
    async with cli(path.name, "--bind", "127.0.0.1:0", "--watch", cwd=tmp_path) as run:
        await run.expect(r"a: ready .*\(pid (\d+)")
        await run.expect(r"b: ready")
        await run.expect(r"watching ")
        for edit in ("s/x/x/", "s#<stop_timeout>3s#<stop_timeout>4s#"):  # the same text, then b's
            sed = await asyncio.create_subprocess_exec("sed", "-i", edit, str(path))
            assert await sed.wait() == 0
        await run.expect(r"reloaded: 1 started, 1 kept, 1 stopped")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    assert len([line for line in run.lines if "reloading" in line]) == 1, run.lines
    assert not any("files changed" in line for line in run.lines), run.lines


async def test_watch_follows_a_manifest_link_and_the_file_it_points_to(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """`ln -sfn dev.xml manifest.xml` switches manifests; the proxy reads the link's new
    target, then follows that file's edits, none of which restarts a child for its files."""
    first = write_manifest(process_xml("a", "/a/*"), name="first.xml")
    second = write_manifest(process_xml("b", "/b/*"), name="second.xml")
    link = tmp_path / "manifest.xml"
    link.symlink_to(first.name)
    async with cli(link.name, "--bind", "127.0.0.1:0", "--watch", cwd=tmp_path) as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        await run.expect(rf"kill -HUP {run.proc.pid} reloads manifest\.xml")
        await run.expect(r"watching ")
        swap = await asyncio.create_subprocess_exec("ln", "-sfn", second.name, str(link))
        assert await swap.wait() == 0
        await run.expect(r"reloaded: 1 started, 0 kept, 1 stopped")
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/b/x") as reply:
                assert reply.status == 200
            async with http.get(url + "/a/x") as reply:
                assert reply.status == 404
        write_manifest(process_xml("b", "/b/*"), process_xml("c", "/c/*"), name="second.xml")
        await run.expect(r"reloaded: 1 started, 1 kept, 0 stopped")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    assert len([line for line in run.lines if "reloading" in line]) == 2, run.lines
    assert not any("files changed" in line for line in run.lines), run.lines


async def test_watch_never_reacts_to_the_proxys_own_output(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    path = write_manifest(process_xml("svc", "/api/*"))
    out = tmp_path / "dev.out"  # not *.log, which is ignored anyway
    with out.open("w") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "local_lambdas", path.name, "--bind", "127.0.0.1:0",
            "--watch", cwd=tmp_path, stdout=sink, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        assert await eventually(lambda: "watching " in out.read_text(), 20)
        url = re.search(r"listening on (http://\S+)", out.read_text())
        assert url is not None
        async with aiohttp.ClientSession() as http:
            for _ in range(20):  # each one writes an access line to dev.out
                async with http.get(url.group(1) + "/api/x") as reply:
                    assert reply.status == 200
        # Its own lines must set nothing off: no restart within several debounce periods
        # (the old code restarted about six times a second here).
        assert not await eventually(lambda: "files changed" in out.read_text(), 2)
        (tmp_path / "handler.py").write_text("# a real change\n")
        assert await eventually(lambda: "reloaded: 1 started" in out.read_text(), 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), WAIT)
    restarts = [line for line in out.read_text().splitlines() if "files changed" in line]
    assert len(restarts) == 1, restarts


@contextlib.asynccontextmanager
async def watching(path: Path, cwd: Path, *more: str) -> AsyncIterator[tuple[Cli, int]]:
    """`local-lambdas --watch` on `path`, run from `cwd`, once its process `svc` is ready (its
    pid given) and the files are watched; stopped at the block's end with SIGTERM, which
    must end it cleanly."""
    async with cli(path.name, "--bind", "127.0.0.1:0", "--watch", *more, cwd=cwd) as run:
        first = int((await run.expect(r"svc: ready .*\(pid (\d+)")).group(1))
        await run.expect(r"watching ")
        yield run, first
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0


async def test_watch_builds_before_a_restart_and_keeps_serving_when_it_fails(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    (tmp_path / "BUILD_OK").write_text("")
    build = "echo building; test -f BUILD_OK"
    path = write_manifest(process_xml("svc", "/api/*", extra=f"<build>{build}</build>"))
    async with watching(path, tmp_path, "--watch-include", "*.go") as (run, first):
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        assert any(line.startswith("svc build") and "building" in line for line in run.lines)
        # Not *.go: not watched, so no restart within several debounce periods.
        (tmp_path / "notes.txt").write_text("x")
        (tmp_path / "main.go").write_text("package main // 1\n")
        await run.expect(r"files changed: restarting svc")
        second = int((await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")).group(1))
        assert second != first
        # A build that fails: the running instance keeps serving.
        (tmp_path / "BUILD_OK").unlink()
        (tmp_path / "main.go").write_text("package main // 2\n")
        await run.expect(r"svc build: task failed")
        await run.expect(r"reload: svc did not become ready .*its <build> failed.*the running one")
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/api/pid") as reply:
                assert reply.status == 200 and int(await reply.text()) == second
    assert len([line for line in run.lines if "files changed" in line]) == 2, run.lines


async def test_watch_is_not_set_off_by_what_its_own_restart_writes(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    # A <build> that writes into the folder watched, as `go build -o server .` does, and a
    # child's database beside its code.
    build = "cat main.src > server.out; date > built.txt"
    path = write_manifest(process_xml("svc", "/api/*", extra=f"<build>{build}</build>"))
    (tmp_path / "main.src").write_text("1")
    async with watching(path, tmp_path) as (run, first):
        (tmp_path / "db.sqlite3").write_text("rows")
        (tmp_path / "main.src").write_text("2")
        await run.expect(r"files changed: restarting svc \(main.src\)$")
        second = (await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")).group(1)
        # Its build's output sets nothing off: no restart within several debounce periods
        # (the old code restarted about five times a second here, for ever).
        assert not await eventually(
            lambda: sum("files changed" in line for line in run.lines) > 1, 2
        )
        (tmp_path / "main.src").write_text("3")  # and the next edit restarts it again
        await run.expect(rf"svc: ready .*\(pid (?!{first},|{second},)(\d+)")
    assert (tmp_path / "server.out").read_text() == "3"
    assert sum("files changed" in line for line in run.lines) == 2, run.lines


async def test_watch_is_not_set_off_by_what_the_first_build_writes(
    write_manifest: WriteManifest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The run's first <build> writes into the folder watched once watching has begun (a
    slow `go build -o server .`): that restarted the process once as it first started."""
    gate = tmp_path_factory.mktemp("gate") / "go"  # (outside the folder watched)
    build = f"until [ -e {gate} ]; do sleep 0.05; done; date > built.txt"
    path = write_manifest(process_xml("svc", "/api/*", extra=f"<build>{build}</build>"))
    async with cli(path.name, "--bind", "127.0.0.1:0", "--watch", cwd=tmp_path) as run:
        await run.expect(r"watching ")
        gate.write_text("")
        first = (await run.expect(r"svc: ready .*\(pid (\d+)")).group(1)
        assert (tmp_path / "built.txt").exists()
        (tmp_path / "main.src").write_text("an edit")  # the first change it acts on
        assert (await run.expect(r"files changed: .*")).group(0).endswith("svc (main.src)")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    assert sum("files changed" in line for line in run.lines) == 1, run.lines


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
async def test_watch_sees_a_second_edit_saved_while_the_first_ones_build_runs(
    write_manifest: WriteManifest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A second file saved while the <build> the first set off runs (a slow `go build`) is
    an edit when git tracks it: it was taken for the build's output, and the server ran
    without it until the next save. What the build writes (untracked) still restarts
    nothing."""
    gate = tmp_path_factory.mktemp("gate")  # (outside the folder watched)
    build = (
        f"touch {gate}/building; until [ ! -e {gate}/hold ]; do sleep 0.05; done; "
        "cat main.src handler.src > server.out"
    )
    path = write_manifest(process_xml("svc", "/api/*", extra=f"<build>{build}</build>"))
    for name in ("main.src", "handler.src"):
        (tmp_path / name).write_text("1")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "main.src", "handler.src")
    async with watching(path, tmp_path) as (run, first):
        (gate / "hold").write_text("")
        (gate / "building").unlink()
        (tmp_path / "main.src").write_text("2")
        await run.expect(r"files changed: restarting svc \(main.src\)$")
        assert await eventually((gate / "building").exists, WAIT)
        (tmp_path / "handler.src").write_text("2")  # while the build runs
        (gate / "hold").unlink()
        await run.expect(r"files changed: restarting svc \(handler.src\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")
        assert not await eventually(
            lambda: sum("files changed" in line for line in run.lines) > 2, 2
        )
    assert (tmp_path / "server.out").read_text() == "22"


@pytest.mark.skipif(not _compat.IS_LINUX, reason="work is measured from /proc")
async def test_watch_starts_anew_when_a_file_is_saved_again_while_its_replacement_compiles(
    write_manifest: WriteManifest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A typo fixed while the first save's replacement compiles: the reload waited for that
    replacement (3.5 s here, minutes for a large `cargo run`), then restarted for the second
    save and compiled again. The wait for the older one is cut short, and the newer starts
    at once; the running one serves meanwhile."""
    path = write_manifest(compiles_again(tmp_path_factory.mktemp("compiler")))
    code = tmp_path / "main.src"
    code.write_text("1")
    async with watching(path, tmp_path) as (run, first):
        code.write_text("2")
        await run.expect(r"files changed: restarting svc \(main.src\)$")
        await run.expect(r"svc: starting; ready once")  # its replacement compiles
        code.write_text("3")
        said = "its file was saved again as it started; the newer one starts instead"
        await run.expect(rf"reload: svc: {said}")
        await run.expect(r"files changed: restarting svc \(main.src\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")
    starts = [line for line in run.lines if "svc: starting" in line]
    assert len(starts) == 3, run.lines  # the first, the one cut short, the newer one


async def test_watch_leaves_a_process_that_reloads_itself_alone(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """A Vite dev server (or nodemon, uvicorn --reload) reloads itself as its files change:
    --watch restarted it too, for every save, so the page lost its hot update and the
    server was down while it started again. <watch>off</watch> leaves it alone, and its
    files restart no other process; a change to the manifest's other processes still does.
    One whose command says it reloads itself (here a --reload the child ignores) but whose
    <watch> is on is named at the start, with the fix."""
    web = tmp_path / "web"
    web.mkdir()
    path = write_manifest(
        process_xml("svc", "/api/*", args=("--reload",)),
        process_xml("web", "/web/*", args=("--reload",),
                    extra=f"<working_dir>{web}</working_dir><watch>off</watch>"),
    )  # fmt: skip
    async with watching(path, tmp_path) as (run, first):
        advised = [line for line in run.lines if "reloads it as its files change" in line]
        assert len(advised) == 1 and advised[0].startswith("local-lambdas | svc: `"), run.lines
        assert advised[0].endswith(
            "behave.py --reload` reloads it as its files change, and --watch would restart it "
            "too, cutting that reload short; add <watch>off</watch> to its <process> to leave "
            "its reloading to it"
        )
        (web / "main.js").write_text("console.log('saved')\n")  # the dev server's own file
        (tmp_path / "handler.src").write_text("changed")
        await run.expect(r"files changed: restarting svc \(handler.src\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")
        assert not await eventually(
            lambda: any("restarting web" in line for line in run.lines), 1
        ), run.lines


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
async def test_watch_follows_a_git_checkout_of_the_code_and_the_manifest(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """`git checkout` (or `git pull`) deletes each file it changes and writes it anew: in
    one batch of changes, the file went and came back, which was taken for a temporary
    file written and renamed: a branch switch that changed the code and the manifest was
    not seen at all. It restarts the process and reloads the manifest, once."""
    code = tmp_path / "handler.src"
    code.write_text("1")
    path = write_manifest(process_xml("svc", "/api/*"))
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    who = ("-c", "user.name=t", "-c", "user.email=t@example.com")  # (CI may have none)
    git(tmp_path, *who, "commit", "-qm", "one")
    git(tmp_path, "checkout", "-qb", "two")
    code.write_text("2")
    write_manifest(process_xml("svc", ["/api/*", "/v2/*"]))
    git(tmp_path, *who, "commit", "-qam", "two")
    git(tmp_path, "checkout", "-q", "main")
    async with watching(path, tmp_path) as (run, first):
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        git(tmp_path, "checkout", "-q", "two")
        await run.expect(r"reloading ")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)(\d+)")
        await run.expect(r"reloaded: 1 started")
        async with aiohttp.ClientSession() as http, http.get(url + "/v2/x") as reply:
            assert reply.status == 200
        assert not await eventually(lambda: sum("reloading" in line for line in run.lines) > 1, 1)


async def test_watch_sees_an_edit_while_a_child_hangs_as_its_dependent_waits(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """An edit while the run's first start is held up (a child that never listens, which
    another depends on) restarts it: the fix saved meanwhile was lost when everything until
    the first start was over counted as its own doing."""
    hangs = (
        f"<process><id>hangs</id><executable>{PYTHON}</executable><arg>-S</arg><arg>-c</arg>"
        "<arg>import time; time.sleep(60)</arg><route>/h/*</route>"
        "<communication_mode>http</communication_mode>"
        "<startup_timeout>60s</startup_timeout></process>"
    )
    path = write_manifest(
        hangs, process_xml("after", "/a/*", extra="<depends_on>hangs</depends_on>")
    )
    async with cli(path.name, "--bind", "127.0.0.1:0", "--watch", cwd=tmp_path) as run:
        await run.expect(r"watching ")
        await run.expect(r"hangs: starting")
        (tmp_path / "fix.src").write_text("the fix")
        assert (await run.expect(r"files changed: .*")).group(0).endswith("hangs (fix.src)")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0


async def test_watch_is_not_set_off_by_what_a_starting_worker_writes(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """A worker (mode none) that writes as it starts (a generator's output, a scheduler's
    state: here a stamp, new bytes each time) wrote after it was READY, which a worker was
    as soon as it ran: each restart's write set off the next, for ever (22 restarts in 7 s).
    It is READY once it has run a moment, so the write is its restart's doing."""
    generate = (
        "import os, sys, time\n"
        "time.sleep(0.2)\n"
        "if os.path.exists('go'):\n"
        "    open('out.txt', 'w').write(str(time.time()))\n"
        "print('generated', flush=True)\n"
        "while True: time.sleep(1)\n"
    )
    (tmp_path / "gen.py").write_text(generate)
    path = write_manifest(worker_xml("svc", "gen.py"))
    async with watching(path, tmp_path) as (run, first):
        (tmp_path / "go").write_text("")  # an edit: the next start writes its output
        await run.expect(r"files changed: restarting svc \(go\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first};)(\d+)")
        assert await eventually((tmp_path / "out.txt").exists, 5)
        # Its output sets nothing off: no restart within several debounce periods.
        assert not await eventually(
            lambda: sum("files changed" in line for line in run.lines) > 1, 2
        ), run.lines


async def test_watch_is_not_set_off_by_what_tools_write_in_hidden_folders(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """Next.js's dev server writes .next/ as it compiles a page, long after it started (it
    restarted for ever, outside a git repository); an editor writes .vscode/. A hidden
    file beside the code (.flaskenv) is the program's and restarts it."""
    path = write_manifest(process_xml("svc", "/api/*"))
    for folder in (".next/server", ".vscode"):
        (tmp_path / folder).mkdir(parents=True)
    async with watching(path, tmp_path) as (run, first):
        (tmp_path / ".next/server/pages-manifest.json").write_text("{}")
        (tmp_path / ".vscode/settings.json").write_text("{}")
        (tmp_path / ".flaskenv").write_text("FLASK_DEBUG=1")
        await run.expect(r"files changed: restarting svc \(\.flaskenv\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)")
    assert sum("files changed" in line for line in run.lines) == 1, run.lines


async def test_watch_is_not_set_off_by_a_virtualenv_whatever_its_name(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """`python -m venv venv` (the Python documentation's name; watchfiles knows `.venv`) or
    any other name in the working_dir, then `pip install` into it, restarted the child at
    each batch of files written: a folder holding a pyvenv.cfg is a virtualenv, whatever its
    name, and the program's code is not there; one there as watching began is one still as
    `rm -rf` removes it (its pyvenv.cfg among the first files gone)."""
    path = write_manifest(process_xml("svc", "/api/*"))
    before = tmp_path / "old-env"  # there as watching begins, then removed to be made anew
    made = await asyncio.create_subprocess_exec(PYTHON, "-m", "venv", "--without-pip", before)
    assert await made.wait() == 0
    async with watching(path, tmp_path) as (run, first):
        for name in ("venv", "my-env"):
            venv = tmp_path / name
            made = await asyncio.create_subprocess_exec(PYTHON, "-m", "venv", "--without-pip", venv)
            assert await made.wait() == 0
            (venv / "lib" / "installed.py").write_text("x = 1")  # as pip install writes
        shutil.rmtree(before)
        (tmp_path / "main.py").write_text("print()")
        await run.expect(r"files changed: restarting svc \(main.py\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)")
    assert sum("files changed" in line for line in run.lines) == 1, run.lines


async def test_watch_is_not_set_off_by_a_virtualenvs_folders_made_before_its_mark(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """On a busy machine the folders `python -m venv` makes came in a batch of their own,
    before the pyvenv.cfg that marks them a virtualenv, and restarted the child: a folder
    is no edit until a file lies in it (as `mkdir -p` makes). A second process, in a folder
    of its own, is restarted by a file there to know what came before has been read."""
    marker = tmp_path / "marker"
    marker.mkdir()
    path = write_manifest(
        process_xml("svc", "/api/*"),
        worker_xml("mark", "-c", "import time; time.sleep(60)",
                   extra=f"<working_dir>{marker}</working_dir>"),
    )  # fmt: skip

    async def read_up_to_here() -> None:
        (marker / "poke.txt").write_text(str(time.time()))  # (an edit: it restarted mark)
        await run.expect(r"files changed: restarting .*\(poke.txt")
        await run.expect(r"reloaded: ")

    async with watching(path, tmp_path) as (run, _):
        await run.expect(r"mark: ready")
        slow = tmp_path / "slow-env"
        (slow / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
        await read_up_to_here()  # the folders read alone, or with the poke
        (slow / "pyvenv.cfg").write_text("home = /usr/bin\n")
        (slow / "lib" / "installed.py").write_text("x = 1")
        await read_up_to_here()
    assert not any(re.search(r"restarting .*\bsvc\b", line) for line in run.lines), run.lines


async def test_watch_is_not_set_off_by_a_file_written_again_as_it_was(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """`tsc -w` beside `node --watch dist/index.js` writes its output as it starts, after its
    server is ready: each start's rewrite restarted it, for ever. A file written again with
    the bytes it held is no edit; written with others, it is one (once)."""
    # As tsc -w: the output written again a moment after the server listens, and after its
    # restart is over (the old instance stopped: what changes before is the restart's own
    # doing, watch/edits.py's Doings), with room for a loaded machine's slow stop.
    serve = f"{PYTHON} {CHILDREN / 'behave.py'}"
    compile_ = f"(sleep 1; cp main.src built.out; echo compiled) &amp; exec {serve}"
    path = write_manifest(
        "<process><id>svc</id><executable>sh</executable><arg>-c</arg>"
        f"<arg>{compile_}</arg><route>/api/*</route></process>"
    )
    for name in ("main.src", "built.out"):
        (tmp_path / name).write_text("1")
    async with watching(path, tmp_path) as (run, first):
        await run.expect(r"svc +\| compiled")  # the same bytes: no restart
        (tmp_path / "main.src").write_text("2")
        await run.expect(r"files changed: restarting svc \(main.src\)$")
        await run.expect(rf"svc: ready .*\(pid (?!{first},)")
        # Its next start compiles "2" anew: one restart for it, then none.
        await run.expect(r"files changed: restarting svc \(built.out\)$")
        assert not await eventually(
            lambda: sum("files changed" in line for line in run.lines) > 2, 2
        )
    assert sum("files changed" in line for line in run.lines) == 2, run.lines


async def test_watch_leaves_a_process_not_started_alone(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """With --only, a change in the folder of a process not started restarts nothing (it
    said "restarting b" and counted b's new, unstarted pool as started)."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    path = write_manifest(
        process_xml("a", "/a/*", extra="<working_dir>a</working_dir>"),
        process_xml("b", "/b/*", extra="<working_dir>b</working_dir>"),
    )
    args = (path.name, "--bind", "127.0.0.1:0", "--watch", "--only", "a")
    async with cli(*args, cwd=tmp_path) as run:
        await run.expect(r"a: ready")
        await run.expect(r"watching ")
        (tmp_path / "b" / "b.txt").write_text("x")  # first: seen in the same batch, or before
        (tmp_path / "a" / "a.txt").write_text("x")
        await run.expect(r"files changed: restarting a \(")
        run.proc.send_signal(signal.SIGTERM)
        assert await run.finish() == 0
    restarts = [line for line in run.lines if "files changed" in line]
    assert len(restarts) == 1 and "restarting a (" in restarts[0], restarts


@pytest.mark.parametrize("kind", ["routed", "worker"])
async def test_a_stop_during_a_rebuild_stops_the_build_and_starts_nothing(
    write_manifest: WriteManifest, tmp_path: Path, kind: str
) -> None:
    """A worker's rebuild runs while its running copy works on (reloads.py: built ahead of
    the stop that makes room for its replacement); a stop ends it the same way."""
    # The rebuild a change sets off is a long one; the comment names its shell's process.
    marker = f"build-{os.getpid()}-{time.monotonic_ns()}"
    build = f"<build>test ! -f SLOW || {{ echo slow build; sleep 60; }} # {marker}</build>"
    sleeps = ("-c", "import time; time.sleep(60)")
    process = (
        process_xml("svc", "/api/*", extra=build)
        if kind == "routed"
        else worker_xml("svc", *sleeps, extra=build)
    )
    path = write_manifest(process)
    async with cli(path.name, "--bind", "127.0.0.1:0", "--watch", cwd=tmp_path) as run:
        running = int((await run.expect(r"svc: ready .*\(pid (\d+)")).group(1))
        await run.expect(r"watching ")
        (tmp_path / "SLOW").write_text("")
        await run.expect(r"svc build +\| slow build")
        assert processes_running(marker) and alive(running)  # (a worker too works on)
        run.proc.send_signal(signal.SIGINT)
        # Within WAIT (20 s), not after the build's 60 s (the old code waited for it, then
        # started the new instance, then stopped it).
        assert await run.finish() == 0
    stopping = next(i for i, line in enumerate(run.lines) if "stopping:" in line)
    assert not any("svc: starting" in line for line in run.lines[stopping:]), run.lines
    assert not processes_running(marker) and await gone(running)


def test_what_watch_include_lets_through(tmp_path: Path) -> None:
    from watchfiles import Change

    from local_lambdas.watch.paths import Filter

    manifest = tmp_path / "manifest.xml"
    only_go = Filter((), tmp_path / "sockets", ["*.go"], manifest)
    for path, passed in ((tmp_path / "main.go", True), (tmp_path / "notes.txt", False),
                         (manifest, True), (tmp_path / ".env", True),
                         (tmp_path / "server.log", False)):  # fmt: skip
        assert only_go(Change.modified, str(path)) is passed, path
    everything = Filter((), tmp_path / "sockets", [], manifest)
    assert everything(Change.modified, str(tmp_path / "notes.txt"))

"""--watch's decisions (watch/): which change is an edit, which process owns it, what is never
watched, and what a watch that cannot follow says."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator
from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.helpers import eventually, git

# What imports watchfiles (watch/paths.py, watcher.py) needs it; only --watch loads it, and the
# Windows lane has none (Wine lacks a call its Rust build makes). What judges edits does not.
NEEDS_WATCHFILES = pytest.mark.skipif(
    find_spec("watchfiles") is None, reason="watchfiles is not installed (only --watch needs it)"
)


@NEEDS_WATCHFILES
def test_watched_change_restarts_the_deepest_owner() -> None:
    from pathlib import Path

    from local_lambdas.watch.paths import affected
    from local_lambdas.watch.paths import named as logged

    root, api = Path("/p"), Path("/p/api")
    dirs = {"root": root, "api": api, "also-api": api}
    assert affected({Path("/p/api/x.py")}, root / "m.xml", dirs) == (False, ["also-api", "api"])
    assert affected({Path("/p/web/y.js")}, root / "m.xml", dirs) == (False, ["root"])
    assert affected({root / "m.xml"}, root / "m.xml", dirs) == (True, [])
    assert affected({Path("/elsewhere")}, root / "m.xml", dirs) == (False, [])
    # <watch>off</watch>: its files are its own still, and restart nobody.
    web = {"root": root, "web": Path("/p/web")}
    assert affected({Path("/p/web/y.js")}, root / "m.xml", web, {"web"}) == (False, [])
    assert affected({Path("/p/x.py")}, root / "m.xml", web, {"web"}) == (False, ["root"])
    named = {"root": root, "api": api}
    assert logged({Path("/p/api/x.py")}, named) == "x.py"  # in the deepest working dir
    assert logged({api}, named) == "api/"  # the working dir itself (gone, or back), not "."
    assert logged({Path("/p/web/y.js"), Path("/p/api/x.py")}, named) == "x.py +1 more"


async def test_a_file_written_again_as_it_was_is_no_edit(tmp_path: Path) -> None:
    from local_lambdas.watch.edits import Contents

    names = ("same", "other", "gone", "big", "hidden/x", "late", "bundle")
    sizes = {"big": Contents.MAX_SIZE + 1, "bundle": 4 << 20}  # (a webpack bundle in dev)
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"1" * sizes.get(name, 1))
        os.utime(tmp_path / name, (time.time() - 10,) * 2)  # written before watching began
    contents = Contents(lambda parent, name: name != "hidden")
    contents.changed(tmp_path / "late")  # seen changing before the reading is done: kept
    contents.take([tmp_path])
    assert await eventually(lambda: bool(contents._digests.keys() - {str(tmp_path / "late")}))
    (tmp_path / "same").write_bytes(b"1")
    (tmp_path / "bundle").write_bytes(b"1" * sizes["bundle"])
    (tmp_path / "other").write_bytes(b"2")
    (tmp_path / "gone").unlink()
    (tmp_path / "hidden/x").write_bytes(b"1")  # in a folder not read: unknown
    (tmp_path / "new").write_bytes(b"1")
    verdicts = {name: contents.changed(tmp_path / name) for name in (*names, "new")}
    assert verdicts == {
        "same": False, "other": True, "gone": True, "big": True, "hidden/x": True,
        "late": False, "bundle": False, "new": True,
    }  # fmt: skip
    assert await contents.changed_among({tmp_path / "same", tmp_path / "new"}) == set()
    assert not contents.changed(tmp_path / "other")  # its new bytes, now known
    contents.stop()


def test_a_folder_made_is_an_edit_once_it_holds_a_file(tmp_path: Path) -> None:
    """`python -m venv venv` makes its folders before its pyvenv.cfg; `mkdir -p` runs
    nothing: a folder is no edit until a file lies below it, outside the folders not
    looked into (a virtualenv, node_modules...)."""
    from local_lambdas.watch.edits import Contents

    contents = Contents(lambda parent, name: name != "skipped")
    (tmp_path / "venv/lib/python3.11/site-packages").mkdir(parents=True)
    (tmp_path / "venv/include").mkdir()
    (tmp_path / "pkg/skipped").mkdir(parents=True)
    (tmp_path / "pkg/skipped/x.py").write_text("")
    assert not contents.changed(tmp_path / "venv") and not contents.changed(tmp_path / "pkg")
    (tmp_path / "pkg/sub").mkdir()
    (tmp_path / "pkg/sub/main.py").write_text("")  # (as `mkdir pkg && cp ...`: one event)
    assert contents.changed(tmp_path / "pkg")
    (tmp_path / "many").mkdir()
    for n in range(Contents.MAX_ENTRIES + 1):
        (tmp_path / f"many/{n}").mkdir()
    assert contents.changed(tmp_path / "many")  # (too many to look at: taken to hold one)
    assert contents.changed(tmp_path / "gone")  # a folder removed: as a file removed
    contents.stop()


def test_what_a_restart_writes_meanwhile_is_no_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from local_lambdas.watch.edits import Doings

    before, built, source = tmp_path / "before", tmp_path / "server", tmp_path / "main.go"
    before.write_text("")
    os.utime(before, (1.0, 1.0))  # (long before any restart)
    doings = Doings()
    assert doings.edits({before, built}) == {before, built}  # (no restart yet)
    doings.begin({before})
    built.write_text("1")
    doings.end()
    gone = tmp_path / "gone"  # deleted meanwhile: a deletion cannot repeat itself
    assert doings.edits({before, built, gone}) == {before, gone}
    # The file whose edit set off a restart is an edit when saved again during it, in
    # restarts in a row ...
    for saved in range(Doings.IN_A_ROW - 1):
        doings.begin({source})
        source.write_text(f"{saved}")
        built.write_text(f"{saved}")
        doings.end()
        assert doings.edits({source, built}) == {source}
    # ... short of IN_A_ROW: then the process is taken to write it as it starts.
    doings.begin({source})
    source.write_text("last")
    doings.end()
    with caplog.at_level(logging.WARNING):
        assert doings.edits({source}) == set()
    assert f"{source} changed during {Doings.IN_A_ROW} restarts in a row" in caplog.text
    doings.begin({source})  # (and is no edit during a restart from then on)
    source.write_text("then")
    doings.end()
    assert doings.edits({source}) == set()
    os.utime(source, (2.0, 2.0))  # a change at another time is still an edit
    assert doings.edits({source}) == {source}
    # A file git tracks is code from its first change: saved while a restart (a slow
    # build of another file's edit) runs, it is an edit, as an edited file is.
    handler = tmp_path / "handler.go"
    doings.begin({tmp_path / "other.go"})
    handler.write_text("1")
    built.write_text("again")
    doings.end()
    assert doings.edits({handler, built}, tracked={handler}) == {handler}


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
async def test_watch_leaves_out_what_git_ignores_and_knows_what_it_tracks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from local_lambdas.watch.edits import git_ignored, git_tracked

    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    (repo / "uploads").mkdir(parents=True)
    elsewhere.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text("uploads/\n*.out\n")
    source, upload, built, kept = (
        repo / "app.py", repo / "uploads" / "a.png", repo / "server.out", repo / "kept.out"
    )  # fmt: skip
    for path in (source, upload, built, kept):
        path.write_text("x")
    git(repo, "add", "-f", "kept.out")  # tracked: never ignored
    outside = elsewhere / "server.out"  # not in a work tree: git ignores nothing there
    changed = {source, upload, built, kept, outside}
    assert await git_ignored(changed, [repo, elsewhere]) == {upload, built}
    # What git tracks (kept.out, added; the other files are not): code, to Doings.
    (repo / "odd\nname.py").write_text("x")  # (printed quoted without -z)
    git(repo, "add", "app.py", "odd\nname.py")
    odd = repo / "odd\nname.py"
    assert await git_tracked(changed | {odd}, [repo, elsewhere]) == {source, kept, odd}
    assert await git_tracked({repo / "uploads" / "a.png"}, [repo / "uploads"]) == set()
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert await git_ignored(changed, [repo, elsewhere]) == set()
    assert await git_tracked(changed, [repo, elsewhere]) == set()


async def test_a_watch_that_fails_says_so(caplog: pytest.LogCaptureFixture) -> None:
    from local_lambdas.lifecycle import _watch_ended

    async def failing() -> None:
        raise RuntimeError("the handler is closed")

    watcher = asyncio.create_task(failing())
    watcher.add_done_callback(_watch_ended)
    with caplog.at_level(logging.ERROR):
        await asyncio.gather(watcher, return_exceptions=True)
    assert "--watch stopped on an error (RuntimeError: the handler is closed)" in caplog.text


@NEEDS_WATCHFILES
async def test_watch_past_the_systems_limit_says_so_and_follows_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A stand-in for watchfiles: the system's limit of watched folders is global (a sysctl),
    not one a test may lower. It fails as watchfiles does past the limit, then, watching the
    manifest's folder alone, reports the manifest changed."""
    from watchfiles import Change

    from local_lambdas.watch import watcher

    big, manifest = tmp_path / "home", tmp_path / "manifest.xml"
    (big / "deep").mkdir(parents=True)
    manifest.write_text("<manifest/>")
    stop, calls, reacted = asyncio.Event(), [], []

    async def awatch(
        *paths: Path, recursive: bool = True, **_: object
    ) -> AsyncIterator[set[tuple[Change, str]]]:
        calls.append((paths, recursive))
        if recursive:
            raise OSError(f'OS file watch limit reached. about ["{big / "deep"}"]')
        manifest.write_text("<manifest><!-- changed --></manifest>")
        yield {(Change.modified, str(manifest))}

    async def react(reload: bool, ids: list[str], changed: str) -> None:
        reacted.append((reload, ids))
        stop.set()

    monkeypatch.setattr(watcher, "awatch", awatch)
    dirs = {"svc": big}
    await watcher.watch(manifest, lambda: dirs, react, socket_dir=tmp_path / "s", stop=stop)
    assert calls == [((tmp_path, big), True), ((tmp_path,), False)]
    assert reacted == [(True, [])]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(said) == 1 and said[0].startswith(f"--watch: {big} holds more folders than"), said
    assert "fs.inotify.max_user_watches" in said[0] and "the manifest is still followed" in said[0]


@NEEDS_WATCHFILES
def test_a_watched_manifest_links_target_is_the_manifest(tmp_path: Path) -> None:
    """Editing the file a manifest link points to reloads, and restarts nobody for it."""
    from local_lambdas.watch.paths import affected

    (tmp_path / "dev.xml").write_text("<manifest/>")
    (tmp_path / "manifest.xml").symlink_to("dev.xml")
    dirs = {"root": tmp_path}
    assert affected({tmp_path / "dev.xml"}, tmp_path / "manifest.xml", dirs) == (True, [])
    assert affected({tmp_path / "prod.xml"}, tmp_path / "manifest.xml", dirs) == (False, ["root"])


@NEEDS_WATCHFILES
def test_watch_filter_ignores_globs_caches_and_the_socket_dir() -> None:
    from pathlib import Path

    from watchfiles import Change

    from local_lambdas.watch.paths import Filter

    keep = Filter(["*.log", "*/tmp/*"], Path("/run/ll-1"), [], Path("/p/manifest.xml"))
    assert keep(Change.modified, "/p/api/handler.py")
    assert not keep(Change.modified, "/p/api/server.log")
    assert not keep(Change.modified, "/p/tmp/x.py")
    assert not keep(Change.modified, "/p/api/__pycache__/h.pyc")
    assert not keep(Change.modified, "/p/node_modules/x/index.js")
    assert not keep(Change.added, "/run/ll-1/api")
    for name in ("db.sqlite3", "db.sqlite3-journal", "instance/a.sqlite", "a.pid", "a.log.1"):
        assert not keep(Change.modified, f"/p/{name}")  # what a running child writes
    # What `pytest --cov` in another terminal writes beside the code (outside git, which
    # would say it ignores them): coverage.py's data and its reports.
    for name in (".coverage", ".coverage.host.1234.XyZ", "coverage.xml", "htmlcov/index.html"):
        assert not keep(Change.modified, f"/p/{name}")
    # What an editor writes as one types, before any save: Kate's swap file, LibreOffice's
    # lock (a CSV the child reads, say), Emacs's lock, Vim's swap.
    for name in (".app.py.kate-swp", ".~lock.rates.csv#", ".#app.py", ".app.py.swp"):
        assert not keep(Change.added, f"/p/{name}")


@NEEDS_WATCHFILES
@pytest.mark.parametrize(
    ("path", "hidden"),
    [
        ("/p/.next/server/app.js", True),  # Next.js's dev server writes it as it compiles
        ("/p/web/.svelte-kit/output/x.js", True),
        ("/p/.vscode/settings.json", True),
        ("/p/.flaskenv", False),  # a hidden file, read as the child starts
        ("/p/web/.eslintrc.json", False),
        ("/p/src/app.py", False),
        ("/home/u/.projects/p/app.py", False),  # hidden above the watched folder: watched
        ("/p/.hidden-app/main.py", False),  # a working_dir of its own, hidden by name
        ("/elsewhere/.x/y", False),
        ("/p", False),
        ("/p/.cache", True),  # the hidden folder itself (made as the tool starts)
    ],
)
def test_watch_leaves_hidden_folders_alone(path: str, hidden: bool, tmp_path: Path) -> None:
    from local_lambdas.watch.paths import hidden as in_hidden_folder

    (tmp_path / "p/.cache").mkdir(parents=True)
    roots = [Path("/p"), Path("/home/u/.projects/p"), Path("/p/.hidden-app")]
    moved = [tmp_path / root.relative_to("/") for root in roots]
    assert in_hidden_folder(tmp_path / path.lstrip("/"), moved) == hidden


@NEEDS_WATCHFILES
def test_watch_leaves_virtualenvs_alone_even_once_removed(tmp_path: Path) -> None:
    from local_lambdas.watch.paths import in_virtualenv, keep_folder

    root = tmp_path / "app"
    (root / "venv/lib").mkdir(parents=True)
    (root / "venv/pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "src").mkdir()
    assert in_virtualenv(root / "venv", [root])  # the folder itself, as it is made
    assert in_virtualenv(root / "venv/lib/site.py", [root])
    assert not in_virtualenv(root / "src/main.py", [root])
    assert not keep_folder(str(root), "venv") and keep_folder(str(root), "src")
    # The project in a folder that is itself a virtualenv (`virtualenv proj; cd proj`):
    # below the watched folder only, or nothing would ever restart.
    assert not in_virtualenv(root / "venv/src/main.py", [root / "venv"])
    (root / "venv/pyvenv.cfg").unlink()  # `rm -rf venv`: its pyvenv.cfg gone first
    assert in_virtualenv(root / "venv/lib/site.py", [root])
    # One only passed over as the files were read when watching began is known so too.
    (root / "env2/lib").mkdir(parents=True)
    (root / "env2/pyvenv.cfg").write_text("home = /usr/bin\n")
    assert not keep_folder(str(root), "env2")
    (root / "env2/pyvenv.cfg").unlink()
    assert in_virtualenv(root / "env2/lib/site.py", [root])

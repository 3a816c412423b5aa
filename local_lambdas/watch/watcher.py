"""`--watch`: reload when the manifest changes, restart a process when its files change.

Watched: the manifest file, and each process's working_dir (recursively); a changed file
restarts the process(es) with the deepest working_dir holding it. The manifest is followed by
its content: a save that changes nothing, or a rename over it (sed -i, editors' atomic
saves), reloads only when the text differs, and a reload keeps unchanged processes. A
manifest that is a symbolic link is followed both ways: the link pointed elsewhere
(`ln -sfn dev.xml manifest.xml`) and the file it points to edited.

Ignored: what watchfiles ignores by default (.git, __pycache__, node_modules, .venv, editor
swap and backup files...), ignored.WATCH_IGNORE (logs, editors' temporary files, databases,
pid files), what lies in a hidden folder (.next/, .vscode/: `hidden`) or a virtualenv (a
folder holding pyvenv.cfg, whatever its name: `in_virtualenv`), a file written again with
the bytes it held or a folder made that holds no file yet (edits.Contents), a file that
appeared and went within one batch (a temporary file renamed over another), the files the
proxy itself writes to (`local-lambdas --watch > dev.log` beside the manifest), files git
ignores and what changed while a restart --watch set off was under way (a <build>'s output,
the files a starting child writes: both in edits.py) or while a <build> or <task> of the
run ran (the first start's too), the socket directory, and every --watch-ignore glob
(matched against the file's name and its path). With --watch-include globs, only files
matching one of them restart anything (the manifest and env files are always followed).
Changes are gathered for `debounce` milliseconds, so saving ten files restarts once.
Folders past the system's limit of watched ones (Linux's fs.inotify.max_user_watches: a
working_dir of a whole home, say) are said once, with the fix, and the manifest's folder
alone is followed from then on.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence, Set
from pathlib import Path

from watchfiles import Change, awatch  # only --watch imports this module

from local_lambdas.watch.edits import Contents, Doings, git_ignored, git_tracked
from local_lambdas.watch.paths import (
    Filter,
    affected,
    hidden,
    in_virtualenv,
    is_env_file,
    keep_folder,
    lasting,
    manifest_names,
    named,
    outermost,
)

log = logging.getLogger("local_lambdas.watch")

# (manifest changed, ids to restart, the files that restart them: "main.go", "+2 more")
Reaction = Callable[[bool, list[str], str], Awaitable[None]]


async def watch(
    manifest: Path,
    dirs: Callable[[], dict[str, Path]],
    react: Reaction,
    *,
    socket_dir: Path,
    ignore: Sequence[str] = (),
    include: Sequence[str] = (),
    debounce_ms: int = 300,
    stop: asyncio.Event | None = None,
    building: Callable[[float, float], bool] | None = None,
    unwatched: Callable[[], Set[str]] = frozenset,
    supersede: Callable[[set[str]], None] = lambda ids: None,
) -> None:
    """Watch until `stop` is set; `dirs()` gives the current working_dir of each process id,
    `unwatched()` the ids no file restarts (<watch>off</watch>); what changes while
    `building` says a <build> or <task> ran (StartOrder.ran_at) is theirs; `supersede(ids)`
    ends the wait for replacements whose file was saved again (Reloads.supersede)."""
    stop = stop or asyncio.Event()
    watch_filter = Filter(ignore, socket_dir, include, manifest)
    text = _read(manifest)
    doings, contents = Doings(building), Contents(keep_folder)
    narrow = False  # too many folders to watch: the manifest's alone, from then on
    try:
        while not stop.is_set():
            current = {} if narrow else dirs()
            paths = _watched(manifest, current)
            contents.take(outermost(paths))
            batches = _announced(awatch(
                *paths, watch_filter=watch_filter, debounce=debounce_ms, stop_event=stop,
                recursive=not narrow, ignore_permission_denied=True,
            ), paths)  # fmt: skip
            upcoming: asyncio.Future[set[tuple[Change, str]]] | None = None
            try:
                while True:
                    upcoming = upcoming or asyncio.ensure_future(anext(batches))
                    try:
                        changes = await upcoming
                    except StopAsyncIteration:
                        break
                    upcoming = None
                    changed = lasting(changes)
                    names = manifest_names(manifest)  # (anew: the link may point elsewhere now)
                    followed = {p for p in changed if p in names or is_env_file(p)}
                    kept = {
                        p for p in changed - followed
                        if not hidden(p, paths) and not in_virtualenv(p, paths)
                    }  # fmt: skip
                    changed = followed | await contents.changed_among(kept)
                    changed -= await git_ignored(changed - followed, paths)
                    tracked = await git_tracked(doings.made(changed - followed), paths)
                    edits = doings.edits(changed, tracked) | followed
                    off = unwatched()
                    reload_manifest, ids = affected(edits, manifest, current, off)
                    # The files that restart something, to name (not a Vite server's own).
                    restarting = {
                        e for e in edits - followed if affected({e}, manifest, current, off)[1]
                    }
                    # An env file changes what the manifest gives its children: read it too.
                    env_changed = any(is_env_file(path) for path in changed)
                    if reload_manifest or env_changed:
                        now = _read(manifest)
                        reload_manifest, text = now != text or env_changed, now  # by content
                    if reload_manifest or ids:
                        doings.begin(edits)
                        try:
                            reaction = react(reload_manifest, ids, named(restarting, current))
                            upcoming = await _reacted(
                                reaction, batches, restarting, supersede, manifest, current
                            )
                        finally:
                            doings.end()
                    current = {} if narrow else dirs()
                    if _watched(manifest, current) != paths:
                        break  # the reload changed what to watch
            except OSError as exc:  # watchfiles' error when the folders cannot all be watched
                if narrow:
                    log.error("--watch: cannot watch %s (%s); --watch is off", paths[0], exc)
                    return
                log.error("%s", _cannot_watch(exc, paths))
                narrow = True
            finally:
                if upcoming is not None and not upcoming.done():
                    upcoming.cancel()  # (the batches of a watch given up)
    finally:
        contents.stop()


async def _reacted(
    reaction: Awaitable[None],
    batches: AsyncIterator[set[tuple[Change, str]]],
    edited: set[Path],
    supersede: Callable[[set[str]], None],
    manifest: Path,
    dirs: dict[str, Path],
) -> asyncio.Future[set[tuple[Change, str]]]:
    """Run a reaction (a reload) to its end while the next batch of changes is awaited: one
    that saves a file this reaction restarts for again (a typo fixed while the first save's
    replacement compiles) cuts short the wait for those replacements (`supersede`), so that
    the next reaction starts them from the newer file at once. The batch, for its turn."""
    work = asyncio.ensure_future(reaction)
    upcoming = asyncio.ensure_future(anext(batches))
    try:
        await asyncio.wait((work, upcoming), return_when=asyncio.FIRST_COMPLETED)
        if upcoming.done() and not work.done() and upcoming.exception() is None:
            again = {Path(path) for _, path in upcoming.result()} & edited
            if again:
                supersede(set(affected(again, manifest, dirs)[1]))
        await work
    except BaseException:  # (a stop: the reaction cancelled, and the watch with it)
        upcoming.cancel()
        work.cancel()
        raise
    return upcoming


async def _announced(
    batches: AsyncIterator[set[tuple[Change, str]]], paths: list[Path]
) -> AsyncIterator[set[tuple[Change, str]]]:
    """The batches, saying "watching" once the folders are watched, so that a change made
    after the line is seen (a script that waits for it, then edits): awatch sets its watches
    up in its first step, before its first wait."""
    first = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)  # (that first step)
    if not first.done():  # (done already: it could not watch, and raises below)
        log.info("watching %s", ", ".join(str(p) for p in paths))
    try:
        yield await first
    except StopAsyncIteration:
        return
    async for changes in batches:
        yield changes


def _cannot_watch(exc: OSError, paths: list[Path]) -> str:
    """The line that says why the folders could not all be watched, and what to do."""
    named = ", ".join(map(str, paths))
    where = re.search(r'\["([^"]+)"', str(exc))  # (the folder watchfiles stopped at)
    inside = [p for p in paths if where and Path(where[1]).is_relative_to(p)]
    if inside:
        named = str(max(inside, key=lambda p: len(p.parts)))
    what = "files there no longer restart anything; the manifest is still followed"
    if "limit" not in str(exc):
        return f"--watch: cannot watch {named} ({exc}): {what}"
    limit = _read(Path("/proc/sys/fs/inotify/max_user_watches"))
    given = f" = {int(limit)}" if limit and limit.strip().isdigit() else ""
    return (
        f"--watch: {named} holds more folders than the system lets one watch "
        f"(fs.inotify.max_user_watches{given}): {what}. Raise the limit (sudo sysctl "
        "fs.inotify.max_user_watches=524288) or give the process a narrower <working_dir>"
    )


def _watched(manifest: Path, dirs: dict[str, Path]) -> list[Path]:
    """The folders to watch: the manifest's, the folder of the file it links to, and the
    working directories. Folders, not the manifest file: editors often save by writing a new
    file and renaming it over the old, which a watch on the old file would miss."""
    present = {folder for folder in dirs.values() if folder.is_dir()}  # (one may be deleted)
    return sorted({manifest.parent, manifest.resolve().parent, *present})


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None

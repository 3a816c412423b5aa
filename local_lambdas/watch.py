"""`--watch`: reload when the manifest changes, restart a process when its files change.

Watched: the manifest file, and each process's working_dir (recursively); a changed file
restarts the process(es) with the deepest working_dir holding it. The manifest is followed by
its content: a save that changes nothing, or a rename over it (sed -i, editors' atomic
saves), reloads only when the text differs, and a reload keeps unchanged processes. A
manifest that is a symbolic link is followed both ways: the link pointed elsewhere
(`ln -sfn dev.xml manifest.xml`) and the file it points to edited.

Ignored: what watchfiles ignores by default (.git, __pycache__, node_modules, .venv, editor
swap and backup files...), ignored.WATCH_IGNORE (logs, editors' temporary files, databases,
pid files), what lies in a hidden folder (.next/, .vscode/: `hidden`), a file written again
with the bytes it held (watch_edits.Contents), a file that appeared and went within one
batch (a temporary file renamed over another), the files the proxy itself writes to
(`local-lambdas --watch > dev.log` beside the manifest), files git ignores and what changed
while a restart --watch set off was under way (a <build>'s output, the files a starting
child writes: both in watch_edits) or while a <build> or <task> of the run ran (the first
start's too), the socket directory, and every --watch-ignore glob (matched against the
file's name and its path). With --watch-include globs, only files matching one of them
restart anything (the manifest and env files are always followed).
Changes are gathered for `debounce` milliseconds, so saving ten files restarts once. Folders
past the system's limit of watched ones (Linux's fs.inotify.max_user_watches: a working_dir
of a whole home, say) are said once, with the fix, and the manifest's folder alone is
followed from then on.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import re
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence, Set
from pathlib import Path

from watchfiles import Change, DefaultFilter, awatch  # only --watch imports this module

from local_lambdas.ignored import WATCH_IGNORE
from local_lambdas.watch_edits import Contents, Doings, deepest, git_ignored, git_tracked

log = logging.getLogger("local_lambdas.watch")

# (manifest changed, ids to restart, the files that restart them: "main.go", "+2 more")
Reaction = Callable[[bool, list[str], str], Awaitable[None]]


class _Filter(DefaultFilter):
    def __init__(
        self, ignore: Sequence[str], socket_dir: Path, include: Sequence[str], manifest: Path
    ) -> None:
        super().__init__(ignore_paths=[str(socket_dir)])
        self._globs = [*WATCH_IGNORE, *ignore]
        self._include = list(include)
        self._manifest = manifest
        self._own = _own_output()

    def __call__(self, change: Change, path: str) -> bool:
        name = Path(path).name
        if any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(path, g) for g in self._globs):
            return False
        if (
            self._include
            and Path(path) not in _names(self._manifest)
            and not _is_env_file(Path(path))
            and not any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(path, g) for g in self._include)
        ):
            return False
        if self._own and _identity(path) in self._own:
            return False  # the proxy's own output: its writes would restart it for ever
        return super().__call__(change, path)


def _own_output() -> set[tuple[int, int]]:
    """The files this process's stdout and stderr go to, as (device, inode)."""
    found = set()
    for fd in (1, 2):
        try:
            status = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISREG(status.st_mode):
            found.add((status.st_dev, status.st_ino))
    return found


def _identity(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def lasting(changes: set[tuple[Change, str]]) -> set[Path]:
    """The changed paths, less those that appeared and went in the same batch: a temporary
    file written and renamed over another (the other is reported changed itself). One
    that went and came back (`git checkout`, `git pull`, a tool that deletes a file and
    writes it anew) is there at the end: it changed."""
    added = {path for change, path in changes if change == Change.added}
    deleted = {path for change, path in changes if change == Change.deleted}
    came_and_went = {path for path in added & deleted if not os.path.lexists(path)}
    return {Path(path) for _, path in changes if path not in came_and_went}


def _names(manifest: Path) -> set[Path]:
    """The paths whose change is the manifest's: its own, and the file it is a link to."""
    return {manifest, manifest.resolve()}


def affected(
    changed: set[Path], manifest: Path, dirs: dict[str, Path], unwatched: Set[str] = frozenset()
) -> tuple[bool, list[str]]:
    """Whether the manifest changed, and which process ids own a changed file.

    A file belongs to the processes with the deepest working_dir holding it: with one process
    in ./api and another in the manifest's folder, a change in ./api restarts only the first.
    Those `unwatched` (<watch>off</watch>: they reload themselves) own their files still, but
    are not restarted for them: a Vite dev server's in ./web restart neither it nor the
    process in the manifest's folder.
    """
    owners: set[str] = set()
    names = _names(manifest)
    for path in changed - names:
        holding = [(len(d.parts), pid) for pid, d in dirs.items() if path.is_relative_to(d)]
        if holding:
            deepest = max(depth for depth, _ in holding)
            owners.update(pid for depth, pid in holding if depth == deepest)
    return not names.isdisjoint(changed), sorted(owners - unwatched)


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
    watch_filter = _Filter(ignore, socket_dir, include, manifest)
    text = _read(manifest)
    doings, contents = Doings(building), Contents()
    narrow = False  # too many folders to watch: the manifest's alone, from then on
    try:
        while not stop.is_set():
            current = {} if narrow else dirs()
            paths = _watched(manifest, current)
            contents.take(_outermost(paths), _keep_folder)
            batches = _announced(awatch(
                *paths, watch_filter=watch_filter, debounce=debounce_ms, stop_event=stop,
                recursive=not narrow,
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
                    names = _names(manifest)  # (anew: the link may point elsewhere now)
                    followed = {p for p in changed if p in names or _is_env_file(p)}
                    kept = {p for p in changed - followed if not hidden(p, paths)}
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
                    env_changed = any(_is_env_file(path) for path in changed)
                    if reload_manifest or env_changed:
                        now = _read(manifest)
                        reload_manifest, text = now != text or env_changed, now  # by content
                    if reload_manifest or ids:
                        doings.begin(edits)
                        try:
                            reaction = react(reload_manifest, ids, _named(restarting, current))
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


def _keep_folder(name: str) -> bool:
    """Whether Contents looks into a folder of this name: not one watchfiles ignores (.git,
    node_modules...) nor a hidden one (`hidden`)."""
    return not name.startswith(".") and name not in DefaultFilter.ignore_dirs


def _outermost(paths: list[Path]) -> list[Path]:
    """The folders not inside another of `paths`."""
    return [p for p in paths if not any(p != other and p.is_relative_to(other) for other in paths)]


def hidden(path: Path, roots: Sequence[Path]) -> bool:
    """Whether `path` lies in a hidden folder below the watched folder holding it: tools
    keep their caches and settings there (.next, .nuxt, .svelte-kit, .vite, .angular,
    .cache, .vscode...), not the program's code; Next.js's dev server writes .next/ as it
    compiles a page, long after it started. (A hidden file, .flaskenv say, is watched.)"""
    root = deepest(path, roots)
    below = path.relative_to(root).parts if root is not None else ()
    if not below:
        return False
    *folders, name = below
    return any(part.startswith(".") for part in folders) or (
        name.startswith(".") and path.is_dir()  # the folder itself, made (.next, at a start)
    )


def _named(changed: set[Path], dirs: dict[str, Path]) -> str:
    """The changed files, for the log: the first (in its working_dir), and how many more."""
    if not changed:
        return ""
    first = min(changed)
    root = deepest(first, dirs.values())
    name = str(first.relative_to(root)) if root is not None else str(first)
    if name == ".":  # the working_dir itself (removed, or made again: a branch switched)
        name = f"{first.name}/"
    return f"{name} +{len(changed) - 1} more" if len(changed) > 1 else name


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


def _is_env_file(path: Path) -> bool:
    return path.name == ".env" or path.name.startswith(".env.") or path.suffix == ".env"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None

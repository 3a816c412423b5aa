"""Which of the files --watch saw change are edits, beyond its filters (watcher.py): not a
file written again with the bytes it held nor a folder made that holds no file yet
(Contents), what a restart it set off wrote meanwhile (Doings: unless git tracks it,
git_tracked), nor what git ignores (git_ignored)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger("local_lambdas.watch")


class Contents:
    """What the watched files held: a file written again with the same bytes is no edit.

    `tsc -w` beside `node --watch dist/index.js` writes its whole output as it starts,
    seconds after its server is ready: each start's rewrite of dist/ restarted the process
    again, for ever. A formatter, or an editor saving a file it did not change, rewrites
    one as well. Digests are taken of the files in the watched folders as watching begins
    (`take`, in a thread: up to MAX_FILES files of up to MAX_SIZE, outside the folders
    watcher.py ignores), and of each changed file as it changes (in a thread too: a
    webpack --watch bundle of several MiB is read whole); a file without one (new, larger,
    or changed since watching began) counts as changed, as a deleted one does.

    A folder made counts as changed once it holds a file, in a folder `keep_folder` keeps:
    `python -m venv venv` makes its folders before the pyvenv.cfg that says what they are
    (paths.in_virtualenv), and on a busy machine the folders came in a batch of their own
    and restarted the process; `mkdir -p` alone changes nothing a program runs either.
    """

    MAX_SIZE = 16 << 20
    MAX_FILES = 20_000
    MAX_SECONDS = 2.0
    MAX_ENTRIES = 2_000  # looked at in a folder made, for a file, before it counts as one

    def __init__(self, keep_folder: Callable[[str, str], bool]) -> None:
        self._keep_folder = keep_folder  # (paths.keep_folder: not .git, node_modules, venvs)
        self._digests: dict[str, bytes] = {}  # (by path as text: 20,000 Paths weigh 7.5 MB)
        self._taken: set[Path] = set()  # the folders whose files were (or are being) read
        self._stopped = threading.Event()
        self._lock = threading.Lock()  # (the digests: read in threads, merged on the loop)

    def take(self, roots: list[Path]) -> None:
        """Read, in a thread, the files below those of `roots` not read before (not in the
        folders `keep_folder` refuses): their digests count once read, and until then a
        change there counts as one. Every file, filtered or not: those watcher.py filters out
        never come to `changed`, and its filter would cost four times the reading."""
        roots = [root for root in roots if root not in self._taken]
        if not roots:
            return
        self._taken.update(roots)
        since = time.time() - Doings.SLACK  # (what a save then wrote is not what it held)
        taking = asyncio.ensure_future(asyncio.to_thread(self._read, roots, since))
        taking.add_done_callback(self._read_done)

    def stop(self) -> None:
        """Stop the reading under way: a thread cannot be cancelled, and the proxy's stop
        waits for it."""
        self._stopped.set()

    async def changed_among(self, paths: set[Path]) -> set[Path]:
        """Those of `paths` that hold other bytes than when last seen (`changed`)."""
        if not paths:
            return paths
        return await asyncio.to_thread(lambda: {path for path in paths if self.changed(path)})

    def changed(self, path: Path) -> bool:
        """Whether `path` holds other bytes than when last seen (and remember these), or is
        a folder holding a file."""
        if os.path.isdir(path):
            return self._holds_a_file(path)
        digest = _digest(path)
        with self._lock:
            before = self._digests.pop(str(path), None)
            if digest is not None:
                self._digests[str(path)] = digest
        return digest is None or digest != before

    def _read_done(self, taking: asyncio.Future[dict[str, bytes]]) -> None:
        if not taking.cancelled() and taking.exception() is None:
            with self._lock:  # a file seen to change meanwhile keeps its later digest
                self._digests = {**taking.result(), **self._digests}

    def _holds_a_file(self, path: Path) -> bool:
        """Whether a file lies below the folder `path`, in the folders kept (or more than
        MAX_ENTRIES are there to look at: then it is taken to)."""
        seen = 0
        for folder, folders, files in os.walk(path):
            if files:
                return True
            folders[:] = [name for name in folders if self._keep_folder(folder, name)]
            seen += len(folders)
            if seen > self.MAX_ENTRIES:
                return True
        return False

    def _read(self, roots: list[Path], since: float) -> dict[str, bytes]:
        """The digests of the files below `roots` not modified since `since`, in the
        folders kept; as many as MAX_FILES and MAX_SECONDS allow."""
        found: dict[str, bytes] = {}
        deadline = time.monotonic() + self.MAX_SECONDS
        for root in roots:
            for folder, folders, files in os.walk(root):
                folders[:] = [name for name in folders if self._keep_folder(folder, name)]
                for name in files:
                    path = os.path.join(folder, name)
                    if (digest := _digest(path, since)) is not None:
                        found[path] = digest
                    if (
                        len(found) >= self.MAX_FILES
                        or time.monotonic() > deadline
                        or self._stopped.is_set()
                    ):
                        return found
        return found


def _digest(path: Path | str, since: float = math.inf) -> bytes | None:
    """A regular file's digest, None for one that is not, is larger than Contents.MAX_SIZE,
    cannot be read or was modified since `since`."""
    try:
        status = os.stat(path)
        if (
            not stat.S_ISREG(status.st_mode)
            or status.st_size > Contents.MAX_SIZE
            or status.st_mtime >= since
        ):
            return None
        with open(path, "rb") as file:
            return hashlib.blake2b(file.read(), digest_size=16).digest()
    except OSError:
        return None


class Doings:
    """What --watch's own restarts wrote.

    A file that changed while one was under way (from the change that set it off until its
    replacement is ready and the old instance stopped) is its doing, not an edit: the output
    of a <build> in the folder it builds (`go build -o server .`), a database or pid file
    the starting child writes, state the old one saves as it stops. Each would otherwise
    restart its process again, for ever. A file whose edit set off a restart is an edit when
    saved again during it, unless it changed during IN_A_ROW restarts in a row: then it is
    taken for one the process writes as it starts or stops (and at other times, or it would
    not have set a restart off), and its changes during a restart are the restart's from
    then on; a change at any other time is still an edit. A file git tracks is held to be
    code in the same way, from its first change: a build or a starting child writes its
    output where git ignores it (or in a folder without git), so a second file saved while
    a slow build of the first runs is an edit, not the build's. Told by the file's
    modification time, so a file deleted meanwhile counts as an edit: a deletion cannot
    repeat itself.
    """

    # s: the kernel stamps a file with a clock that may lag time.time() a tick (1-10 ms), so
    # a write just after begin() may seem to come before it.
    SLACK = 0.02
    # Restarts in a row a once edited file must change during to be taken for the process's
    # own: an editor saving as one types through slow builds, or a script that edits as soon
    # as it reads a restart's line, lands in two.
    IN_A_ROW = 3

    def __init__(self, also: Callable[[float, float], bool] | None = None) -> None:
        # Whether something else of the run's, at a time and give or take a slack, was
        # writing: a <build> or <task> (StartOrder.ran_at), the first start's among them.
        self._also = also
        self._began: float = 0.0  # (none yet)
        self._ended: float | None = 0.0
        self._edited: set[Path] = set()
        self._streak: dict[Path, int] = {}  # edited files changed during the last restarts
        self._own: set[Path] = set()  # once edited, then found to change in every restart

    def begin(self, edited: set[Path]) -> None:
        self._edited |= edited - self._own
        self._began, self._ended = time.time(), None

    def end(self) -> None:
        self._ended = time.time()

    def made(self, changed: set[Path]) -> set[Path]:
        """Those of the changed files written while a restart (or a <build>, a <task>) ran."""
        return {path for path in changed if self._made(path)}

    def edits(self, changed: set[Path], tracked: set[Path] | None = None) -> set[Path]:
        """The changed files less those the last restart made, `tracked` (those git tracks,
        of the ones it made: git_tracked) held to be edits as edited files are."""
        made = self.made(changed)
        self._edited |= (tracked or set()) - self._own
        self._streak = {path: self._streak.get(path, 0) + 1 for path in made & self._edited}
        again = {path for path, streak in self._streak.items() if streak >= self.IN_A_ROW}
        for path in sorted(again):
            log.warning(
                "--watch: %s changed during %d restarts in a row, as if its process wrote it "
                "as it starts or stops: its changes during a restart no longer restart it "
                "again (--watch-ignore %s ignores it altogether)",
                path, self.IN_A_ROW, path.name,
            )  # fmt: skip
        self._edited -= again
        self._own |= again
        return changed - (made - self._edited)

    def _made(self, path: Path) -> bool:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return False
        ended = math.inf if self._ended is None else self._ended
        if self._began - self.SLACK <= mtime <= ended:
            return True
        return self._also is not None and self._also(mtime, self.SLACK)


def deepest(path: Path, roots: Iterable[Path]) -> Path | None:
    """The deepest of `roots` holding `path` (the folder it counts as in), None if none does."""
    holding = [root for root in roots if path.is_relative_to(root)]
    return max(holding, key=lambda root: len(root.parts)) if holding else None


async def git_ignored(changed: set[Path], roots: list[Path]) -> set[Path]:
    """Those of the changed files that git ignores (.gitignore files, .git/info/exclude, the
    user's excludes file): build output, data, uploads, caches, what nobody edits. Asked of
    git itself, once per watched folder with changes: none without git or outside a work
    tree, and a file git tracks is never ignored."""
    # One a line, as given (a name with a newline or a quote comes quoted: not ignored).
    return await _asked(changed, roots, ("-c", "core.quotePath=false", "check-ignore"), b"\n")


async def git_tracked(changed: set[Path], roots: list[Path]) -> set[Path]:
    """Those of the changed files that git tracks (in its index): code, as Doings holds.
    None without git or outside a work tree."""
    # From where it runs, NUL after each; the names given are names, never patterns.
    return await _asked(changed, roots, ("--literal-pathspecs", "ls-files", "-z"), b"\0")


async def _asked(
    changed: set[Path], roots: list[Path], command: tuple[str, ...], sep: bytes
) -> set[Path]:
    """Those of the changed files `git -C ROOT command -- FILES` prints (`sep` after each),
    asked in each watched folder (ROOT, of `roots`) holding some."""
    under: dict[Path, list[Path]] = {}
    for path in changed:
        if (root := deepest(path, roots)) is not None:
            under.setdefault(root, []).append(path)
    named: set[Path] = set()
    for root, paths in under.items():
        for at in range(0, len(paths), 256):  # (on the command line: no pipe to break)
            out = await _git(root, *command, "--", *map(str, paths[at : at + 256]))
            if out is None:
                break  # no git, or not a work tree
            named.update(root / os.fsdecode(name) for name in out.split(sep) if name)
    return named & changed


async def _git(root: Path, *args: str) -> bytes | None:
    """What `git -C root args` printed; None if it failed, took over 5 s, or there is no
    git (nor, then, any work tree)."""
    try:
        git = await asyncio.create_subprocess_exec(
            "git", "-C", str(root), *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(git.communicate(), 5)
    except asyncio.TimeoutError:  # (3.10: not the builtin one)
        git.kill()
        await git.wait()
        return None
    return out if git.returncode in (0, 1) else None  # (check-ignore: 1 when none is)

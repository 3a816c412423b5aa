"""Which of the files --watch saw change are edits, beyond its filters (watch.py): not what
a restart it set off wrote meanwhile (Doings), nor what git ignores (git_ignored)."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from pathlib import Path

log = logging.getLogger("local_lambdas.watch")


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
    then on; a change at any other time is still an edit. Told by the file's modification
    time, so a file deleted meanwhile counts as an edit: a deletion cannot repeat itself.
    """

    # s: the kernel stamps a file with a clock that may lag time.time() a tick (1-10 ms), so
    # a write just after begin() may seem to come before it.
    SLACK = 0.02
    # Restarts in a row a once edited file must change during to be taken for the process's
    # own: an editor saving as one types through slow builds, or a script that edits as soon
    # as it reads a restart's line, lands in two.
    IN_A_ROW = 3

    def __init__(self) -> None:
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

    def edits(self, changed: set[Path]) -> set[Path]:
        """The changed files less those the last restart made."""
        made = {path for path in changed if self._made(path)}
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
        return self._began - self.SLACK <= mtime <= ended


async def git_ignored(changed: set[Path], roots: list[Path]) -> set[Path]:
    """Those of the changed files that git ignores (.gitignore files, .git/info/exclude, the
    user's excludes file): build output, data, uploads, caches, what nobody edits. Asked of
    git itself, once per watched folder with changes: none without git or outside a work
    tree, and a file git tracks is never ignored."""
    under: dict[Path, list[Path]] = {}
    for path in changed:
        holding = [root for root in roots if path.is_relative_to(root)]
        if holding:
            under.setdefault(max(holding, key=lambda r: len(r.parts)), []).append(path)
    ignored: set[Path] = set()
    for root, paths in under.items():
        ignored |= await _check_ignore(root, paths)
    return ignored


async def _check_ignore(root: Path, paths: list[Path]) -> set[Path]:
    ignored: set[Path] = set()
    for at in range(0, len(paths), 256):  # (on the command line: no pipe to break)
        try:
            git = await asyncio.create_subprocess_exec(
                "git", "-C", str(root), "-c", "core.quotePath=false", "check-ignore", "--",
                *paths[at : at + 256],
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        except OSError:
            return ignored  # no git
        try:
            out, _ = await asyncio.wait_for(git.communicate(), 5)
        except asyncio.TimeoutError:  # (3.10: not the builtin one)
            git.kill()
            await git.wait()
            return ignored
        # One a line, as given (a name with a newline or a quote comes quoted: not ignored).
        ignored.update(Path(os.fsdecode(name)) for name in out.splitlines() if name)
    return ignored

"""Which paths --watch follows and whom a change restarts (watcher.py runs the watch): its
filter (Filter), the changes that lasted a batch (lasting), the processes owning a changed
file (affected), what lies in a hidden folder (hidden) or a virtualenv (in_virtualenv), and
the names it logs (named)."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Sequence, Set
from pathlib import Path

from watchfiles import Change, DefaultFilter  # only --watch imports this module

from local_lambdas.watch.edits import deepest
from local_lambdas.watch.ignored import WATCH_IGNORE


class Filter(DefaultFilter):
    """watchfiles' filter less WATCH_IGNORE, the --watch-ignore globs, the socket directory
    and the proxy's own output; with --watch-include globs, only what matches one (and the
    manifest and env files)."""

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
            and Path(path) not in manifest_names(self._manifest)
            and not is_env_file(Path(path))
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


def manifest_names(manifest: Path) -> set[Path]:
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
    names = manifest_names(manifest)
    for path in changed - names:
        holding = [(len(d.parts), pid) for pid, d in dirs.items() if path.is_relative_to(d)]
        if holding:
            deepest = max(depth for depth, _ in holding)
            owners.update(pid for depth, pid in holding if depth == deepest)
    return not names.isdisjoint(changed), sorted(owners - unwatched)


def keep_folder(parent: str, name: str) -> bool:
    """Whether Contents looks into the folder `name` of `parent`: not one watchfiles ignores
    (.git, node_modules...), a hidden one (`hidden`) nor a virtualenv (`in_virtualenv`,
    which a virtualenv found here is told of: one there as watching began is still one once
    `rm -rf venv` has taken its pyvenv.cfg)."""
    if name.startswith(".") or name in DefaultFilter.ignore_dirs:
        return False
    if os.path.isfile(os.path.join(parent, name, _VIRTUALENV_MARK)):
        _virtualenvs.add(Path(parent, name))
        return False
    return True


def outermost(paths: list[Path]) -> list[Path]:
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


# A Python virtualenv's root holds this file (PEP 405), whatever the folder's name.
_VIRTUALENV_MARK = "pyvenv.cfg"
# The virtualenvs seen: one removed (`rm -rf venv`, its pyvenv.cfg gone first) is still one.
_virtualenvs: set[Path] = set()


def in_virtualenv(path: Path, roots: Sequence[Path]) -> bool:
    """Whether `path` is, or lies in, a Python virtualenv below the watched folder holding
    it: a folder with a pyvenv.cfg, whatever its name (`python -m venv venv`, the Python
    documentation's, which watchfiles' `.venv` misses; `env`, `myenv`). `pip install`
    writes thousands of files there, none of them the program's code."""
    root = deepest(path, roots)
    if root is None:
        return False
    folder = root
    for part in path.relative_to(root).parts:
        folder = folder / part
        if folder in _virtualenvs:
            return True
        if (folder / _VIRTUALENV_MARK).is_file():
            _virtualenvs.add(folder)
            return True
    return False


def named(changed: set[Path], dirs: dict[str, Path]) -> str:
    """The changed files, for the log: the first (in its working_dir), and how many more."""
    if not changed:
        return ""
    first = min(changed)
    root = deepest(first, dirs.values())
    name = str(first.relative_to(root)) if root is not None else str(first)
    if name == ".":  # the working_dir itself (removed, or made again: a branch switched)
        name = f"{first.name}/"
    return f"{name} +{len(changed) - 1} more" if len(changed) > 1 else name


def is_env_file(path: Path) -> bool:
    return path.name == ".env" or path.name.startswith(".env.") or path.suffix == ".env"

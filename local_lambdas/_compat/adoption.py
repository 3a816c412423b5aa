"""Linux: the daemons a child leaves behind (a double fork: `nginx`, `redis-server
--daemonize yes`, a wrapper's `setsid server &`). The proxy is their subreaper
(processes.become_subreaper), so they become its children when their parent goes: found
among them (`adopted`: not one it started, `started` tells it which, and in a session of
their own), signalled with their groups (`signal_strays`), and reaped as they exit
(`reap_adopted`, `reap_when_gone`), or they would stay zombies. Elsewhere there are none to
find."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator

from local_lambdas._compat import IS_LINUX, IS_WINDOWS
from local_lambdas.orphans import (
    children,
    descendants,
    environment_blank,
    signal_with_group,
    started_at,
    unmarked,
)

# The processes this one started, while they run, each with its start (orphans.started_at):
# a pid reused by another process (pids wrap at 32768 on many systems) is not taken for ours.
_ours: dict[int, int | None] = {}
# The sessions of those it started (each child leads its own: processes.spawn_options): its
# descendants' unless they make their own (`reap_orphans`).
_sessions: set[int] = set()
_starts: list[int] = []  # when each start under way began, as ticks_now (`starting`)


def started(pid: int) -> None:
    """Right after this process starts one (a child, the watchdog, `run`'s command): the rest
    of its children it adopted (`adopted`)."""
    _ours[pid] = started_at(pid)
    _sessions.add(pid)


@contextlib.contextmanager
def starting(since: int | None) -> Iterator[None]:
    """Around a start that began at `since` (orphans.ticks_now), until `started` has its
    process. Meanwhile `reap_orphans` waits (a process that exits at once would look
    adopted, and its exit status be lost), and `adopted` takes no process that began since
    and shows no environment yet: asyncio may hand the process over while it is still
    inside its execve, its environment, so its mark, not yet readable, and a sibling
    stopping then took it for a daemon it had left, killed it and reaped it (a reload's
    new process "exited with code 255", on a loaded machine)."""
    _starts.append(since or 0)
    try:
        yield
    finally:
        _starts.remove(since or 0)


def reap_orphans() -> None:
    """Linux: reap the exited processes this one adopted from its children's sessions, as
    they come (supervisor.py asks every few seconds): a child's `(cmd &)`, a wrapper's job
    that outlives it, a browser's crash handler. Left alone, each stayed a zombie for the
    rest of the run (65 in 7 s from a script that runs `(sleep 0.05 &)` in a loop), counted
    against the user's process limit. A daemon in a session of its own is its child's to
    answer for (`signal_strays` at that child's stop)."""
    if not _starts:
        reap_adopted([pid for pid in adopted_exited() if _session(pid) in _sessions])


def adopted(since: int | None) -> list[int]:
    """Linux: the running processes this one adopted as subreaper (their parent went: a
    daemon's double fork, `nginx` or `redis-server --daemonize yes`), started at `since` or
    later (clock ticks after boot, as orphans.started_at), without a mark (a daemon may
    clear its environment; a marked one is its own child's); none elsewhere, or with
    `since` None."""
    if since is None:
        return []
    return [
        pid for pid, at in _foreign_children()
        if at is not None and since <= at and unmarked(pid) and not _may_be_starting(pid, at)
    ]  # fmt: skip


def _may_be_starting(pid: int, at: int) -> bool:
    """Whether `pid`, begun at `at`, may be the process of a start under way (`starting`):
    begun since that start did, with no environment to read yet (inside its execve). A
    daemon's environment shows, unless it cleared it whole."""
    return bool(_starts) and at >= min(_starts) and environment_blank(pid)


def unmarked_descendants() -> list[tuple[int, int]]:
    """Linux: the running processes below this one (in the trees of the children it
    started, or daemons it adopted) that carry no mark, each with its start: a helper
    started with a cleared environment, a daemon that cleared its own. Once this process is
    gone neither a mark nor a child's group finds them (the parent-death signal ends a child
    before anything can look below it): the watchdog is told of them
    (orphan_watchdog.Watchdog.stray)."""
    if not IS_LINUX:
        return []
    adopted = {pid: at for pid, at in _foreign_children() if at is not None}
    # From what it started, not from itself: an embedder's (a test's) own are not the run's.
    ours = [pid for pid, at in _ours.items() if started_at(pid) == at]  # (not a reused pid)
    below = descendants([*ours, *adopted]) | adopted
    return [(pid, at) for pid, at in below.items() if not _is_ours(pid, at) and unmarked(pid)]


def below(root: int | None) -> set[int]:
    """Linux, for this process as its children's subreaper (processes.become_subreaper): where
    the marks of the child `root` can be, its tree and what this process adopted with theirs
    (a daemon's double fork lands here, marked or not); with `root` None, every process below
    this one. This process's own children are read last, and again until they hold no news:
    one re-parented here while the walk went on (its parent exited) is not missed."""
    own = os.getpid()
    found = set() if root is None else {root, *descendants([root])}
    while True:
        new = [
            pid for pid in children(own)
            if pid not in found and (root is None or pid not in _ours)
        ]  # fmt: skip
        if not new:
            return found
        found.update(new)
        found.update(descendants(new))


def adopted_exited() -> list[int]:
    """Linux: the processes this one adopted (as `adopted`) that have exited and wait to be
    reaped."""
    return [pid for pid, at in _foreign_children() if at is None]


def _foreign_children() -> list[tuple[int, int | None]]:
    """Linux: this process's children, each with its start (None: exited), that only a
    daemon leaves: not started here (this process, a test's or an embedder's, may start
    others of its own) and in another session (a daemon makes its own)."""
    if not IS_LINUX:
        return []
    own_session = os.getsid(0)
    return [
        (pid, at) for pid in children(os.getpid())
        if not _is_ours(pid, at := started_at(pid)) and _session(pid) != own_session
    ]  # fmt: skip


def _is_ours(pid: int, start: int | None) -> bool:
    """Whether `pid`, started at `start` (None: it has exited), is one this process started:
    an exited one by its pid alone (asyncio's watcher reaps it, never `reap_adopted`)."""
    return pid in _ours and (start is None or _ours[pid] == start)


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def signal_strays(pids: list[int], *, hard: bool, spared: set[int] | None = None) -> list[int]:
    """POSIX: SIGTERM (`hard`: SIGKILL) each of `pids` (`adopted`'s), and the whole group of
    one that leads its own (a daemon's workers, which hold its port); those signalled.
    `spared`: as orphans.signal_with_group's."""
    if IS_WINDOWS:
        return []
    sig = signal.SIGKILL if hard else signal.SIGTERM
    return [pid for pid in pids if signal_with_group(pid, sig, spared)]


def forget(pid: int) -> None:
    """A process `started` is gone (reaped): its pid, once reused, is a stranger's (kept, a
    daemon taking it would be taken for ours, and left running at the stop)."""
    _ours.pop(pid, None)


def reap_adopted(pids: list[int]) -> list[int]:
    """Reap those of `pids` that are this process's children by adoption and have exited;
    the ones still running, to be reaped later. Never pass a pid asyncio spawned: its own
    watcher reaps it."""
    running = []
    for pid in pids:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                running.append(pid)
        except ChildProcessError:
            continue  # not ours to reap (its parent is alive), or reaped already
    return running


async def reap_when_gone(pids: list[int], timeout: float) -> None:
    """Reap `pids` (signalled processes that may be this process's by adoption) as they
    exit, for up to `timeout` seconds: one reaped before it has died would be a zombie for
    the rest of the run."""
    deadline = time.monotonic() + timeout
    while pids := reap_adopted(pids):
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.02)  # an adopted process's exit has no event to wait on

"""How a child's process tree is handled on each platform: started in a group of its own
(POSIX; a job object on Windows) that dies with the proxy, signalled and killed as a group,
its descendants found (by their mark, orphans.py) and reaped, the daemons it leaves behind
adopted and stopped."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from local_lambdas._compat import IS_LINUX, IS_WINDOWS, limits
from local_lambdas.orphans import SPAWN_MARK as SPAWN_MARK
from local_lambdas.orphans import children, group_running, unmarked
from local_lambdas.orphans import kill_marked as kill_marked
from local_lambdas.orphans import marked as marked
from local_lambdas.orphans import started_at as started_at

_PR_SET_PDEATHSIG = 1
# Loaded now, not in the forked child, where only async-signal-safe work should happen.
_libc = ctypes.CDLL(None, use_errno=True) if IS_LINUX else None


def _child_setup() -> None:
    limits.restore_open_files()
    if IS_LINUX:
        _die_with_parent()


def _die_with_parent() -> None:
    # If the proxy dies, even by SIGKILL, the kernel sends the child SIGKILL. Grandchildren
    # are reached through the process group at stop.
    assert _libc is not None
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the proxy died before prctl took effect
        os._exit(1)


def spawn_options() -> dict[str, Any]:
    """Keyword arguments for asyncio.create_subprocess_exec: own process group, die with us."""
    if sys.platform == "win32":
        import subprocess

        # Suspended until `spawned` has put it in its job object: a child that starts its
        # own children at once (a .cmd wrapper's python) would otherwise have them outside.
        flags = subprocess.CREATE_NEW_PROCESS_GROUP
        if _nt_resume() is not None:
            flags |= _CREATE_SUSPENDED
        return {"creationflags": flags}
    needed = IS_LINUX or limits.raised()
    return {"start_new_session": True, "preexec_fn": _child_setup if needed else None}


def started(pid: int) -> None:
    """Right after this process starts one (a child, the watchdog, `run`'s command): the rest
    of its children it adopted (`adopted`)."""
    _ours.add(pid)


def adopted(since: int | None) -> list[int]:
    """Linux: the running processes this one adopted as subreaper (their parent went: a
    daemon's double fork, `nginx` or `redis-server --daemonize yes`), started at `since` or
    later (clock ticks after boot, as orphans.started_at), without a mark (a daemon may
    clear its environment; a marked one is its own child's); none elsewhere, or with
    `since` None."""
    if since is None:
        return []
    return [pid for pid, at in _foreign_children() if (at or -1) >= since and unmarked(pid)]


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
        (pid, started_at(pid)) for pid in children(os.getpid())
        if pid not in _ours and _session(pid) != own_session
    ]  # fmt: skip


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def signal_strays(pids: list[int], *, hard: bool) -> list[int]:
    """POSIX: SIGTERM (`hard`: SIGKILL) each of `pids` (`adopted`'s), and the whole group of
    one that leads its own (a daemon's workers, which hold its port); those signalled."""
    if IS_WINDOWS:
        return []
    sig = signal.SIGKILL if hard else signal.SIGTERM
    sent = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid != os.getpgrp():
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
            sent.append(pid)
    return sent


_ours: set[int] = set()  # the processes this one started, while they run


def spawned(pid: int) -> None:
    """Right after a child starts. Windows has no process groups to kill and no parent-death
    signal: each child gets a job object of its own, which kills its whole tree when it is
    terminated or when its last handle closes, as it does when the proxy dies, however."""
    started(pid)
    if sys.platform == "win32":
        import win32api
        import win32con
        import win32job

        job = win32job.CreateJobObject(None, "")
        limits = win32job.QueryInformationJobObject(job, win32job.JobObjectExtendedLimitInformation)
        limits["BasicLimitInformation"]["LimitFlags"] |= win32job.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        win32job.SetInformationJobObject(job, win32job.JobObjectExtendedLimitInformation, limits)
        access = win32con.PROCESS_SET_QUOTA | win32con.PROCESS_TERMINATE | _PROCESS_SUSPEND_RESUME
        process = win32api.OpenProcess(access, False, pid)
        try:
            win32job.AssignProcessToJobObject(job, process)
            _jobs[pid] = job
        finally:
            resume = _nt_resume()
            if resume is not None:  # it was created suspended (spawn_options): let it run
                resume(int(process))
            win32api.CloseHandle(process)


_PROCESS_SUSPEND_RESUME = 0x0800
_CREATE_SUSPENDED = 0x0004  # not among subprocess's constants


def _nt_resume() -> Callable[[int], int] | None:
    """Windows: ntdll's NtResumeProcess (resumes every thread of a process), if there."""
    if sys.platform != "win32":
        return None
    resume: Callable[[int], int] | None = getattr(ctypes.windll.ntdll, "NtResumeProcess", None)
    return resume


def reaped(pid: int) -> None:
    """After a child's group is gone: let go of what `spawned` kept for it."""
    _ours.discard(pid)
    job = _jobs.pop(pid, None)
    if job is not None:
        job.Close()


_jobs: dict[int, Any] = {}  # Windows: child pid -> its job object handle


def stop_group(pid: int) -> bool:
    """Ask the process group led by `pid` to stop (SIGTERM; Windows: CTRL_BREAK_EVENT to the
    child's console process group). False when no such group is left."""
    if sys.platform == "win32":
        try:
            os.kill(pid, signal.CTRL_BREAK_EVENT)
        except (OSError, SystemError):
            # Without a console shared with the child (a service, CI, Wine) there is no
            # Ctrl+Break to send: the caller goes on to kill_group.
            return False
        return True
    return _killpg(pid, signal.SIGTERM)


def kill_group(pid: int) -> bool:
    """Kill the process group led by `pid` (SIGKILL; Windows: terminate the child's job object,
    and with it every descendant). False when no such group is left."""
    if sys.platform == "win32":
        job = _jobs.get(pid)
        if job is None:
            return False
        import win32job

        win32job.TerminateJobObject(job, 1)
        return True
    return _killpg(pid, signal.SIGKILL)


def _killpg(pid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # macOS refuses killpg on a group whose leader is a zombie; the leader is reaped by us.
        return False
    return True


def group_alive(pid: int) -> bool:
    """Whether any process of the group led by `pid` still runs (Linux: reaping the adopted
    members that have exited)."""
    if sys.platform == "win32":
        job = _jobs.get(pid)
        if job is None:
            return False
        import win32job

        accounting = win32job.QueryInformationJobObject(
            job, win32job.JobObjectBasicAccountingInformation
        )
        return bool(accounting["ActiveProcesses"])
    return group_running(pid)


def process_running(pid: int) -> bool:
    """Whether `pid` still runs: False once it has exited, even before it is reaped."""
    if not hasattr(os, "waitid"):
        return True  # no way to peek without reaping; the caller's wait will tell
    try:
        # WNOWAIT looks without reaping: asyncio's child watcher still gets the exit status.
        exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False  # already reaped
    return exited is None


_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Linux: descendants whose parent exits (a daemon's double fork, `setsid cmd &`) are
    re-parented to this process instead of to init, so they stay in its tree."""
    if _libc is not None:
        _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def descendants(pid: int, mark: str) -> list[int]:
    """The processes descended from the child `pid` spawned with `mark`: Linux, by the mark
    (orphans.marked); Windows, the other processes in the child's job object."""
    if sys.platform == "win32":
        job = _jobs.get(pid)
        if job is None:
            return []
        import win32job

        members = win32job.QueryInformationJobObject(job, win32job.JobObjectBasicProcessIdList)
        return [member for member in members if member != pid]
    return marked(mark)


def command_line(pid: int) -> str:
    """A process's command line, as ps shows it (Linux; elsewhere, and once it is gone, "")."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as raw:
            return raw.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


async def command_lines(pids: Iterable[int]) -> dict[int, str]:
    """The command lines of `pids` that still run (command_line). One in the middle of an
    exec shows none for a moment (a wrapper's `setsid server &` as the wrapper exits): it is
    read again for up to 100 ms. A process gone or a zombie is left out (Linux; elsewhere,
    each with no command line)."""
    found = {pid: command_line(pid) for pid in pids}
    if not IS_LINUX:
        return found
    deadline = time.monotonic() + _EXEC_WAIT
    while True:
        for pid in [pid for pid, line in found.items() if not line]:
            if started_at(pid) is None:
                del found[pid]  # gone: it runs no longer
            else:
                found[pid] = command_line(pid)
        if all(found.values()) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.005)


_EXEC_WAIT = 0.1


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

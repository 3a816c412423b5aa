"""How a child's process tree is handled on each platform: started in a group of its own
(POSIX; a job object on Windows) that dies with the proxy, signalled and killed as a group,
its descendants found (by their mark, orphans.py); the daemons it leaves behind are
adoption.py's."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from local_lambdas import orphans
from local_lambdas._compat import IS_LINUX, adoption, limits
from local_lambdas.orphans import SPAWN_MARK as SPAWN_MARK
from local_lambdas.orphans import group_running
from local_lambdas.orphans import started_at as started_at
from local_lambdas.orphans import ticks_now as ticks_now

_PR_SET_PDEATHSIG = 1
# Loaded now, not in the forked child, where only async-signal-safe work should happen.
_libc = ctypes.CDLL(None, use_errno=True) if IS_LINUX else None


def _child_setup(proxy: int) -> None:
    limits.restore_open_files()
    if IS_LINUX:
        _die_with_parent(proxy)


def _die_with_parent(proxy: int) -> None:
    # If the proxy dies, even by SIGKILL, the kernel sends the child SIGKILL. Grandchildren
    # are reached through the process group at stop.
    assert _libc is not None
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The proxy died before prctl took effect: the child has another parent now. (Not
    # "parent is 1": a container's proxy is its first process, pid 1, parent of them all.)
    if os.getppid() != proxy:
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
    setup = functools.partial(_child_setup, os.getpid()) if needed else None
    return {"start_new_session": True, "preexec_fn": setup}


def spawned(pid: int) -> None:
    """Right after a child starts. Windows has no process groups to kill and no parent-death
    signal: each child gets a job object of its own, which kills its whole tree when it is
    terminated or when its last handle closes, as it does when the proxy dies, however."""
    adoption.started(pid)
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
    adoption.forget(pid)
    job = _jobs.pop(pid, None)
    if job is not None:
        job.Close()


_jobs: dict[int, Any] = {}  # Windows: child pid -> its job object handle


def stop_group(pid: int) -> bool:
    """Ask the process group led by `pid` to stop (SIGTERM, then SIGCONT as systemd sends it,
    so that a stopped process (SIGSTOP, Ctrl+Z in a shell of its own) ends on it rather than
    on the SIGKILL <stop_timeout> later; Windows: CTRL_BREAK_EVENT to the child's console
    process group). False when no such group is left."""
    if sys.platform == "win32":
        # Not os.kill(pid, CTRL_BREAK_EVENT): where the event cannot be sent (no console
        # shared with the child: a service, CI, Wine) CPython 3.11's os.kill goes on to
        # TerminateProcess, which kills the child at once, and returns with the error still
        # set, raised later as a SystemError by whatever runs next (a stop failed so). Then
        # there is no Ctrl+Break to send: the caller goes on to kill_group.
        return bool(ctypes.windll.kernel32.GenerateConsoleCtrlEvent(signal.CTRL_BREAK_EVENT, pid))
    if not _killpg(pid, signal.SIGTERM):
        return False
    _killpg(pid, signal.SIGCONT)  # (the group may be gone already: the SIGTERM ended it)
    return True


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
    return group_running(pid, _where(pid))


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


_subreaper = False  # whether become_subreaper took


def become_subreaper() -> None:
    """Linux: descendants whose parent exits (a daemon's double fork, `setsid cmd &`) are
    re-parented to this process instead of to init, so they stay in its tree."""
    global _subreaper
    if _libc is not None:
        _subreaper = _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def marked(mark: str, root: int | None = None) -> list[int]:
    """Linux: the processes carrying `mark` (orphans.marked): those of the child `root`, or
    with None those of the run (`mark` is then the run's, which begins every child's). As
    the subreaper of its children's trees this process has them all below it, so only
    those trees are read (adoption.below), not every process on the machine: reading all
    of /proc some five times a child took 83% of the CPU of stopping 150 children."""
    return orphans.marked(mark, _where(root))


def kill_marked(
    mark: str,
    sig: signal.Signals | None = None,
    spared: set[int] | None = None,
    root: int | None = None,
) -> list[int]:
    """orphans.kill_marked, reading only where `marked` reads."""
    return orphans.kill_marked(mark, sig, spared, _where(root))


def _where(root: int | None) -> Callable[[], Iterable[int]] | None:
    return functools.partial(adoption.below, root) if _subreaper else None


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
    return marked(mark, pid)


def cpu_ticks(pids: Iterable[int]) -> int | None:
    """Linux: the CPU time these processes used, with that of the children they waited for
    (a compiler's, under cargo or make), in clock ticks; None elsewhere."""
    if not IS_LINUX:
        return None
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue  # gone
        total += sum(int(field) for field in fields[11:15])  # utime stime cutime cstime
    return total


def command_line(pid: int) -> str:
    """A process's command line, as ps shows it, on one line whatever its arguments hold (a
    `python -c` script's newlines, a terminal's escapes): a message quoting it stays one
    line (Linux; elsewhere, and once it is gone, "")."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as raw:
            text = raw.read().decode(errors="replace")
    except OSError:
        return ""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


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

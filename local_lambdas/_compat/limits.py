"""This process's limit on open files: raised at start (each client takes a descriptor), and
given back to the programs it starts, which expect the limit they would have had."""

from __future__ import annotations

import errno
import os
import sys
import time
from typing import Any

from local_lambdas._compat import IS_LINUX

_OPEN_FILES_CAP = 65536
_open_files: tuple[int, int] | None = None  # the limits before raise_open_files_limit


def raise_open_files_limit() -> None:
    """POSIX: raise this process's soft limit on open files to its hard limit (at most
    65536), as Go programs do at start. Each client takes a descriptor, and one more for a
    pass-through child: the soft limit of 1024 that many desktops set is some 450 clients at
    once, after which new connections are refused. Children get the limit they would have
    had (spawn_options): programs built on select() break past descriptor 1023."""
    global _open_files
    if sys.platform == "win32" or _open_files is not None:
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _OPEN_FILES_CAP if hard == resource.RLIM_INFINITY else min(hard, _OPEN_FILES_CAP)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):
        return  # macOS may refuse above OPEN_MAX: keep what there is
    _open_files = (soft, hard)


def open_files() -> tuple[int, int] | None:
    """(descriptors open, the soft limit) of this process; None where it cannot be told
    cheaply (not Linux, no limit)."""
    if not IS_LINUX:
        return None
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        return len(os.listdir("/proc/self/fd")), soft
    except OSError:
        return None


_RAISE = "raise the limit (ulimit -n, a container's nofile)"
_A_START = 8  # descriptors a start takes at once: both ends of its three pipes, and of the
# one that tells of its exec


def out_of_files(error: OSError) -> str | None:
    """Linux: why this process could not start a program (`error`, the start's) when it is
    at its limit on open files (each child keeps three, for its input and output), in words
    with the fix; None when it is not (or cannot tell)."""
    told = error.errno == errno.EMFILE
    if not IS_LINUX or not (told or (error.errno or 0) <= 0):
        return None  # another error (uvloop says "Unknown error -1" of this one: counted)
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return None
    counted = open_files()
    held = counted[0] if counted else soft  # (None: no descriptor left even to count them)
    if not told and held < soft - _A_START:
        return None
    return (f"out of open files: the proxy holds {held} of its limit of {soft} (three a child, "
            f"one a client); {_RAISE}")  # fmt: skip


def out_of_processes() -> str:
    """Why the system refused this process a new process (a fork's EAGAIN): the limits that
    count them (this user's, `ulimit -u`, which root passes; its control group's, a
    container's or a service's pids.max; threads count in both), with the fix."""
    limits = []
    if sys.platform != "win32" and os.geteuid() != 0:
        import resource

        user = resource.getrlimit(resource.RLIMIT_NPROC)[0]
        if user != resource.RLIM_INFINITY:
            limits.append(f"this user's (ulimit -u: {user})")
    if (group := _pids_max()) is not None:
        limits.append(f"its control group's (pids.max: {group}, a container's or a service's)")
    which = " or ".join(limits) or "the system's"
    return (f"the system refused a new process: {which} limit on processes and threads is "
            "reached; raise it, or run fewer")  # fmt: skip


def _pids_max() -> int | None:
    """Linux: the pids.max of this process's control group (v2, or v1's pids controller);
    None where there is none, or no limit."""
    try:
        with open("/proc/self/cgroup") as groups:
            lines = groups.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        folder = "" if controllers == "" else "pids" if "pids" in controllers.split(",") else None
        if folder is None:
            continue
        try:
            with open(os.path.join("/sys/fs/cgroup", folder, path.lstrip("/"), "pids.max")) as f:
                text = f.read().strip()
        except OSError:
            continue
        return int(text) if text.isdigit() else None
    return None


# How often at most the proxy says that it cannot accept new clients for want of descriptors:
# each refused accept would say it again (asyncio's loop up to its backlog, 2048 times, for
# each time the listener is readable: CPython gh-151615).
_UNACCEPTED_EVERY = 60.0
_unaccepted_said = float("-inf")


def unaccepted_clients() -> str | None:
    """What to say when a client cannot be accepted for want of descriptors (EMFILE); None
    when it was said within the last minute."""
    global _unaccepted_said
    now = time.monotonic()
    if now - _unaccepted_said < _UNACCEPTED_EVERY:
        return None
    _unaccepted_said = now
    how_many = ""
    if sys.platform != "win32":
        import resource

        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        how_many = f" (its limit: {limit})" if limit != resource.RLIM_INFINITY else ""
    return (f"cannot accept new clients: out of open files{how_many}; they wait until "
            f"connections close; {_RAISE}")  # fmt: skip


def restore_open_files() -> None:
    # Runs in a child between fork and exec: nothing is imported here (another thread may
    # have held the import lock at the fork); raise_open_files_limit imported resource.
    if _open_files is not None:
        resource = sys.modules["resource"]
        resource.setrlimit(resource.RLIMIT_NOFILE, _open_files)


def command_options() -> dict[str, Any]:
    """Keyword arguments for asyncio.create_subprocess_exec for the command `run` starts: it
    is the user's, so it starts with the open-files limit it would have had (as Go restores
    it for what it executes), in our session, to get the terminal's Ctrl+C."""
    return {"preexec_fn": restore_open_files} if _open_files is not None else {}


def raised() -> bool:
    """Whether raise_open_files_limit changed the limit (children then get it back)."""
    return _open_files is not None

"""A run's processes found by their mark, and the watchdog process that stops them when the
proxy is killed (POSIX); whether a process group still runs (`group_running`), zombies apart.

Every child is spawned with SPAWN_MARK=<run>.<spawn number>. in its environment, which its
descendants inherit however far they go (a new session, a double fork): `marked` finds them on
Linux by reading /proc. The watchdog process (the proxy's end is orphan_watchdog.Watchdog) reads
`+PGID` / `-PGID` lines on its stdin as the proxy's children come and go, and `@PID START` for
each process below the proxy with no mark (a helper started with a cleared environment, a daemon
that cleared its own), forgotten at a clean stop (`.`), and `=INODE PATH` for each socket a
child listens on; end of input means the proxy is gone: it SIGTERMs every group still listed,
every marked process and those, SIGKILLs what is left after a grace period, removes those
sockets (in a shared --socket-dir: unless another run's replaced one since) and the socket
directory, and exits.

Standard library only, no asyncio, nor modules whose import costs (signal's enums, typing,
contextlib): the proxy starts `python -I -S` importing this file alone from its folder
(orphan_watchdog), so the watchdog starts in a few milliseconds instead of paying for
site-packages and the package (a tenth of a second of CPU for every proxy start). Never
compiled (setup.py): that import would not load a compiled module outside its package.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # (typing's import costs the watchdog more than the rest of its start)
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable, Iterable, Iterator
else:
    import _signal as signal  # the same numbers, without the enum module's import

SPAWN_MARK = "LOCAL_LAMBDAS_SPAWN"  # in every child's environment: <run>.<spawn number>.
_GRACE = 2.0
_EXEC_WAIT = 0.1  # how long a process showing no environment (mid-exec) is read again
_SCANS = 5  # kill_marked's scans at most: each after the last one's signals
_PF_KTHREAD = 0x00200000  # /proc/PID/stat's flag of a kernel thread


def marked(mark: str, among: Callable[[], Iterable[int]] | None = None) -> list[int]:
    """Linux: the processes (not this one) whose environment holds SPAWN_MARK=`mark`..., that
    is, descended from a child spawned with that mark, however far they went: a new session,
    a double fork. A process that cleared its environment is not found (_compat.adoption.adopted
    finds a daemon's, once its child exits). One in the middle of an exec shows no
    environment for a moment (the new image's is not set up yet; up to milliseconds on a
    busy machine): one started since this process, showing none, is read again for up to
    100 ms, as a kill that missed it would leave it running (a wrapper's `setsid server &`
    as the wrapper exits). `among`: the processes to read, asked anew at each call, rather
    than every process on the machine (the proxy, their subreaper, has them all below it:
    _compat.processes.marked); the watchdog, left with no tree to walk, reads them all."""
    if not sys.platform.startswith("linux"):
        return []
    needle = f"{SPAWN_MARK}={mark}".encode()
    own = os.getpid()
    found: list[int] = []
    blank: list[int] = []  # no environment to read now
    pids = among() if among is not None else _every_process()
    for pid in pids:
        if pid != own:
            _read_mark(pid, needle, found, blank)
    if blank:
        since = started_at(own) or 0
        blank = [pid for pid in blank if (started_at(pid) or 0) >= since]
    deadline = time.monotonic() + _EXEC_WAIT
    while blank and time.monotonic() < deadline:
        time.sleep(0.0005)
        again, blank = blank, []
        for pid in again:
            _read_mark(pid, needle, found, blank)
    return found


def _every_process() -> Iterator[int]:
    return (int(entry.name) for entry in os.scandir("/proc") if entry.name.isdigit())


def _environ(pid: int) -> bytes | None:
    """Linux: process `pid`'s environment as /proc shows it (empty inside an execve, for a
    moment); None once it is gone, or if it is another user's."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return environ.read()
    except OSError:
        return None


def _read_mark(pid: int, needle: bytes, found: list[int], blank: list[int]) -> None:
    data = _environ(pid)
    if data is None:
        return  # gone, or another user's
    if not data:
        blank.append(pid)
        return
    for item in data.split(b"\0"):
        if item.startswith(needle):
            found.append(pid)
            return


def ticks_now() -> int | None:
    """Linux: now, as `started_at` counts (clock ticks since boot, the kernel's boot-time
    clock), so that a process started after this call has a start at least this; None
    elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def started_at(pid: int) -> int | None:
    """When a process that runs a program started (clock ticks since boot); None for a
    zombie, a kernel thread or a process gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
    except OSError:
        return None
    if fields[0] == b"Z" or int(fields[6]) & _PF_KTHREAD:
        return None
    return int(fields[19])


def children(pid: int) -> list[int]:
    """Linux: the processes whose parent is `pid` (its threads' /proc children lists)."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children", "rb") as listed:
                found += [int(child) for child in listed.read().split()]
        except OSError:
            continue  # a thread gone since
    return found


def unmarked(pid: int) -> bool:
    """Linux: whether process `pid` carries no SPAWN_MARK (or cannot be read)."""
    return f"{SPAWN_MARK}=".encode() not in (_environ(pid) or b"")


def environment_blank(pid: int) -> bool:
    """Linux: whether process `pid` shows no environment: inside an execve (for a moment),
    one that cleared its own whole, or gone."""
    return not _environ(pid)


def kill_marked(
    mark: str,
    sig: signal.Signals | None = None,
    spared: set[int] | None = None,
    among: Callable[[], Iterable[int]] | None = None,
) -> list[int]:
    """Signal every process `marked(mark, among)` finds (SIGKILL unless `sig` says), but those in
    a group of `spared`, which had the signal with their group (a second SIGTERM is "stop
    now" to many servers, local-lambdas among them); the pids found. Pass those to
    _compat.adoption.reap_when_gone, since adopted ones that exit are ours to reap (none on
    Windows).

    A process that forks between the scan that finds it and its signal leaves a child no
    scan saw (a daemon starting its workers as its wrapper exits): the scan is made again
    until it finds no process it has not signalled, within _SCANS (none on Windows)."""
    signalled: list[int] = []
    for _ in range(_SCANS):
        new = [pid for pid in marked(mark, among) if pid not in signalled]
        if not new:
            break
        for pid in new:
            try:
                if not spared or os.getpgid(pid) not in spared:
                    os.kill(pid, sig or signal.SIGKILL)
            except OSError:
                pass  # gone since
        signalled += new
    return signalled


def _group_members(
    pgid: int, among: Callable[[], Iterable[int]] | None
) -> list[tuple[int, bytes, int]]:
    """Linux: the processes of group `pgid` (among those `among` gives, as `marked`), each as
    (pid, state, parent pid); a state of b"Z" is a zombie, exited and waiting for its parent
    to reap it."""
    members = []
    for pid in among() if among is not None else _every_process():
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()  # state, ppid, pgrp...
        except OSError:
            continue  # gone since
        if len(fields) >= 3 and int(fields[2]) == pgid:
            members.append((pid, fields[0], int(fields[1])))
    return members


def group_running(pgid: int, among: Callable[[], Iterable[int]] | None = None) -> bool:
    """Whether a process of group `pgid` still runs. A zombie does not: killpg(0) still finds
    one until its parent reaps it, which init may do lazily (a container's or a VM's first
    process), and which nobody else does for one this process adopted (a wrapper's background
    job whose parent died, under the proxy as subreaper): this process reaps those here, as
    it looks (the group's leader is asyncio's to reap). `among`: as `marked`'s."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not sys.platform.startswith("linux"):
        return True
    own, running = os.getpid(), False
    for member, state, parent in _group_members(pgid, among):
        if state != b"Z":
            running = True
        elif parent == own and member != pgid:
            try:  # noqa: SIM105 (contextlib's import costs the watchdog more than this)
                os.waitpid(member, os.WNOHANG)
            except ChildProcessError:
                pass  # reaped since
    return running


def descendants(pids: list[int]) -> dict[int, int]:
    """Linux: every process descended from `pids`, each with its start (`started_at`)."""
    found: dict[int, int] = {}
    waiting = list(pids)
    while waiting:
        for child in children(waiting.pop()):
            start = started_at(child)
            if start is not None and child not in found:
                found[child] = start
                waiting.append(child)
    return found


def signal_with_group(pid: int, sig: signal.Signals, spared: set[int] | None = None) -> bool:
    """Signal process `pid`, and the whole group it leads if it leads one (a daemon's
    workers, which hold its port) other than this process's; whether it was there. `spared`:
    the groups signalled already, whose processes are not signalled again (a server may take
    a second SIGTERM as "stop now"); a group signalled here is added to it."""
    try:
        group = os.getpgid(pid)
        if spared is not None and group in spared:
            return True
        if group == pid != os.getpgrp():
            os.killpg(pid, sig)
            if spared is not None:
                spared.add(pid)
        else:
            os.kill(pid, sig)
    except OSError:
        return False
    return True


def _signal_all(
    groups: set[int], strays: dict[int, int], sig: signal.Signals, spared: set[int] | None = None
) -> None:
    """Signal the running `groups` and `strays` (pid: start; a pid whose start differs was
    reused: left alone), each stray with its group; `spared` as signal_with_group's, given
    the groups signalled here too."""
    for pgid in groups:
        if group_running(pgid):
            os.killpg(pgid, sig)
            if spared is not None:
                spared.add(pgid)
    for pid, start in strays.items():
        if started_at(pid) == start:
            signal_with_group(pid, sig, spared)


def main(argv: list[str]) -> int:
    """`orphans.py RUN_MARK`: the watchdog process. Its input: `#SOCKET_DIR` when the run
    made its own; `+PGID` and `-PGID` as the children's groups come and go; `@PID START` for
    a process below the proxy with no mark; `=INODE PATH` for a socket a child listens on;
    `.` after a clean stop, which leaves those alone."""
    # Ctrl+C in the terminal goes to the proxy, which stops cleanly and then closes our input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    strays: dict[int, int] = {}
    sockets: dict[bytes, int] = {}  # path: inode
    own_dir = b""
    for line in sys.stdin.buffer:
        sign, number = line[:1], line[1:].strip()
        if number.isdigit():
            (groups.add if sign == b"+" else groups.discard)(int(number))
        elif sign == b"@" and (told := number.split()) and all(n.isdigit() for n in told):
            strays[int(told[0])] = int(told[-1])
        elif sign == b"=" and (told := line[1:].rstrip(b"\n").split(b" ", 1))[0].isdigit():
            sockets[told[-1]] = int(told[0])
        elif sign == b"#":
            own_dir = line[1:].rstrip(b"\n")
        elif sign == b".":  # the proxy's clean stop, which stopped them (or they went)
            strays.clear()
            sockets.clear()
    run_mark = argv[0] + "."
    spared: set[int] = set()  # each process gets one SIGTERM: its group's, or its own
    _signal_all(groups, strays, signal.SIGTERM, spared)
    _signal_all(groups, strays, signal.SIGCONT)  # a stopped one ends on its SIGTERM too
    escaped = kill_marked(run_mark, signal.SIGTERM, spared)
    if escaped or spared or strays:  # (after a clean stop, mostly nothing: no scan again)
        deadline = time.monotonic() + _GRACE
        while time.monotonic() < deadline and (
            any(group_running(g) for g in groups) or escaped
            or any(started_at(pid) == start for pid, start in strays.items())
        ):  # fmt: skip
            time.sleep(0.05)  # nothing to wait on: other processes' exits give no event here
            escaped = marked(run_mark)
        _signal_all(groups, strays, signal.SIGKILL)
        kill_marked(run_mark)
    for path, inode in sockets.items():  # a shared --socket-dir's (the run's own goes whole)
        try:
            if os.lstat(path).st_ino == inode:  # not another run's since
                os.unlink(path)
        except OSError:
            pass  # gone since
    if own_dir and os.path.isdir(own_dir):  # after a clean stop, already gone
        import shutil  # here, not at start: its imports cost more than the rest of ours

        shutil.rmtree(own_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

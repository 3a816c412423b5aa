"""One started OS process: its output, split into lines, and its exit, seen from the process
itself (asyncio's `process_exited`, a wait on the process, not on its pipes): a descendant
that keeps the pipes open, as `npm start` and `sh -c 'daemon & exec server'` leave, does not
hide the exit. `terminate` stops it and everything descended from it (docs/protocol.md,
"Stopping"). Instances (instance.py) and tasks (tasks.py) are started this way.

A server's standard input is a pipe the proxy holds open and never writes, as a terminal no
one types into: servers that stop when their input ends (esbuild's --serve, Tailwind's
--watch) keep serving, and stop by themselves should the proxy be killed. A task's or
build's is /dev/null (NUL), so that a prompt (apt-get's "Do you want to continue?") ends it
instead of waiting for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal, cast

from local_lambdas._compat import adoption, processes
from local_lambdas.executables import as_shell_script, foreign_file

if TYPE_CHECKING:
    from local_lambdas.supervision.orphan_watchdog import Watchdog

log = logging.getLogger("local_lambdas.spawned")

# A line without its end held longer than this is shown as it stands (in pieces as long as
# the reads that bring it), so that a line that never ends is not held whole.
_MAX_LINE = 64 * 1024
# A line left without its end for this long is shown as it stands: a prompt waiting for an
# answer ("Seed the database? [y/N] "), which a terminal would show at once. (A progress bar
# redrawn with \r writes more often, and is shown as it stands once it stops.)
_UNENDED_WAIT = 0.5
_KILLED_WAIT = 5.0  # after SIGKILL, the longest wait for the exit to be seen
Output = Callable[[Literal["stdout", "stderr"], list[bytes]], None]


async def spawn(
    output: Output, mark: str, executable: str, args: list[str], *, cwd: str,
    env: dict[str, str], watchdog: Watchdog | None, serving: bool = True,
) -> Spawned:  # fmt: skip
    """Start `executable` in a process group of its own, its output to `output`, the group
    watched by `watchdog` until `release`; raises OSError when it cannot be started. Its
    input: a pipe kept open while `serving`, else /dev/null (a task, a build)."""
    if foreign_file(executable):  # (uvloop's exec would run it as a shell script)
        raise OSError(errno.ENOEXEC, os.strerror(errno.ENOEXEC), executable)
    loop = asyncio.get_running_loop()
    # Read before the start: a daemon's first process (nginx's) may have exited, its start
    # unreadable, by the time the start returns, and what it forked off was then not found.
    since = processes.ticks_now()

    async def started_as(*command: str) -> Spawned:
        _, started = await loop.subprocess_exec(
            lambda: Spawned(output, mark, watchdog),
            *command,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE if serving else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            **processes.spawn_options(),
        )
        return started

    with adoption.starting(since):
        try:
            started = await started_as(executable, *args)
        except OSError as exc:
            if (script := as_shell_script(exc, [executable, *args])) is None:
                raise
            started = await started_as(*script)
        processes.spawned(started.pid)
    started.since = since
    if watchdog is not None:
        watchdog.watch(started.pid)
    return started


class Spawned(asyncio.SubprocessProtocol):
    """One started process: its output, split into lines, and its exit, seen from the
    process (not its pipes). `terminate` stops it and everything descended from it."""

    def __init__(self, output: Output, mark: str, watchdog: Watchdog | None) -> None:
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pid = 0
        self.mark = mark
        self._transport: asyncio.SubprocessTransport | None = None
        self._output = output
        self._watchdog = watchdog
        self._partial = {1: b"", 2: b""}
        self._shown = {1: False, 2: False}  # whether its last line was shown before its end
        self._unended: dict[int, asyncio.TimerHandle] = {}  # by fd: the wait to show it
        self._loop = loop
        self._open_pipes = 0
        self._pipes_closed: asyncio.Future[None] = loop.create_future()
        self._owned: set[int] = set()
        self.since: int | None = None  # when it started (orphans.started_at), for `strays`

    @property
    def returncode(self) -> int | None:
        return self._transport.get_returncode() if self._transport is not None else None

    def owners(self) -> Iterator[int]:
        """The pids that count as this child, for readiness: itself, then its descendants;
        once it has exited, with what the proxy adopted since it started (`strays`)."""
        yield self.pid
        yield from processes.descendants(self.pid, self.mark)
        yield from self.strays()

    def strays(self) -> list[int]:
        """Once this process has exited: those the proxy adopted since it started, without
        a mark (`adoption.adopted`), taken to be a daemon it forked off (nginx without
        `daemon off;` clears its environment). None while it runs: another child's could
        be among them."""
        return adoption.adopted(self.since) if self.exited.done() else []

    def owns(self, pid: int) -> bool:
        """Whether `pid` is this child or one of its descendants (remembered once seen)."""
        if pid in self._owned:
            return True
        if pid in self.owners():
            self._owned.add(pid)
            return True
        return False

    # -- asyncio.SubprocessProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.SubprocessTransport, transport)
        self.pid = self._transport.get_pid()
        self._open_pipes = sum(self._transport.get_pipe_transport(fd) is not None for fd in (1, 2))

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        lines = (self._partial[fd] + data).split(b"\n")
        rest = lines.pop()
        shown = self._shown[fd]
        if shown and lines and lines[0] in (b"", b"\r"):
            del lines[0]  # the end of the line already shown: no empty line after it
        # (Still so while only the CR of its CRLF has come.)
        self._shown[fd] = len(rest) > _MAX_LINE or (shown and not lines and rest == b"\r")
        if len(rest) > _MAX_LINE:  # a line that never ends: shown in pieces
            lines.append(rest)
            rest = b""
        self._partial[fd] = rest
        if lines:
            self._output("stderr" if fd == 2 else "stdout", lines)
        self._stop_waiting(fd)
        if rest:
            self._unended[fd] = self._loop.call_later(_UNENDED_WAIT, self._show_unended, fd)

    def _stop_waiting(self, fd: int) -> None:
        """No longer wait to show what `fd` wrote after its last line's end."""
        waiting = self._unended.pop(fd, None)
        if waiting is not None:
            waiting.cancel()

    def _show_unended(self, fd: int) -> None:
        """Show what `fd` wrote after its last line's end: the whole of a line that may
        never end, or not soon (a prompt)."""
        self._stop_waiting(fd)
        rest, self._partial[fd] = self._partial.get(fd, b""), b""
        if rest:
            self._shown[fd] = True
            self._output("stderr" if fd == 2 else "stdout", [rest])

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 0:  # its input, closed by the process (or its exit): no output ends
            return
        self._show_unended(fd)
        self._open_pipes -= 1
        if self._open_pipes <= 0 and not self._pipes_closed.done():
            self._pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    # -- ours

    async def output_done(self, timeout: float) -> None:
        """Wait up to `timeout` for the output pipes to end, then close them: a process that
        escaped every kill and holds them must not hold the supervisor up."""
        if self._open_pipes > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._pipes_closed), timeout)
        self.close()

    async def release(self, output_wait: float, *, kill_left: bool = True) -> None:
        """Once it has exited: stop what it left in its group (not with `kill_left` False:
        a stop's `terminate` under way gives them its grace; a wrapper that dies on its
        SIGTERM must not cut its server's graceful stop short), tell the watchdog it is
        gone, and wait up to `output_wait` for its last lines (a traceback, say)."""
        if kill_left:
            await self.terminate(0)
        self.let_go()
        await self.output_done(output_wait)

    def let_go(self) -> None:
        """Once it has exited and its group is stopped: the watchdog no longer watches its
        group (a pgid reused by another program's would be killed with the proxy), nor is its
        pid counted as one the proxy started. Said twice, the same."""
        if self._watchdog is not None:
            self._watchdog.forget(self.pid)
        processes.reaped(self.pid)

    def close(self) -> None:
        """Let go of the pipes (the process has exited)."""
        if self._transport is not None:
            self._transport.close()

    async def terminate(self, grace: float) -> bool:
        """SIGTERM the group and the marked descendants, wait up to `grace` for them to go,
        SIGKILL what is left, and see the process exit (reaped by asyncio's watcher). True
        when something was still running at the end of a grace, and was killed."""
        pid, deadline = self.pid, time.monotonic() + grace
        grouped = grace > 0 and processes.stop_group(pid)
        # Each process gets one SIGTERM, its group's or its own: a second one is "stop now"
        # to many servers (Go's and Node.js's idiom, local-lambdas itself).
        spared = {pid} if grouped else set()
        # Descendants that left the group, signalled: adopted by us when their parent went,
        # they are ours to reap once they exit, or they stay zombies (marked() misses those).
        # Not the child itself, which carries the mark too: asyncio's watcher reaps it.
        strays = adoption.signal_strays(self.strays(), hard=False, spared=spared)
        escaped = list(strays)
        if grouped:
            escaped += [
                p for p in processes.kill_marked(self.mark, signal.SIGTERM, spared, pid) if p != pid
            ]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.exited), grace)
            # A process group has no exit event to wait on: poll it, within the grace. What
            # the child leaves to us as it exits (a helper in a session of its own) gets its
            # SIGTERM then, and the rest of the grace.
            while time.monotonic() < deadline:
                left = self.strays()
                if fresh := [p for p in left if p not in strays]:
                    signalled = adoption.signal_strays(fresh, hard=False, spared=spared)
                    strays += signalled
                    escaped += signalled  # (adopted: ours to reap once they exit)
                if not (processes.group_alive(pid) or processes.marked(self.mark, pid) or left):
                    break
                await asyncio.sleep(0.02)
        lingered = grouped and (
            not self.exited.done()
            or processes.group_alive(pid)
            or bool(processes.marked(self.mark, pid))
        )
        processes.kill_group(pid)
        escaped += [p for p in processes.kill_marked(self.mark, root=pid) if p != pid]
        deadline = time.monotonic() + _KILLED_WAIT
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), _KILLED_WAIT)
        except asyncio.TimeoutError:
            log.error("pid %d did not exit %gs after SIGKILL", pid, _KILLED_WAIT)
        # Once its exit is seen, what it left to us: a child that died as the stop began
        # (its group gone, its exit not yet told) has strays only now.
        killed = adoption.signal_strays(self.strays(), hard=True)
        strays += killed
        escaped += killed
        # Until the group is gone, and a stray daemon's: their adopted members are reaped as
        # they die (group_alive), a daemon's workers after it.
        while (  # noqa: ASYNC110
            processes.group_alive(pid) or any(processes.group_alive(g) for g in strays)
        ) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await adoption.reap_when_gone(escaped, max(0.0, deadline - time.monotonic()))
        adoption.reap_adopted(adoption.adopted_exited())  # any that died since
        return lingered

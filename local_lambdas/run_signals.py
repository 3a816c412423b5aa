"""Stop signals (Ctrl+C, SIGTERM) while a run is up, once its loop takes them from
loading_signals.py: `stoppable` for `run` and `check` (`Stops` says what each does in each
phase), `exit_at_once` for a second one while a stop is under way (`serve`'s too), `Echoes`
for what is not a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Final, NoReturn

from local_lambdas import EXIT_INTERRUPTED, _compat
from local_lambdas._compat import processes
from local_lambdas.errors import Stopped
from local_lambdas.output import Printer

log = logging.getLogger("local_lambdas.run_signals")

# A stop signal this soon after the first is that stop delivered twice, not a second one:
# `timeout` sends its SIGTERM to the program, then to the program's process group, and a
# wrapper (a shell script, make, a process manager) may pass on the Ctrl+C the terminal sent
# the whole group. Taken for a second one, it killed the children with no graceful stop.
ECHO_SECONDS: Final = 0.5


class Echoes:
    """Tells a stop signal that echoes the first (ECHO_SECONDS) from a new one."""

    def __init__(self) -> None:
        self._first: float | None = None

    def __call__(self) -> bool:
        """Whether a stop signal now echoes the first; the first, if none came before."""
        now = time.monotonic()
        if self._first is None:
            self._first = now
            return False
        return now - self._first < ECHO_SECONDS


class Stops:
    """What a stop (Ctrl+C, SIGTERM) asked of `run` or `check` does. Before the command
    starts, it stops the run, the children in order (`Stopped`: without it, a SIGTERM while
    they started ended the proxy at once, without a word), and a second one exits at once,
    as `serve`'s does. Once the command is being started, it is the command's: passed on to
    it once (one that comes while it starts is held until it has), SIGTERM as SIGTERM,
    Ctrl+C as SIGINT, but not a Ctrl+C typed in the terminal, which reaches the command
    itself (it runs in the proxy's process group, the terminal's foreground one): pytest
    given a SIGTERM after its SIGINT died without its summary. On Windows the only ones are
    the console's Ctrl+C and Ctrl+Break, which reach every process of the console, the
    command among them: nothing is passed on (as `uv run` does). The first one's echo
    (Echoes) does nothing in any phase: a command under `timeout` got its SIGTERM already.
    """

    def __init__(self, task: asyncio.Task[object] | None, force: Callable[[], None]) -> None:
        self._task = task
        self._force = force
        self.stopped_by: int | None = None
        self._command = False  # the command is being started, or runs
        self._proc: asyncio.subprocess.Process | None = None
        self._held: list[int] = []
        self._echo = Echoes()

    def __call__(self, number: int) -> None:
        if not self._echo():
            self._take(number)

    def _take(self, number: int) -> None:
        if not self._command:
            if self.stopped_by is not None:
                self._force()
            elif self._task is not None:
                self.stopped_by = number
                self._task.cancel()
        elif _compat.IS_WINDOWS or (number == signal.SIGINT and _compat.in_foreground()):
            return  # the terminal or the console sent it to the command too
        elif self._proc is None:
            self._held.append(number)
        else:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(number)

    def starting_command(self) -> None:
        self._command = True

    def started(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        for number in self._held:
            self._take(number)


@contextlib.asynccontextmanager
async def stoppable(printer: Printer) -> AsyncIterator[Stops]:
    """The block, stopped (cancelled, then `Stopped` raised) by a stop signal, or its
    command's (Stops); SIGHUP is ignored meanwhile."""
    stops = Stops(asyncio.current_task(), lambda: exit_at_once(printer))
    undo = _compat.on_signals(asyncio.get_running_loop(), stops, lambda: None)
    try:
        yield stops
    except asyncio.CancelledError:
        if stops.stopped_by is None:
            raise
        raise Stopped(stops.stopped_by) from None
    finally:
        undo()


# The runs of this process (their marks, Supervisor.run_mark) whose children a forced exit
# kills before it exits, as `atexit` holds what a normal exit runs.
_RUNS: list[str] = []


def killed_at_forced_exit(run_mark: str) -> None:
    """Have `exit_at_once` kill the processes of the run marked `run_mark` first."""
    _RUNS.append(run_mark)


def exit_at_once(printer: Printer) -> NoReturn:
    """A second stop signal while a stop is under way: exit now, the children killed first
    (Linux: every process of the run, found by its mark, SIGKILLed), so that none holds its
    port a moment longer; the orphan watchdog (POSIX) stops what could not be found so (a
    process that cleared its environment) and removes the sockets once this process is
    gone, as the job objects do on Windows."""
    log.warning("second stop signal: exiting at once; the children are killed")
    for mark in _RUNS:
        processes.kill_marked(mark + ".")
    printer.flush(1.0)
    os._exit(EXIT_INTERRUPTED)

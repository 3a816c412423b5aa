"""`local-lambdas run MANIFEST -- COMMAND`: start everything, wait until every process is
ready, run the command against it (LOCAL_LAMBDAS_URL), stop; the exit status is the
command's. And what a stop signal does while `run` or `check` runs (`Stops`, `stoppable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from typing import NoReturn

from local_lambdas import EXIT_INTERRUPTED, _compat, explain
from local_lambdas._compat import adoption, limits, processes
from local_lambdas.config import Manifest, Settings
from local_lambdas.errors import CommandNotRun, NotAllReady, Stopped
from local_lambdas.lifecycle import Started, started
from local_lambdas.output import Printer
from local_lambdas.states import State

log = logging.getLogger("local_lambdas.run_command")

_LAST_LINES_SHOWN = 10


async def run_command(
    manifest: Manifest, settings: Settings, printer: Printer, command: list[str], timeout: float
) -> int:
    """The command's exit status (128+N if a signal N ended it). The command carries the
    run's spawn mark, as the children do (orphans.py): if the proxy is killed with SIGKILL,
    the watchdog stops it and whatever it started, as it stops theirs."""
    if not manifest.tasks:  # (a <task> may make it: a build of the test runner)
        _refuse_missing(command[0])
    async with stoppable(printer) as stops, started(manifest, settings, printer) as run:
        await _all_ready(run, timeout)
        log.info("all ready; running %s", _compat.quoted(command))
        stops.starting_command()
        proc = await _started_command(command, run)
        stops.started(proc)
        try:
            code = await proc.wait()
        finally:
            adoption.forget(proc.pid)
        status = code if code >= 0 else 128 - code  # as a shell gives it: 128 + the signal
        if code >= 0:
            log.info("%s exited with status %d", command[0], status)
        else:
            log.info("%s %s (status %d)", command[0], explain.ended(code), status)
    return status


async def _started_command(command: list[str], run: Started) -> asyncio.subprocess.Process:
    """The command started against the run; CommandNotRun, as a shell says it, if not."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            env={
                **os.environ,
                "LOCAL_LAMBDAS_URL": run.url,
                processes.SPAWN_MARK: f"{run.supervisor.run_mark}.command.",
            },
            **limits.command_options(),
        )
    except FileNotFoundError as exc:
        raise CommandNotRun(f"{command[0]}: command not found", 127) from exc
    except OSError as exc:  # found, but not runnable
        raise CommandNotRun(f"{command[0]}: {exc.strerror}", 126) from exc
    adoption.started(proc.pid)  # (never taken for a daemon a child left: adoption.adopted)
    return proc


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
    command among them: nothing is passed on (as `uv run` does)."""

    def __init__(self, task: asyncio.Task[object] | None, force: Callable[[], None]) -> None:
        self._task = task
        self._force = force
        self.stopped_by: int | None = None
        self._command = False  # the command is being started, or runs
        self._proc: asyncio.subprocess.Process | None = None
        self._held: list[int] = []

    def __call__(self, number: int) -> None:
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
            self(number)


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


def exit_at_once(printer: Printer) -> NoReturn:
    """A second stop signal while a stop is under way: exit now. The orphan watchdog (POSIX)
    or the job objects (Windows) kill every child and remove the sockets once this process
    is gone."""
    log.warning("second stop signal: exiting at once; the children are killed")
    printer.flush(1.0)
    os._exit(EXIT_INTERRUPTED)


def _refuse_missing(program: str) -> None:
    """CommandNotRun, as a shell says it, for a program that is not there: told before any
    child starts, not once they all are ready. (What is there but cannot run is told as the
    command starts.)"""
    if os.sep in program or (os.altsep is not None and os.altsep in program):
        if not os.path.exists(program):
            raise CommandNotRun(f"{program}: No such file or directory", 127)
    elif _compat.which(program) is None:
        raise CommandNotRun(f"{program}: command not found", 127)


async def _all_ready(run: Started, timeout: float) -> None:
    run.supervisor.wake_all()
    not_ready = await run.supervisor.wait_ready(timeout)
    failures = run.supervisor.failures  # each said in the log as it happened
    if failures:
        raise NotAllReady(f"{failures[0]}; nothing was run")
    if not not_ready:
        return
    for instance in not_ready:
        # Given up on (FATAL) or kept down (EXITED) before the time-out: no "after 60s".
        waited = "" if instance.state in (State.FATAL, State.EXITED) else f" after {timeout:g}s"
        log.error("%s is not ready%s: %s", instance.name, waited, instance.account())
        lines = [line for line in instance.output.this_run() if line.strip()][-_LAST_LINES_SHOWN:]
        for line in lines:
            log.error("  %s | %s", instance.name, line)
    names = ", ".join(i.name for i in not_ready)
    raise NotAllReady(f"not ready: {names}; nothing was run")

"""`local-lambdas run MANIFEST -- COMMAND`: start everything, wait until every process is
ready, run the command against it (LOCAL_LAMBDAS_URL), stop; the exit status is the
command's. What a stop signal does meanwhile is run_signals.py's.
"""

from __future__ import annotations

import asyncio
import logging
import os

from local_lambdas import _compat
from local_lambdas._compat import adoption, limits, processes
from local_lambdas.config import Manifest, Settings
from local_lambdas.errors import CommandNotRun, NotAllReady
from local_lambdas.executables import as_shell_script, foreign_file
from local_lambdas.lifecycle import Started, started
from local_lambdas.output import Printer
from local_lambdas.run_signals import stoppable
from local_lambdas.supervision import explain
from local_lambdas.supervision.roster import DOWN
from local_lambdas.supervision.states import State

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
    _refuse_missing(command[0])  # (again: a <task> may have made it, or changed it)
    env = {
        **os.environ,
        "LOCAL_LAMBDAS_URL": run.url,
        processes.SPAWN_MARK: f"{run.supervisor.run_mark}.command.",
    }
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, env=env, **limits.command_options()
            )
        except OSError as exc:
            if (script := as_shell_script(exc, command)) is None:
                raise
            proc = await asyncio.create_subprocess_exec(
                *script, env=env, **limits.command_options()
            )
    except FileNotFoundError as exc:
        raise CommandNotRun(f"{command[0]}: command not found", 127) from exc
    except OSError as exc:  # found, but not runnable
        raise CommandNotRun(f"{command[0]}: {exc.strerror}", 126) from exc
    adoption.started(proc.pid)  # (never taken for a daemon a child left: adoption.adopted)
    return proc


def _refuse_missing(program: str) -> None:
    """CommandNotRun, as a shell says it, for a program that is not there, or a path that is
    a folder or not executable, or a program for another processor or system
    (executables.foreign_program): told before any child starts, not once they all are ready.
    (What the system still refuses to run, a script whose interpreter is missing, say, is
    told as the command starts.)"""
    found = program
    if os.sep in program or (os.altsep is not None and os.altsep in program):
        if not os.path.exists(program):
            raise CommandNotRun(f"{program}: No such file or directory", 127)
        if os.path.isdir(program):
            raise CommandNotRun(f"{program}: Is a directory", 126)
        if not os.access(program, os.X_OK):
            raise CommandNotRun(f"{program}: Permission denied", 126)
    elif (on_path := _compat.which(program)) is None:
        raise CommandNotRun(f"{program}: command not found", 127)
    else:
        found = on_path
    if foreign := foreign_file(found):  # (uvloop's exec would hand it to the shell)
        raise CommandNotRun(f"{program}: {foreign}", 126)


async def _all_ready(run: Started, timeout: float) -> None:
    run.supervisor.wake_all()
    await run.supervisor.wait_ready(timeout)
    # Each said in the log as it happened: a task failed (and what it kept from starting),
    # or a process never started (its <build> failed), so has no instance to be not ready.
    failures = run.supervisor.failures or [
        pool.blocked for pool in run.supervisor.pools.values() if pool.blocked is not None
    ]
    if failures:
        raise NotAllReady(f"{failures[0]}; nothing was run")
    waiting = run.supervisor.not_ready()  # (tasks still running, processes not started too)
    if not waiting:
        return
    names, still = [], False  # (still: starting or running, rather than down)
    elsewhere = []  # route-only processes whose upstream nobody here starts
    for name, why in waiting.items():
        pool = run.supervisor.pools.get(name)
        late = [c for c in pool.instances if c.state is not State.READY] if pool else []
        if not late:  # a <task> still running, or a process not started (its <build>, needs)
            log.error("%s is not ready after %gs (--ready-timeout): %s", name, timeout, why)
            names.append(name)
            still = True
        for instance in late:
            # Given up on (FATAL) or kept down (EXITED) before the time-out: no "after 60s".
            down = instance.state in DOWN
            waited = "" if down else f" after {timeout:g}s (--ready-timeout)"
            log.error("%s is not ready%s: %s", instance.name, waited, instance.account())
            lines = [line for line in instance.output.this_run() if line.strip()]
            for line in lines[-_LAST_LINES_SHOWN:]:
                log.error("  %s | %s", instance.name, line)
            names.append(instance.name)
            if instance.state is State.STARTING and pool and pool.process.upstream is not None:
                elsewhere.append(pool.process)
            else:
                still = still or instance.state is State.STARTING
    for process in elsewhere:
        log.error(
            "%s is route-only: local-lambdas starts nothing for it; start what serves %s "
            "before run, or leave %s out with --only", process.id, process.upstream, process.id,
        )  # fmt: skip
    if still:
        log.error(
            "what is still starting or running (compiling, installing, a task) may need "
            "longer than %gs: give it more with --ready-timeout SECONDS", timeout,
        )  # fmt: skip
    raise NotAllReady(f"not ready: {', '.join(names)}; nothing was run")

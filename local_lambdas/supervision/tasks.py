"""<task>s: programs run to completion before the processes that depend on them (a database
migration, a code generator, a build), their output shown like a child's.

A task succeeds when it exits 0 within its <timeout>; anything else is a failure, and what
depends on it is not started (supervisor.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Literal

from local_lambdas import variables
from local_lambdas._compat import processes
from local_lambdas.config import Task
from local_lambdas.executables import find_executable, not_started
from local_lambdas.output import Printer
from local_lambdas.supervision.orphan_watchdog import Watchdog
from local_lambdas.supervision.output_tail import OutputTail
from local_lambdas.supervision.spawned import spawn

log = logging.getLogger("local_lambdas.tasks")

_LAST_LINES = 10
_STOP_GRACE = 5.0  # a task over its <timeout>: SIGTERM, then SIGKILL after this


class TaskRun:
    """One run of a task: WAITING for what it depends on, RUNNING, DONE or FAILED."""

    def __init__(self, task: Task, printer: Printer, *, limit: str = "its <timeout>") -> None:
        self.task = task
        self._limit = limit  # what `task.timeout` is, as its failure names it
        self.state: Literal["WAITING", "RUNNING", "DONE", "FAILED"] = "WAITING"
        self.reason = ""  # why it failed, as said of what depends on it
        self.cause = ""  # the same without the task's name: "exited with code 2"
        self.seconds: float | None = None  # how long it ran
        self.output = OutputTail(printer, task.id, _LAST_LINES)
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def finish(self, ok: bool, reason: str = "") -> None:
        self.state, self.reason = ("DONE" if ok else "FAILED"), reason
        if not self.done.done():
            self.done.set_result(ok)

    async def run(
        self, *, mark: str, run_env: Mapping[str, str], watchdog: Watchdog | None
    ) -> None:
        """Run the task once, to its end; the outcome in `state`, `reason` and `done`."""
        task = self.task
        self.state = "RUNNING"
        own = {"LOCAL_LAMBDAS_ID": task.id, processes.SPAWN_MARK: mark, **run_env}
        try:
            env, args = variables.child_environment(task, own)
        except variables.UnknownVariable as exc:  # (the loader checks; what needs it must not hang)
            self._failed(str(exc))
            return

        log.info("%s: running (task)", task.id)
        started = time.monotonic()
        found = find_executable(task.executable, task.working_dir, env.get("PATH"))
        executable = found or task.executable
        try:
            proc = await spawn(
                self.output, mark, executable, args, cwd=str(task.working_dir), env=env,
                watchdog=watchdog, serving=False,
            )  # fmt: skip
        except OSError as exc:
            self._failed(
                f"cannot run {task.executable}: "
                f"{not_started(task.working_dir, found, exc, args, env)}"
            )
            return
        try:
            await asyncio.wait_for(asyncio.shield(proc.exited), task.timeout)
        except asyncio.TimeoutError:
            await proc.terminate(_STOP_GRACE)
            self._failed(f"still running after {task.timeout:g}s ({self._limit}); stopped")
            return
        finally:
            # A stop (cancellation) or a time-out: nothing it started stays behind.
            await asyncio.shield(proc.release(0.5))
        self.seconds = time.monotonic() - started
        code = proc.returncode
        if code == 0:
            log.info("%s: done in %.2fs (task)", task.id, self.seconds)
            self.finish(True)
        else:
            self._failed(f"exited with code {code}")

    def _failed(self, reason: str) -> None:
        last = " / ".join(line.strip() for line in self.output.lines if line.strip())
        shown = f"; its last output: {last}" if last else ""
        log.error(
            "%s: task failed: %s%s", self.task.id, reason, shown,
            extra={"fields": {"event": "task_failed", "task": self.task.id}},
        )  # fmt: skip
        self.cause = reason
        self.finish(False, f"task {self.task.id} failed: {reason}")

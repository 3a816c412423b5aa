"""One child process's life cycle: its runs (child_run.py: spawn, readiness, output and
state), restarted with backoff as its restart policy says, and its stop.

Each child runs one task that walks the states of states.py (ChildRun._set_state is the
only place a state changes). A route-only process, which is not started, is route_only.py's
kind of instance.
"""

from __future__ import annotations

import asyncio
import logging
import time

from local_lambdas._compat import listeners
from local_lambdas.config import Mode
from local_lambdas.supervision import explain, readiness
from local_lambdas.supervision.backoff import RestartPolicy
from local_lambdas.supervision.child_run import EXITED_UNLISTENING, ChildRun
from local_lambdas.supervision.states import State

log = logging.getLogger("local_lambdas.instance")

# Starts in a row whose free port another program took first, each started again at once.
_COLLISIONS = 3


class Instance(ChildRun):
    """One supervised child process: instance `index` of a manifest <process> (made as a
    ChildRun). The pool that owns it also reads `in_flight`, and sets `retiring`."""

    restarts: int = 0
    in_flight: int = 0  # requests leased to this child now
    retiring: bool = False  # a replacement is starting; see Pool
    last_exit: int | None = None  # exit code of the last process to exit
    last_exit_time: float | None = None  # and when (wall clock)
    last_failure: str | None = None  # why its last run ended, or never got ready
    _task: asyncio.Task[None] | None = None

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"child {self.name}")

    async def stop(self) -> None:
        """Stop the child and everything in its process group; idempotent."""
        self._stopping = True
        proc = self.link.proc
        if proc is not None and not proc.exited.done():
            if self.state is not State.STOPPING:  # (said once when two stops meet)
                self._set_state(State.STOPPING, "stopping")
            await self._terminate(proc)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._set_state(State.STOPPED)
        self._remove_socket()

    async def _run(self) -> None:
        # (No wait inside a finally or except block: this module is compiled, see CONTRIBUTING.)
        stopped: BaseException | None = None  # the stop's cancellation, raised again after
        try:
            await self._supervise()
        except Exception as exc:  # a bug of ours: said, and the child given up, not hidden
            log.exception("%s: supervision failed", self.name)
            self._set_state(State.FATAL, f"supervision failed: {type(exc).__name__}: {exc}")
        except BaseException as cancelled:
            stopped = cancelled
        proc = self.link.proc
        if proc is not None:
            if not proc.exited.done():
                await asyncio.shield(proc.terminate(0))
            proc.let_go()  # (stopped before its release: as the release would)
            proc.close()
            self.pid = None
        if stopped is not None:
            raise stopped

    async def _supervise(self) -> None:
        """Run the child, and again after each exit as the restart policy says."""
        policy = RestartPolicy(self.process.restart, max_quick_failures=self.process.start_retries)
        collisions = 0
        while not self._stopping:
            started = self._clock()
            try:
                code = await self._run_once()
            except OSError as exc:
                # Whatever stopped the start (a socket path that is not ours, a working
                # directory gone): said like an exit, and judged by the same policy.
                self._not_ready = f"could not be started: {exc.strerror or exc}"
                code = None
            if self._stopping:
                return
            if collisions < _COLLISIONS and self._port_taken():
                # Another program bound the free port it was given before it did: no fault
                # of the child's (nor a failed start of a replacement, which gets one).
                collisions += 1
                log.warning(
                    "%s: another program took %s as it started; starting it again on another "
                    "port", self.name, self.chosen_address,
                )  # fmt: skip
                continue
            collisions = 0
            ready = self._not_ready is None
            verdict = policy.after_exit(code, self._clock() - started, ready=ready)
            self.last_exit, self.last_exit_time = code, time.time()
            what = self.last_failure = self._describe_exit(code)
            if verdict.action == "stay-down":
                self._set_state(
                    State.EXITED,
                    f"{what}; restart policy '{self.process.restart.value}' keeps it down",
                    logging.WARNING,
                )
                return
            if verdict.action == "give-up":
                failed = policy.quick_failures
                runs = f"{failed} failed starts in a row" if failed > 1 else "a failed start"
                limit = policy.max_quick_failures
                if code == 0 and not self._left and self.process.communication_mode is Mode.NONE:
                    what += f"; {explain.ENDS_BY_ITSELF}"  # (a worker done: a task, probably)
                self._set_state(
                    State.FATAL,
                    f"gave up after {runs} (<start_retries>: {limit}): {what}",
                    logging.ERROR,
                )
                return
            self.restarts += 1
            self._set_state(
                State.BACKOFF, f"{what}; restarting in {verdict.delay:.1f}s", logging.WARNING
            )
            await asyncio.sleep(verdict.delay)

    def _port_taken(self) -> bool:
        """Whether the run ended by itself before it listened, at a free port the proxy chose
        that another program holds now (readiness.taken). Not one the proxy stopped: a child
        that listened and was stopped for its <ready_path> left its own port in use."""
        return (
            self._not_ready == EXITED_UNLISTENING
            and bool(self.chosen_address)
            and readiness.taken(self.chosen_address)
        )

    def _describe_exit(self, code: int | None) -> str:
        """Why the last process is gone: why it never got ready, else how it ended."""
        if self._not_ready is not None and self._not_ready != EXITED_UNLISTENING:
            return self._not_ready
        told = explain.ended(code) + (f"; {self._left}" if self._left else "")
        if self._not_ready is not None:  # (it ended before it listened: what it may lack)
            folder = self.process.working_dir
            missing = explain.uninstalled(folder) or explain.outside_venv(
                folder, self.program, self.output.telling()
            )
            told += f"; {missing}" if missing else ""
        return told

    def _remove_socket(self) -> None:
        if self.pipe is not None:
            try:
                listeners.remove_stale(self.pipe)
            except OSError as exc:  # not ours (another user's): left where it is
                log.warning("%s: %s", self.name, exc.strerror)

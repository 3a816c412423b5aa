"""One run of a child's process, and the child's state (Instance's base, instance.py).

A run spawns the process (spawned.py: started and stopped with everything it starts, its
exit seen even when a descendant keeps its output open; docs/protocol.md, "Stopping"), waits
until it listens (readiness.py) or, a worker (mode none), which listens nowhere, until it
has run a moment, serves while it runs, and sees it end. `_set_state` is the only place the
child's state (states.py) changes, and it logs the change in a line that can be grepped.
Instance adds what runs the runs: the restart policy, start and stop; a route-only process
(route_only.py) has a run of its own, which starts nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from local_lambdas._compat import listeners, processes
from local_lambdas.config import Process
from local_lambdas.executables import not_started, resolve_executable
from local_lambdas.output import Printer
from local_lambdas.supervision import explain, readiness
from local_lambdas.supervision.launch import NO_RUN_ENV, prepare
from local_lambdas.supervision.link import Link
from local_lambdas.supervision.orphan_watchdog import Watchdog
from local_lambdas.supervision.output_tail import OutputTail
from local_lambdas.supervision.spawned import Spawned, spawn
from local_lambdas.supervision.states import State

log = logging.getLogger("local_lambdas.instance")

# Lines kept to find the one that says why it ended (failure_line.telling) and the ports it
# printed: Node.js's crash on a taken port is 26 lines, its error line the fifth.
_LAST_LINES = 100
_LAST_OUTPUT_WAIT = 0.5  # after an exit, how long its last lines may take to arrive
# A worker (mode none), which listens nowhere, is READY once it has run this long (s), as
# supervisord's startsecs: an exit before is a failed start, and what it writes as it starts
# (a generator's output, a scheduler's state) falls within a --watch restart (watch/edits.py).
_WORKER_SETTLE = 1.0
# How long a child may take to listen before it is looked for elsewhere (_hint_elsewhere).
_HINT_AFTER = 2.0


# The `_not_ready` of a run whose process ended by itself before it listened (nor was stopped).
EXITED_UNLISTENING = "it exited before it listened"


class ChildRun:
    """A child's runs and state: instance `index` of a manifest <process>.

    The pool that owns it reads `state`, `link` (the way to the child while it serves) and
    `requests`, and is told of every state change through `on_change`.
    """

    def __init__(
        self,
        process: Process,
        printer: Printer,
        *,
        index: int = 1,
        pipe: str | None = None,
        on_change: Callable[[], None] = lambda: None,
        watchdog: Watchdog | None = None,
        clock: Callable[[], float] = time.monotonic,
        run_mark: str = "",
        run_env: Mapping[str, str] = NO_RUN_ENV,
    ) -> None:
        self.process = process
        self.index = index
        self.name = process.id if process.instances == 1 else f"{process.id}#{index}"
        self.timeout = process.timeout  # read per request: a pydantic attribute is slow
        self.pipe = pipe  # pipe modes: the address it listens on
        self.state = State.STOPPED
        self.reason = ""  # why the child is not READY, for 503 bodies
        self.pid: int | None = None  # its process's while that runs
        self.link = Link(process, clock)  # the way to its process while it is READY
        self.generation = 0  # counts the times a process of this child became READY
        self.requests = 0  # requests leased to its current process
        # A request it did not answer in time, or answered wrong: until then, new requests go
        # to the other instances while one can take them (Pool.pass_over); a new process
        # clears it.
        self.passed_over_until = 0.0
        self.ready_seconds: float | None = None  # how long the current process took to listen
        self.unheard_since: float | None = None  # when its running process stopped listening
        self.address = ""  # where it listens, as people read it
        self.mark = ""  # SPAWN_MARK of its current process (see orphans.marked)
        self.output = OutputTail(printer, self.name, _LAST_LINES)  # what it printed last
        self._on_change = on_change
        self._watchdog = watchdog
        self._clock = clock
        self._run_mark = run_mark  # this run's part of every SPAWN_MARK
        self._run_env = run_env  # what every process of the run gets (launch.prepare)
        self._not_ready: str | None = None  # why the last process never became READY
        self._left = ""  # what the last process left running when it exited (explain.py)
        self._stopping = False  # (a run under way ends, and none follows)
        self.chosen_address = ""  # HOST:PORT with the free port the proxy chose, if it did
        self.program = ""  # the last run's executable, as its PATH found it

    async def _run_once(self) -> int | None:
        """Spawn, wait for readiness, wait for the exit; the exit code, None if never spawned.
        Leaves `_not_ready` None if the process became READY, else why it did not."""
        self._not_ready, self._left = EXITED_UNLISTENING, ""
        self.output.new_run()
        address, env, args, self.mark = prepare(
            self.process, name=self.name, index=self.index, pipe=self.pipe,
            run_mark=self._run_mark, run_env=self._run_env,
        )  # fmt: skip
        awaited = f"listens on {address}" if address else f"has run {_WORKER_SETTLE:g}s"
        # The port the proxy chose for it, if it did: another program may bind it first.
        chosen = self.process.port is None and self.pipe is None
        self.chosen_address = address if chosen else ""
        self._set_state(State.STARTING, f"starting; ready once it {awaited}")
        program = resolve_executable(self.process, env.get("PATH"))
        self.program = program or self.process.executable
        started = self._clock()  # (before the spawn, which may take as long as the child)
        try:
            proc = await spawn(
                self.output, self.mark, program or self.process.executable, args,
                cwd=str(self.process.working_dir), env=env, watchdog=self._watchdog,
            )  # fmt: skip
        except OSError as exc:
            why = not_started(self.process.working_dir, program, exc, args, env)
            self._not_ready = f"cannot run {self.process.executable}: {why}"
            return None
        self.link.proc, self.link.address = proc, address
        self.pid, self.requests = proc.pid, 0
        ended: BaseException | None = None  # (no wait in a finally block: see Instance._run)
        try:
            if address:
                await self._serve_once_listening(proc, address, started)
            else:  # <communication_mode> none: nothing to listen on
                await self._settle(proc, started)
            await proc.exited
        except BaseException as ending:
            ended = ending
        await self.link.close()
        if ended is not None:
            raise ended
        code = proc.returncode
        # What the child left behind, in its group or anywhere below it, goes with it.
        left = {} if self._stopping else await processes.command_lines(
            pid for pid in proc.owners() if pid != proc.pid
        )  # fmt: skip
        self._left = explain.left_running(left, code) if left else ""
        # (Its last lines reach its output tail before the exit is reported.)
        await proc.release(_LAST_OUTPUT_WAIT, kill_left=not self._stopping)
        self.pid = None  # (not shown once gone: the system may give its number to another)
        return code

    async def _serve_once_listening(self, proc: Spawned, address: str, started: float) -> None:
        """READY once its process listens at `address` (within <startup_timeout>, judged as
        readiness.Busy says), serving until it exits; else `_not_ready` says why, and the
        process is stopped."""
        busy = readiness.Busy(proc.owners)
        hint = asyncio.get_running_loop().call_later(
            _HINT_AFTER, self._hint_elsewhere, proc, address
        )
        try:
            found = await readiness.wait_until_listening(
                self.process, address, proc.owners, seconds=self.process.startup_timeout,
                given_up=lambda: proc.exited.done() or self._stopping, busy=busy,
            )  # fmt: skip
        finally:
            hint.cancel()
        if found:
            self.ready_seconds = self._clock() - started
            await self._serve_while_running(proc, address, found.address)
        elif not proc.exited.done() and not self._stopping:
            self._not_ready = explain.not_ready_in_time(
                self.process, address, foreign=found.foreign, last_lines=self.output.lines,
                refused=found.refused, elsewhere=listeners.held_listeners(proc.owners()),
                late=busy.worked(self.process.startup_timeout or 0),
            )  # fmt: skip
            log.warning("%s: %s; stopping it", self.name, self._not_ready)
            self.output.stopped_by_the_proxy()
            await self._terminate(proc)

    def _hint_elsewhere(self, proc: Spawned, address: str) -> None:
        """Say at once, not at the <startup_timeout>, that a child still starting listens
        where it surely should not (explain.surely_elsewhere), with the fix; it is still
        waited for."""
        if proc.exited.done() or self._stopping:
            return
        elsewhere = listeners.held_listeners(proc.owners())
        if not elsewhere:
            return
        why = explain.surely_elsewhere(
            self.process, address, last_lines=self.output.lines, elsewhere=elsewhere
        )
        if why:
            shown = explain.where(self.process, address)
            log.warning("%s: nothing listens on %s yet; %s", self.name, shown, why)

    async def _terminate(self, proc: Spawned) -> None:
        """Stop `proc` within the <stop_timeout>, saying so if it had to be killed."""
        if await proc.terminate(self.process.stop_timeout):
            log.warning("%s: %s", self.name, explain.killed_at(self.process.stop_timeout))

    async def _settle(self, proc: Spawned, started: float) -> None:
        """A worker's process (mode none): READY once it has run _WORKER_SETTLE seconds."""
        settled, _ = await asyncio.wait((proc.exited,), timeout=_WORKER_SETTLE)
        if not settled and not self._stopping:
            self.ready_seconds, self._not_ready = self._clock() - started, None
            self.generation += 1
            how = f"ready in {self.ready_seconds:.2f}s"
            self._set_state(State.READY, f"{how} (pid {proc.pid}; nothing is routed to it)")

    async def _serve_while_running(self, proc: Spawned, address: str, listening: str) -> None:
        """READY while its process runs and listens at `listening`; STARTING again, for as
        long as it takes, while it runs on without listening (see the module's docstring).
        Returns once it exits, or as it is stopped."""
        how = f"ready in {self.ready_seconds:.2f}s"
        while True:
            self.link.connect(listening, proc.owns)
            if self.pipe is not None and self._watchdog is not None:
                self._watchdog.socket(listening)  # removed by it if the proxy is killed
            self.generation += 1
            self._not_ready = self.unheard_since = None
            self.passed_over_until = 0.0
            self.address = explain.where(self.process, listening)
            self._set_state(State.READY, f"{how} (pid {proc.pid}, {self.address})")
            unheard = await self._until_exit_or_unheard(proc)
            if unheard is None:
                return
            since = self.unheard_since = unheard  # (before the close: a request waits since)
            await self.link.close()
            self._set_state(
                State.STARTING,
                f"its process (pid {proc.pid}) runs but stopped listening on {self.address}; "
                "waiting for it to listen again",
                logging.WARNING,
            )
            found = await readiness.wait_until_listening(
                self.process, address, proc.owners, seconds=None,
                given_up=lambda: proc.exited.done() or self._stopping,
            )  # fmt: skip
            self.unheard_since = None
            if not found:
                return
            listening, how = found.address, f"listening again after {self._clock() - since:.2f}s"

    async def _until_exit_or_unheard(self, proc: Spawned) -> float | None:
        """Wait while its process serves: None once it exits, or when it was seen to run on
        without listening (Link.still_serving)."""
        unheard: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.link.unheard = unheard
        try:
            await asyncio.wait((proc.exited, unheard), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.link.unheard = None
            unheard.cancel()
        return None if proc.exited.done() or unheard.cancelled() else unheard.result()

    def _set_state(self, state: State, message: str = "", level: int = logging.INFO) -> None:
        self.state = state
        self.reason = "" if state is State.READY else message
        if message:
            shown = f"FATAL: {message}" if state is State.FATAL else message  # (as /_/ready)
            said = self._said()
            shown += f"; its last output: {said}" if said else ""
            log.log(
                level,
                "%s: %s",
                self.name,
                shown,
                extra={
                    "fields": {
                        "event": "state",
                        "process": self.process.id,
                        "state": state.value,
                        "pid": self._pid_of(state),
                    }
                },
            )
        self._on_change()

    def retarget(self, process: Process) -> None:
        """Take `process`, which differs from its own in config.ROUTING_ONLY alone."""
        self.process = self.link.process = process
        self.timeout = process.timeout

    def _pid_of(self, state: State) -> int | None:
        """The pid a state change is about: its running process's, or, for an exit, the
        process that ended (None as a new one starts)."""
        if self.pid is not None or state is State.STARTING or self.link.proc is None:
            return self.pid
        return self.link.proc.pid

    def account(self, *, said: bool = False) -> str:
        """Its state and why, for the user: "BACKOFF: <reason>" (the reason of an exit says
        its code); with `said`, and the line of its output that says why it ended (never
        for clients: a child's output may hold secrets)."""
        told = f"{self.state.value}: {self.reason}" if self.reason else self.state.value
        output = self._said() if said else ""
        return told + (f"; its last output: {output}" if output else "")

    def _said(self) -> str:
        """Once its process has ended (BACKOFF, EXITED, FATAL), or stopped listening, the line
        of that run's output that says why (OutputTail.telling); else ""."""
        ended = self.state in (State.BACKOFF, State.EXITED, State.FATAL)
        if not ended and self.unheard_since is None:
            return ""
        return self.output.telling()

"""One child process's life cycle: spawn, readiness, output, restart with backoff, stop.

Each child runs one task that walks the states below; `Instance._set_state` is the only place a
state changes, and it logs the change in a line that can be grepped:

    STARTING -> READY -> (exit) -> BACKOFF -> STARTING ...
                      -> (exit, policy says stay down) -> EXITED
                      -> (too many quick exits)        -> FATAL
    any state -> STOPPING -> STOPPED  (on stop)

Every child runs in its own process group (session); stopping signals the whole group, so a
shell wrapper's own children go too. Every spawned process is reaped, even on cancellation.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import time
from collections.abc import Callable
from enum import Enum

from local_lambdas import _compat, readiness
from local_lambdas.backoff import RestartPolicy
from local_lambdas.config import Mode, Process
from local_lambdas.manifest import resolve_executable
from local_lambdas.output import Printer
from local_lambdas.transports import RELAYS, TRANSPORTS, Transport
from local_lambdas.transports.passthrough import PassthroughTransport
from local_lambdas.watchdog import Watchdog

log = logging.getLogger("local_lambdas.instance")

MAX_RESPONSE = 256 * 1024**2  # what a child may answer to one request, base64 included
_LAST_LINES = 20
_SETTLE_CHECKS, _SETTLE_STEP = 10, 0.005
_READ_CHUNK = 64 * 1024
_MAX_LINE = 64 * 1024


class State(str, Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    READY = "READY"
    BACKOFF = "BACKOFF"
    EXITED = "EXITED"
    FATAL = "FATAL"
    STOPPING = "STOPPING"


class Instance:
    """One supervised child process: instance `index` of a manifest <process>.

    The pool that owns it reads `state`, `transport`, `in_flight` and `requests`, and is told
    of every state change through `on_change`.
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
    ) -> None:
        self.process = process
        self.index = index
        self.name = process.id if process.instances == 1 else f"{process.id}#{index}"
        self.pipe = pipe  # pipe modes: the address it listens on
        self.state = State.STOPPED
        self.reason = ""  # why the child is not READY, for 503 bodies
        self.pid: int | None = None
        self.transport: Transport | PassthroughTransport | None = None
        self.restarts = 0
        self.generation = 0  # counts the times a process of this child became READY
        self.in_flight = 0  # requests leased to this child now
        self.requests = 0  # requests leased to its current process
        self.retiring = False  # a replacement is starting; see Pool
        self.last_exit: int | None = None  # exit code of the last process to exit
        self.last_exit_time: float | None = None  # and when (wall clock)
        self.ready_seconds: float | None = None  # how long the current process took to listen
        self.address = ""  # where it listens, as people read it
        self.last_lines: collections.deque[str] = collections.deque(maxlen=_LAST_LINES)
        self._printer = printer
        self._policy = RestartPolicy(process.restart, max_quick_failures=process.start_retries)
        self._on_change = on_change
        self._watchdog = watchdog
        self._clock = clock
        self._proc: asyncio.subprocess.Process | None = None
        self._address: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        printer.register(self.name)

    async def still_serving(self) -> bool:
        """After a failed exchange: whether this process still runs and listens.

        A dying process closes its sockets a moment before it can be seen to have exited, so
        this gives it a few milliseconds to be seen going (on the failure path only).
        """
        proc, address = self._proc, self._address
        if proc is None or address is None:
            return False
        for _ in range(_SETTLE_CHECKS):
            if not _compat.process_running(proc.pid):
                return False
            await asyncio.sleep(_SETTLE_STEP)
        return await readiness.listening(self.process, address)

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"child {self.name}")

    async def stop(self) -> None:
        """Stop the child and everything in its process group; idempotent."""
        self._stopping = True
        if self._proc is not None and self._proc.returncode is None:
            self._set_state(State.STOPPING, "stopping")
            await _terminate(self._proc, self.process.stop_timeout)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._set_state(State.STOPPED)
        self._remove_socket()

    async def _run(self) -> None:
        try:
            while not self._stopping:
                started = self._clock()
                code = await self._run_once()
                if self._stopping:
                    return
                verdict = self._policy.after_exit(code, self._clock() - started)
                self.last_exit, self.last_exit_time = code, time.time()
                what = self._describe_exit(code)
                if verdict.action == "stay-down":
                    self._set_state(
                        State.EXITED,
                        f"{what}; restart policy '{self.process.restart.value}' keeps it down",
                        logging.WARNING,
                    )
                    return
                if verdict.action == "give-up":
                    self._set_state(
                        State.FATAL,
                        f"gave up: {self.name} entered FATAL "
                        f"state, too many start retries too quickly ({what})",
                        logging.ERROR,
                    )
                    return
                self.restarts += 1
                self._set_state(
                    State.BACKOFF, f"{what}; restarting in {verdict.delay:.1f}s", logging.WARNING
                )
                await asyncio.sleep(verdict.delay)
        finally:
            if self._proc is not None and self._proc.returncode is None:
                await asyncio.shield(_terminate(self._proc, 0))

    async def _run_once(self) -> int | None:
        """Spawn, wait for readiness, wait for the exit; the exit code, None if never spawned."""
        address, env = self._prepare()
        self._address = address
        self._set_state(State.STARTING, "starting")
        try:
            proc = await asyncio.create_subprocess_exec(
                resolve_executable(self.process) or self.process.executable,
                *self.process.args,
                cwd=self.process.working_dir,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                **_compat.spawn_options(),
            )
        except OSError as exc:
            self.last_lines.append(f"cannot run {self.process.executable}: {exc.strerror}")
            return None
        self._proc, self.pid, self.requests = proc, proc.pid, 0
        _compat.spawned(proc.pid)
        if self._watchdog is not None:
            self._watchdog.watch(proc.pid)
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            asyncio.create_task(self._pump(proc.stdout, "stdout")),
            asyncio.create_task(self._pump(proc.stderr, "stderr")),
        ]
        try:
            started = self._clock()
            if await readiness.wait_until_listening(
                self.process, address,
                given_up=lambda: proc.returncode is not None or self._stopping,
            ):  # fmt: skip
                mode = self.process.communication_mode
                factory = RELAYS.get(mode) or TRANSPORTS[mode]
                self.transport = factory(address, max_response=MAX_RESPONSE)
                self.generation += 1
                self.ready_seconds = self._clock() - started
                self.address = self._where(address)
                self._set_state(
                    State.READY,
                    f"ready in {self.ready_seconds:.2f}s (pid {proc.pid}, {self.address})",
                )
            elif proc.returncode is None and not self._stopping:
                self.last_lines.append(
                    f"not ready within {self.process.startup_timeout:g}s "
                    f"(startup_timeout): nothing listening on "
                    f"{self._where(address)}"
                )
                await _terminate(proc, 0)
            code = await proc.wait()
        finally:
            if self.transport is not None:
                await self.transport.aclose()
                self.transport = None
        # Whatever the child left in its group (a shell's background job) goes with it.
        if _compat.kill_group(proc.pid):
            log.debug("%s: killed what its process group still held", self.name)
        if self._watchdog is not None:
            self._watchdog.forget(proc.pid)
        _compat.reaped(proc.pid)
        # Let the last lines (a traceback, say) reach last_lines before the exit is reported;
        # a grandchild holding the pipe open must not hold us up.
        await asyncio.wait(pumps, timeout=0.5)
        for pump in pumps:
            pump.cancel()
        return code

    def _prepare(self) -> tuple[str, dict[str, str]]:
        """The address the child must listen on, and its environment."""
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(self.process.env)
        env["LOCAL_LAMBDAS_ID"] = self.name
        env["LOCAL_LAMBDAS_INSTANCE"] = str(self.index)
        if self.pipe is not None:
            # A socket file left by a crash would make the child's bind fail.
            _compat.remove_stale(self.pipe)
            address = self.pipe
            env["PIPE_ADDRESS"] = address
            keepalive = self.process.communication_mode is Mode.PIPE_KEEPALIVE
            env["PIPE_FRAMING"] = "lines" if keepalive else "oneshot"
        else:
            port = self.process.port or readiness.free_port()
            address = f"127.0.0.1:{port}"
            env["HTTP_ADDRESS"] = address
            env["PORT"] = str(port)
        return address, env

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        """Show the child's output line by line; never leave it unread in the pipe."""
        pending = b""
        while True:
            chunk = await stream.read(_READ_CHUNK)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            if len(pending) > _MAX_LINE:
                lines.append(pending)
                pending = b""
            for line in lines:
                self._show(line, name)
        if pending:
            self._show(pending, name)

    def _show(self, raw: bytes, stream: str) -> None:
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        self.last_lines.append(line)
        self._printer.child_line(self.name, "stderr" if stream == "stderr" else "stdout", line)

    def _set_state(self, state: State, message: str = "", level: int = logging.INFO) -> None:
        self.state = state
        self.reason = "" if state is State.READY else message
        if message:
            log.log(
                level,
                "%s: %s",
                self.name,
                message,
                extra={
                    "fields": {
                        "event": "state",
                        "process": self.process.id,
                        "state": state.value,
                        "pid": self.pid,
                    }
                },
            )
        self._on_change()

    def _describe_exit(self, code: int | None) -> str:
        if code is None:
            what = "could not be started"
        elif code < 0:
            what = f"was killed by {signal.Signals(-code).name}"
        else:
            what = f"exited with code {code}"
        last = next((line for line in reversed(self.last_lines) if line.strip()), "")
        return f"{what}" + (f"; last output: {last.strip()[:200]}" if last else "")

    def _where(self, address: str) -> str:
        return address if self.process.communication_mode.uses_pipe else f"http://{address}"

    def _remove_socket(self) -> None:
        if self.pipe is not None:
            _compat.remove_stale(self.pipe)


async def _terminate(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the group, wait up to `grace` for it to empty, SIGKILL what is left, reap."""
    pid = proc.pid
    if grace > 0 and _compat.stop_group(pid):
        deadline = time.monotonic() + grace
        try:
            async with _compat.timeout(grace):
                await proc.wait()
        except asyncio.TimeoutError:
            pass
        # A process group has no exit event to wait on: poll it, within the grace.
        while _compat.group_alive(pid) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    _compat.kill_group(pid)
    await proc.wait()

"""The tests' helpers: manifests of test children, the real proxy run on a free port (in
this process, or as the command), clients that talk to it. conftest.py holds the fixtures
and hooks; test modules import these from here."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import inspect
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import aiohttp
import pytest

from local_lambdas import _compat, manifest
from local_lambdas import cli as command_line
from local_lambdas.config import Manifest, Process, Settings
from local_lambdas.lane.fastlane import FastLane
from local_lambdas.lifecycle import Started, started
from local_lambdas.output import Printer
from local_lambdas.supervision.instance import Instance
from local_lambdas.supervision.pool import Pool
from local_lambdas.supervision.supervisor import Supervisor
from tests import forked

CHILDREN = Path(__file__).parent / "children"
PYTHON = sys.executable
# Children that need only the standard library start with -S: without site-packages (and the
# .pth files in it) a Python child starts on 5 ms of CPU instead of 30, and the suite starts
# hundreds of them.
_STDLIB_ONLY = frozenset({"behave.py", "early_answer.py", "gated.py", "raw_http.py",
                          "slow_start.py", "static_files.py", "strict.py", "wild.py"})  # fmt: skip
# uvloop comes with the test extra; without it (or on Windows) its tests say so and skip.
NEEDS_UVLOOP = pytest.mark.skipif(
    importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"
)
UVLOOP = pytest.param("uvloop", marks=NEEDS_UVLOOP)


def elf_program(machine: int) -> bytes:
    """The start of a 64-bit little-endian ELF executable for ELF machine `machine` (243:
    RISC-V), padded: a program for another processor, to be refused."""
    return (
        b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00" + machine.to_bytes(2, "little") + bytes(64)
    )


def process_model(mode: str = "http", startup: str = "10s") -> Process:
    """A <process> as the manifest's reader makes it, for the unit tests that need one."""
    return Process.model_validate({
        "id": "api", "executable": "x", "routes": ("/api/*",), "pipe_name": "api",
        "working_dir": Path("."), "communication_mode": mode, "startup_timeout": startup,
    })  # fmt: skip


def process_xml(
    pid: str,
    route: str | list[str],
    *,
    mode: str = "pipe",
    script: str = "behave.py",
    args: tuple[str, ...] = (),
    extra: str = "",
) -> str:
    """One <process> running a test child with the current Python."""
    routes = [route] if isinstance(route, str) else route
    lines = [
        f"<id>{pid}</id>",
        f"<executable>{PYTHON}</executable>",
        *(["<arg>-S</arg>"] if script in _STDLIB_ONLY else []),
        f"<arg>{CHILDREN / script}</arg>",
        *(f"<arg>{a}</arg>" for a in args),
        *(f"<route>{r}</route>" for r in routes),
        f"<communication_mode>{mode}</communication_mode>",
        extra,
    ]
    return "<process>" + "".join(lines) + "</process>"


def worker_xml(pid: str, *args: str, extra: str = "") -> str:
    """One <process> nothing is routed to (mode none): the current Python, stdlib only
    (-S), with `args`."""
    return (
        f"<process><id>{pid}</id><executable>{PYTHON}</executable><arg>-S</arg>"
        + "".join(f"<arg>{arg}</arg>" for arg in args)
        + f"<communication_mode>none</communication_mode>{extra}</process>"
    )


NEEDS_NODE = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")


def node_server_xml(pid: str, route: str, mode: str = "passthrough") -> str:
    """A Node.js web server started as most are, listen($PORT) with no host (so on `::`),
    behind a pass-through route (children/any_address.js); under a pipe `mode`, on the
    pipe."""
    return (
        f"<process><id>{pid}</id><executable>node</executable>"
        f"<arg>{CHILDREN / 'any_address.js'}</arg><route>{route}</route>"
        f"<communication_mode>{mode}</communication_mode></process>"
    )


WriteManifest = Callable[..., Path]  # write_manifest(*process_xml, name="manifest.xml")


def manifest_text(*processes: str) -> str:
    """A manifest of these <process> (or <task>) elements."""
    body = "\n".join(processes)
    return f'<?xml version="1.0"?>\n<manifest>\n{body}\n</manifest>\n'


@dataclass
class Running:
    url: str
    started: Started
    http: aiohttp.ClientSession

    @property
    def supervisor(self) -> Supervisor:
        return self.started.supervisor

    def pool(self, process_id: str) -> Pool:
        return self.supervisor.pools[process_id]

    def child(self, process_id: str) -> Instance:
        """The first (or only) instance of a process."""
        return self.pool(process_id).instances[0]

    @property
    def lane(self) -> FastLane:
        """The fast lane (the tests that read it run with it on)."""
        assert self.started.lane is not None
        return self.started.lane


@asynccontextmanager
async def running(
    manifest_path: Path,
    socket_dir: Path,
    *,
    wait: bool = True,
    watch: bool = False,
    fast_lane: bool = True,
    base: Path | None = None,
    env_files: list[Path] | None = None,
    **more: object,
) -> AsyncIterator[Running]:
    """The proxy, in this process, on a real port, with its real children; `base` and
    `env_files` are manifest.load's, `more` sets other Settings fields."""

    def load() -> Manifest:
        return manifest.load(manifest_path, socket_dir=socket_dir, base=base, env_files=env_files)

    settings = Settings(
        port=0,
        socket_dir=socket_dir,
        shutdown_timeout=5,
        watch=watch,
        fast_lane=fast_lane,
        **more,  # type: ignore[arg-type]
    )
    async with started(load(), settings, Printer(color=False), load=load) as run:
        if wait:
            not_ready = await run.supervisor.wait_ready(15)
            assert not not_ready, [(c.process.id, c.state, c.reason) for c in not_ready]
        async with aiohttp.ClientSession(auto_decompress=False) as http:
            yield Running(run.url, run, http)


async def serves_with_its_input_held(
    write_manifest: WriteManifest, socket_dir: Path, mode: str
) -> None:
    """input_bound.py, a child that stops when its standard input ends, serves request after
    request from one process, never restarted: a child's input is held open (spawned.py)."""
    path = write_manifest(process_xml("in", "/in/*", mode=mode, script="input_bound.py"))
    async with running(path, socket_dir) as run:
        pid = run.child("in").pid
        for _ in range(3):
            async with run.http.get(run.url + "/in/x") as reply:
                assert reply.status == 200 and await reply.text() == "still here"
        assert run.child("in").pid == pid and run.child("in").restarts == 0


# The mark of a test that takes its proxy from the `shared` fixture: it runs on the module's
# event loop, where the shared proxies live.
ON_SHARED_LOOP = pytest.mark.asyncio(loop_scope="module")


class SharedProxies:
    """The proxies a test module's tests share (the `shared` fixture), one per manifest and
    settings: started for the first test that asks, stopped with the module. Booting a proxy
    boots its children (an aiohttp child is 0.4 s of CPU), so a suite that boots one for each
    test spends its time there. Only for tests that leave what they share as they found it:
    no stop, restart or kill, no count of requests, connections or log lines that another
    test's requests would change."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._stack = contextlib.AsyncExitStack()
        self._runs: dict[tuple[object, ...], Running] = {}

    async def get(self, *processes: str, **settings: object) -> Running:
        """The proxy of these processes with these `running` settings."""
        settings.setdefault("fast_lane", True)  # `running`'s default, spelt out or not
        key = (processes, tuple(sorted(settings.items())))
        if key not in self._runs:
            here = self._folder / str(len(self._runs))
            here.mkdir(parents=True)
            path = here / "manifest.xml"
            path.write_text(manifest_text(*processes))
            run = running(path, here / "sockets", **settings)  # type: ignore[arg-type]
            self._runs[key] = await self._stack.enter_async_context(run)
        return self._runs[key]

    async def aclose(self) -> None:
        await self._stack.aclose()


def all_read(writer: asyncio.StreamWriter) -> bool:
    """Whether the proxy has read all this client sent (the rx_queue of its end of the
    connection, in /proc/net/tcp, is empty)."""
    here = writer.get_extra_info("sockname")[1]
    there = writer.get_extra_info("peername")[1]
    with open("/proc/net/tcp") as rows:
        for row in list(rows)[1:]:
            fields = row.split()
            if fields[1].endswith(f":{there:04X}") and fields[2].endswith(f":{here:04X}"):
                return int(fields[4].split(":")[1], 16) == 0
    raise AssertionError("no such connection")


def fixed_port() -> int:
    """A TCP port on 127.0.0.1, free now, for a manifest's fixed <port> (or a server the
    test starts itself): below the ephemeral range (32768 up on Linux, 49152 up on Windows)
    that `bind(0)` picks from, so that no other test's proxy, child or server is given it
    while its own process restarts and the port is free for a moment."""
    while True:
        port = random.randrange(20000, 32768)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def open_files_in(folder: Path) -> list[str]:
    """This process's open files in `folder` (an in-process proxy's, say), unlinked ones
    too (Linux: /proc)."""
    links = (os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.is_symlink())
    return [link for link in links if link.startswith(str(folder))]


def tcp_sockets(port: int) -> list[tuple[str, str, str]]:
    """(local address, remote address, state) of this machine's TCP sockets with `port` at
    either end, read from /proc/net/tcp and tcp6 (Linux; state 01 is ESTABLISHED, 08
    CLOSE-WAIT), addresses as written there (hex, `:PPPP` last)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, remote, state = row.split()[1:4]
                if f":{port:04X}" in (local[-5:], remote[-5:]):
                    found.append((local, remote, state))
    return found


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0
) -> bool:
    """Poll a condition that has no event of its own (a pid gone, a file written, an
    answer over HTTP: the predicate may be a coroutine function), bounded."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        held = predicate()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)


@dataclass
class Load:
    """Requests fired back to back by several clients until stopped; what came back."""

    statuses: Counter[int] = field(default_factory=Counter)
    pids: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


@asynccontextmanager
async def load(
    run: Running, path: str, *, clients: int = 8, method: str = "GET"
) -> AsyncIterator[Load]:
    """Keep `clients` requests in flight to `path` for as long as the block runs."""
    result = Load()
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            async with run.http.request(method, run.url + path) as reply:
                body = await reply.read()
                result.statuses[reply.status] += 1
                if reply.status == 200:
                    result.pids[json.loads(body)["pid"]] += 1
                else:
                    result.failures.append(f"{reply.status} {body[:200]!r}")

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    try:
        yield result
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# The command line, as a user runs it: a subprocess whose output the test reads.

WAIT = 20  # seconds any one expected line may take


@dataclass
class Cli:
    proc: asyncio.subprocess.Process | forked.Forked
    lines: list[str] = field(default_factory=list)
    url: str = ""

    async def expect(self, pattern: str) -> re.Match[str]:
        """Read output until a line matches `pattern` (within WAIT seconds)."""
        compiled = re.compile(pattern)
        for line in self.lines:
            if found := compiled.search(line):
                return found
        assert self.proc.stdout is not None
        try:
            async with _compat.timeout(WAIT):
                while True:
                    raw = await self.proc.stdout.readline()
                    assert raw, f"exited before {pattern!r}:\n" + "\n".join(self.lines)
                    line = raw.decode().rstrip("\n")
                    self.lines.append(line)
                    if found := compiled.search(line):
                        return found
        except asyncio.TimeoutError:  # (what it said, rather than a bare TimeoutError)
            raise AssertionError(
                f"no {pattern!r} within {WAIT} s; it said:\n" + "\n".join(self.lines)
            ) from None

    async def stop_at_once(self, signum: int) -> int:
        """Send `signum` again and again until the run exits, within WAIT seconds, as a user
        presses Ctrl+C again: those within run_signals.ECHO_SECONDS of the first stop are its
        echo, the next one the second stop. Its status, as `finish` says it."""
        ended = asyncio.ensure_future(self.proc.wait())
        deadline = asyncio.get_running_loop().time() + WAIT
        while not ended.done() and asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)
            await asyncio.wait((ended,), timeout=0.1)
        return await self.finish()

    async def finish(self) -> int:
        assert self.proc.stdout is not None
        try:
            async with _compat.timeout(WAIT):
                rest = await self.proc.stdout.read()
                self.lines.extend(rest.decode().splitlines())
                return await self.proc.wait()
        except asyncio.TimeoutError:
            raise AssertionError(
                f"still running after {WAIT} s; it said:\n" + "\n".join(self.lines)
            ) from None


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def loaded_by(code: str, names: tuple[str, ...]) -> list[str]:
    """Which of the modules `names` a fresh Python has loaded once it has run `code`."""
    probe = f"import sys\n{code}\nprint([name for name in {names!r} if name in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return list(ast.literal_eval(result.stdout.strip().splitlines()[-1]))


def behave_after(path: Path, prelude: str) -> Path:
    """`path`, written as a child that runs `prelude` (signal, sys and time imported), then
    is tests/children/behave.py."""
    behave = str(CHILDREN / "behave.py")
    path.write_text(
        f"import runpy, signal, sys, time\n{prelude}sys.argv = [{behave!r}]\n"
        f"runpy.run_path({behave!r}, run_name='__main__')\n"
    )
    return path


def run_main(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Ran:
    """`local-lambdas ARGV` run in this process: the console script's main(), its output
    caught, in `cwd` with `env` added. For commands that end without serving (export,
    check, usage errors): a tenth of a second of CPU each rather than a Python's start;
    the command line as a process is tested by `cli` and tests/test_manifest.py."""
    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    with mock.patch.dict(os.environ, env or {}), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):  # fmt: skip
        try:
            os.chdir(cwd or before)
            code = command_line.main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os.chdir(before)
    return Ran(code, out.getvalue(), err.getvalue())


@asynccontextmanager
async def cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    sigint_ignored: bool = False,
    preexec: Callable[[], object] | None = None,
    pass_fds: tuple[int, ...] = (),
    python: str | None = None,
) -> AsyncIterator[Cli]:
    """`local-lambdas ARGS` as a process; `sigint_ignored`: started as a script's background
    job is, with SIGINT ignored (POSIX); `preexec`: what else it inherits, done before it
    runs, and `pass_fds`, descriptors it inherits (POSIX); `python`: the interpreter that
    runs it (exec'd), if not this one."""
    if sigint_ignored:
        preexec = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    added = {"COLUMNS": "200", **(env or {})}
    async with _process(
        args, added, cwd, apart=False, preexec=preexec, pass_fds=pass_fds, python=python
    ) as proc:
        yield Cli(proc)


async def command(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`local-lambdas ARGS` as a process run to its end (forked where `cli` forks it: an
    exec'd Python spends a second of CPU on a slow machine importing what the fork server
    holds), its output and its errors apart, as subprocess.run(capture_output=True,
    text=True) gives them. For a command that reaches a proxy in this process (`restart`),
    or one tested as the process a user starts."""
    async with _process(args, env or {}, cwd, apart=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        async with _compat.timeout(timeout):
            out, err = await asyncio.gather(proc.stdout.read(), proc.stderr.read())
            code = await proc.wait()
    return subprocess.CompletedProcess(
        ["local-lambdas", *args], code, out.decode(errors="replace"), err.decode(errors="replace")
    )


@asynccontextmanager
async def _process(
    args: tuple[str, ...], added: dict[str, str], cwd: Path | None, *, apart: bool,
    preexec: Callable[[], object] | None = None, pass_fds: tuple[int, ...] = (),
    python: str | None = None,
) -> AsyncIterator[asyncio.subprocess.Process | forked.Forked]:  # fmt: skip
    """`python -m local_lambdas ARGS`, this process's environment with `added`: forked
    (tests/forked.py) unless what it inherits or runs it needs an exec; its errors in its
    output, or, `apart`, read on their own. Killed if it still runs at the end."""
    proc: asyncio.subprocess.Process | forked.Forked
    if python is None and preexec is None and not pass_fds and forked.forkable(added):
        proc = await forked.start(list(args), {**os.environ, **added}, cwd, apart=apart)
    else:
        proc = await asyncio.create_subprocess_exec(
            python or sys.executable, "-m", "local_lambdas", *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE if apart else asyncio.subprocess.STDOUT,
            env={**os.environ, **added}, cwd=cwd, preexec_fn=preexec, pass_fds=pass_fds,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if isinstance(proc, forked.Forked):
            proc.close()


def run_command(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`command` from a test that is not a coroutine."""
    return asyncio.run(command(*args, cwd=cwd, env=env, timeout=timeout))


def git(repo: Path, *args: str) -> None:
    """Run `git -C repo args` (a work tree for --watch's git questions), failing on error."""
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes; only a reaper can remove it.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False  # gone since


def processes_running(word: str) -> list[int]:
    """Linux: the pids whose command line holds `word` (a unique argument, or part of one),
    zombies left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if word.encode() in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


async def gone(pid: int) -> bool:
    return await eventually(lambda: not alive(pid))


async def signal_twice_at_once(pid: int, number: int) -> None:
    """Send `number` to `pid` twice, as `timeout` or a wrapper delivers one stop twice: the
    second once the kernel has handed the first over (else it merges the two into one), and
    at once after it, whatever the machine's load (Linux: /proc says what is pending)."""
    os.kill(pid, number)

    def handed_over() -> bool:
        with open(f"/proc/{pid}/status") as status:
            pending = [int(line.split()[1], 16) for line in status
                       if line.startswith(("SigPnd:", "ShdPnd:"))]  # fmt: skip
        return not any(mask & (1 << (number - 1)) for mask in pending)

    assert await eventually(handed_over), f"pid {pid} never took signal {number}"
    os.kill(pid, number)


# Raw HTTP/1.1 over a socket: what goes over the wire is what the tests see.


async def read_answer(reader: asyncio.StreamReader, *, head_only: bool = False) -> bytes:
    """One whole HTTP answer: its head, then Content-Length bytes of body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    if head_only or head.split(b" ")[1] in (b"204", b"304"):
        return head
    return head + await asyncio.wait_for(reader.readexactly(length), 10)


def without_date(answer: bytes) -> bytes:
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.startswith(b"Date:"))


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


def reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with a reset (SO_LINGER 0), as a killed client's or a closed
    tab's is, rather than with a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def small_window(
    url: str, target: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client whose receive window is 4 KiB, so that the proxy's buffer fills once it
    reads no more, having asked `url` (http:// or https://, the certificate unchecked) for
    `target`."""
    secure = url.startswith("https://")
    host, port = url.partition("://")[2].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    context = None
    if secure:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(
        sock=sock, ssl=context, server_hostname="localhost" if secure else None
    )
    writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target)
    return reader, writer


async def in_both_lanes(
    path: Path, socket_dir: Path, requests: list[bytes], *, ends: bool = False,
    cors: tuple[str, ...] = (),
) -> dict[bool, list[bytes]]:  # fmt: skip
    """Each raw request sent in turn over one connection to the proxy with its fast lane
    (True) and without (False), `cors` its --cors: each answer, its Date line dropped. The
    lane must answer them all itself; `ends`: the connection must end after the last."""
    answers = {}
    for fast in (True, False):
        async with running(path, socket_dir, fast_lane=fast, cors=cors) as run:
            reader, writer = await connect(run.url)
            got = []
            for raw in requests:
                writer.write(raw)
                head_only = raw.startswith(b"HEAD ")
                got.append(without_date(await read_answer(reader, head_only=head_only)))
            if ends:
                assert await reader.read() == b""
            writer.close()
            answers[fast] = got
            lane = run.started.lane  # None without the fast lane
            assert lane is None or (lane.served, lane.handed_over) == (len(requests), 0)
    return answers


def compiles_again(folder: Path, extra: str = "") -> str:
    """A process whose every start but the first works 3.5 s before it listens (compiles,
    as `cargo run` after an edit, or loads, as a JVM), with a <startup_timeout> of 2 s: at
    a third of a core, which is work (readiness.Busy.SHARE, a tenth), for less CPU. Its
    script and its mark of a first start are kept in `folder`."""
    started = folder / "started"
    script = folder / "compiles.py"
    script.write_text(
        "import os, runpy, time\n"
        f"if os.path.exists({str(started)!r}):  # not the first start: 3.5 s of work\n"
        "    end = time.monotonic() + 3.5\n"
        "    while time.monotonic() < end:\n"
        "        busy = time.monotonic() + 0.03\n"
        "        while time.monotonic() < busy: pass\n"
        "        time.sleep(0.06)\n"
        f"open({str(started)!r}, 'w').close()\n"
        f"runpy.run_path({str(CHILDREN / 'behave.py')!r}, run_name='__main__')\n"
    )
    return (
        f"<process><id>svc</id><executable>{PYTHON}</executable><arg>-S</arg><arg>{script}"
        f"</arg><route>/api/*</route><startup_timeout>2s</startup_timeout>{extra}</process>"
    )

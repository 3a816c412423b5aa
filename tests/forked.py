"""`python -m local_lambdas ARGS` started by fork from a Python that has already imported the
package (a fork server, as gunicorn's preload or multiprocessing's forkserver), for the
tests' `cli` helper.

A proxy started as a process spends about 0.25 s of its 0.3 s of CPU importing aiohttp,
pydantic, lxml, rich and the package, and the suite starts a hundred of them on two cores.
Forked from a Python that holds those modules, the same command runs with the same argv,
environment, working folder and output pipe, as its own process with its own pid, signals
and exit status; only the interpreter's start and the imports are shared. What an exec
would decide differently is started by exec instead (`forkable`): a process with something
set up before it runs, an environment that changes how Python starts or which build of the
package is loaded, or no fork at all (Windows). tests/test_forked.py checks the two ways
agree.

Run as a script, this file is the server: one per test worker, started at its first use,
ending when the worker closes its end of the control socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path

# What an environment may not add or change for a command to be forked rather than
# executed: what Python reads as it starts, and what picks the package's build at import.
_READ_AT_START = ("PYTHON", "LC_", "LANG", "LOCAL_LAMBDAS_PURE")


def forkable(added: dict[str, str]) -> bool:
    """Whether a command whose environment is this process's with `added` may be forked."""
    return hasattr(os, "fork") and not any(name.startswith(_READ_AT_START) for name in added)


class Forked:
    """A forked command, as much of asyncio.subprocess.Process as the tests use: its pid,
    its output, its signals, its exit status (negative for a signal, as asyncio says)."""

    def __init__(
        self,
        pid: int,
        stdout: asyncio.StreamReader,
        pipes: list[asyncio.BaseTransport],
        status: socket.socket,
        said: bytes,
        stderr: asyncio.StreamReader | None = None,
    ) -> None:
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr  # None: its errors are in `stdout`
        self._pipes = pipes  # stdout's, and stderr's when apart
        self.returncode: int | None = None
        self._ended = asyncio.ensure_future(self._status(status, said))

    async def _status(self, status: socket.socket, said: bytes) -> int:
        """The exit status the server sends on `status`, of which `said` has come."""
        with status:
            status.setblocking(False)
            while not said.endswith(b"\n"):
                more = await asyncio.get_running_loop().sock_recv(status, 64)
                assert more, "the fork server ended before the command"
                said += more
        self.returncode = int(said)
        return self.returncode

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)

    def close(self) -> None:
        """Let go of its output, read or not (the test is over): left to the garbage
        collector, the pipe was an "unclosed file" warning in a later test."""
        for pipe in self._pipes:
            pipe.close()

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


_server_started: tuple[socket.socket, subprocess.Popen[bytes]] | None = None


def _server() -> socket.socket:
    global _server_started
    if _server_started is None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            # Its output a pipe, as a command's is: the standard streams Python makes as it
            # starts (seekable or not, buffered by line or not) are then those of a command.
            server = subprocess.Popen(
                [sys.executable, __file__, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        _server_started = ours, server
    return _server_started[0]


async def start(
    args: list[str], env: dict[str, str], cwd: Path | None, *, apart: bool = False
) -> Forked:
    """`python -m local_lambdas ARGS` forked, in `cwd` (else this process's) with exactly
    `env`, its output and errors into one pipe read as `stdout`, or, `apart`, its errors
    into another read as `stderr`."""
    streams = [os.pipe() for _ in range(2 if apart else 1)]  # (read, write) each
    ours, theirs = socket.socketpair()
    request = {"args": args, "env": env, "cwd": str(cwd or os.getcwd())}
    try:
        socket.send_fds(
            _server(), [json.dumps(request).encode()],
            [theirs.fileno(), *(write for _, write in streams)],
        )  # fmt: skip
    finally:
        theirs.close()
        for _, write in streams:
            os.close(write)
    said = b""
    ours.settimeout(20)
    while b"\n" not in said:
        more = ours.recv(64)
        assert more, "the fork server did not start the command"
        said += more
    said, _, more = said.partition(b"\n")  # its pid, then perhaps already its exit status
    if said.startswith(b"!"):  # it could not go into `cwd`, as an exec would have failed
        ours.close()
        for read, _ in streams:
            os.close(read)
        errno = int(said[1:])
        raise OSError(errno, os.strerror(errno), request["cwd"])
    readers: list[asyncio.StreamReader] = []
    pipes: list[asyncio.BaseTransport] = []
    for read, _ in streams:
        reader = asyncio.StreamReader()
        pipe, _ = await asyncio.get_running_loop().connect_read_pipe(
            functools.partial(asyncio.StreamReaderProtocol, reader),
            os.fdopen(read, "rb", buffering=0),
        )
        readers.append(reader)
        pipes.append(pipe)
    return Forked(int(said), readers[0], pipes, ours, more, *readers[1:])


# The server.


def _serve(control: socket.socket) -> tuple[dict[str, object], socket.socket] | None:
    """Fork a command for each request and tell each requester its command's exit status.
    Returns, in a forked process, the request it is to run and its requester; None once the
    worker has gone."""
    woken_read, woken_write = os.pipe()
    os.set_blocking(woken_write, False)
    signal.set_wakeup_fd(woken_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    waiting: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(woken_read, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is not control:
                os.read(woken_read, 4096)
                _reap(waiting)
                continue
            message, fds, _, _ = socket.recv_fds(control, 1 << 20, 3)
            if not message:
                return None
            requester, output, errors = socket.socket(fileno=fds[0]), fds[1], fds[-1]
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                selector.close()
                for held in (control, *waiting.values()):
                    held.close()
                os.close(woken_read)
                os.close(woken_write)
                os.dup2(output, 1)
                os.dup2(errors, 2)
                for fd in {output, errors}:
                    os.close(fd)
                return json.loads(message), requester
            for fd in {output, errors}:
                os.close(fd)
            waiting[pid] = requester


def _reap(waiting: dict[int, socket.socket]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if requester := waiting.pop(pid, None):
            with requester:
                with contextlib.suppress(OSError):  # the test may have gone
                    requester.sendall(b"%d\n" % os.waitstatus_to_exitcode(status))


def _run(request: dict[str, object], requester: socket.socket) -> None:
    """`python -m local_lambdas ARGS` in this process, as that command would start it; its
    pid told to the requester once it is in its folder, as an exec'd one is once started."""
    import runpy

    args, env, cwd = request["args"], request["env"], request["cwd"]
    assert isinstance(args, list) and isinstance(env, dict) and isinstance(cwd, str)
    with requester:
        try:
            os.chdir(cwd)
        except OSError as error:
            requester.sendall(b"!%d\n" % (error.errno or 0))
            os._exit(127)
        requester.sendall(b"%d\n" % os.getpid())
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["-m", *args]
    sys.path.insert(0, cwd)  # as -m puts it
    runpy.run_module("local_lambdas", run_name="__main__", alter_sys=True)


def _preload() -> None:
    """Import what a serving proxy imports, so that each command forked finds it loaded."""
    import importlib
    import pkgutil
    import threading

    import local_lambdas

    for module in pkgutil.walk_packages(local_lambdas.__path__, "local_lambdas."):
        if module.name != "local_lambdas.__main__":
            with contextlib.suppress(ImportError):  # another platform's
                importlib.import_module(module.name)
    assert threading.active_count() == 1, "a thread started by an import would not be forked"


if __name__ == "__main__":
    control = socket.socket(fileno=int(sys.argv[1]))
    sys.path.pop(0)  # this file's folder: not on a command's path
    _preload()
    if (wanted := _serve(control)) is not None:
        _run(*wanted)

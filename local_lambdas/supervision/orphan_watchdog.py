"""No child outlives the proxy, even when the proxy is killed with SIGKILL (POSIX): the proxy's
end of the watchdog process (orphans.py).

Linux's parent-death signal (see _compat) reaches only a direct child, not what that child
started (a shell wrapper's or `npm start`'s own children). So the proxy also starts a small
watchdog process, in a session of its own so that a signal to the proxy's process group misses
it, and tells it on its stdin which process groups exist; when that input ends (the proxy is
gone, however it went) the watchdog stops them all. After a clean stop nothing is left to kill.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from local_lambdas import orphans
from local_lambdas._compat import adoption

log = logging.getLogger("local_lambdas.orphan_watchdog")

# orphans.py imported from its folder, put last on the path (nothing there shadows the standard
# library), rather than run by path: an import reads the compiled file Python keeps beside it,
# where a script is compiled at every start (5 ms of the watchdog's 30). The folder is given in
# the environment, not on the command line (see Watchdog.start).
_FOLDER = "LOCAL_LAMBDAS_WATCHDOG_FROM"
_START = (
    f"import os, sys; sys.path.append(os.environ.pop({_FOLDER!r})); import orphans; "
    "sys.exit(orphans.main(sys.argv[1:]))"
)


def _base_python() -> str:
    """The interpreter a virtual environment was made from, whether it links to it or holds
    a copy of it (`venv --copies`); this one where that is gone."""
    base = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return base if os.path.isfile(base) else os.path.realpath(sys.executable)


_PYTHON = _base_python()
_ORPHANS_FOLDER = os.path.dirname(os.path.abspath(orphans.__file__))


class Watchdog:
    """The proxy's end: start the watchdog, tell it about process groups, close it."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, run_mark: str, socket_dir: str | None) -> None:
        # Its command line names no path of the install: `pkill -9 -f local-lambdas`, aimed at
        # the proxy (a CI job's teardown), would take it too, and pipx installs into
        # .../venvs/local-lambdas/. So the interpreter is the one a virtual environment was
        # made from (the standard library is all it needs: -I -S, no site-packages, no
        # package, no asyncio), and the package's folder is in its environment.
        self._proc = await asyncio.create_subprocess_exec(
            _PYTHON, "-I", "-S", "-c", _START, run_mark,
            stdin=asyncio.subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, _FOLDER: _ORPHANS_FOLDER},
        )  # fmt: skip
        adoption.started(self._proc.pid)
        # On its input, not its command line, for the same reason: the folder's name is
        # /tmp/local-lambdas-...
        if socket_dir and "\n" not in socket_dir:
            self._send(f"#{socket_dir}\n")

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def stray(self, pid: int, start: int) -> None:
        """A process below the proxy with no mark (adoption.unmarked_descendants), as it
        started (orphans.started_at): stopped with its group unless gone or its pid reused."""
        log.debug("pid %d, below the proxy with no mark, is the watchdog's too", pid)
        self._send(f"@{pid} {start}\n")

    def socket(self, path: str) -> None:
        """A socket a child listens on (pipe modes): removed if the proxy is killed, unless
        another replaced it since (a shared --socket-dir; the run's own folder goes whole)."""
        try:
            inode = os.stat(path).st_ino
        except OSError:
            return
        if "\n" not in path:
            self._send(f"={inode} {path}\n")

    def _send(self, line: str) -> None:
        if self._proc is None or self._proc.stdin is None or self._proc.stdin.is_closing():
            return
        try:
            self._proc.stdin.write(line.encode())
        except (BrokenPipeError, ConnectionResetError):
            log.warning("the orphan watchdog is gone; children may outlive a killed proxy")

    async def close(self) -> None:
        """After a clean stop: let the watchdog exit (it has nothing left to kill)."""
        if self._proc is None:
            return
        assert self._proc.stdin is not None
        self._send(".\n")  # a clean stop: what it was told of is stopped, or not the run's
        self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), 5)
        except asyncio.TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        adoption.forget(self._proc.pid)  # (its pid, reused, is no longer ours)

"""No child outlives the proxy, even when the proxy is killed with SIGKILL (POSIX).

Linux's parent-death signal (see _compat) reaches only a direct child, not what that child
started (a shell wrapper's or `npm start`'s own children). So the proxy also starts this small
watchdog, in a session of its own so that a signal to the proxy's process group misses it.
The proxy writes `+PGID` when a child's process group appears and `-PGID` when it is gone, on
the watchdog's stdin. End of input means the proxy is gone: the watchdog SIGTERMs every group
still listed and, on Linux, every process that carries the run's mark in its environment
(descendants that left their group: setsid, double forks), SIGKILLs what is left a moment
later, removes the socket directory, and exits. After a clean stop nothing is left to kill.

Run as `python -m local_lambdas.watchdog RUN_MARK [SOCKET_DIR]`; standard library only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import time

from local_lambdas._compat import kill_marked, marked

log = logging.getLogger("local_lambdas.watchdog")
_GRACE = 2.0


class Watchdog:
    """The proxy's end: start the watchdog, tell it about process groups, close it."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, run_mark: str, socket_dir: str | None) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "local_lambdas.watchdog", run_mark,
            *([socket_dir] if socket_dir else []),
            stdin=asyncio.subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

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
        self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), 5)
        except asyncio.TimeoutError:
            self._proc.kill()
            await self._proc.wait()


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def main(argv: list[str]) -> int:
    # Ctrl+C in the terminal goes to the proxy, which stops cleanly and then closes our input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin.buffer:
        sign, number = line[:1], line[1:].strip()
        if number.isdigit():
            (groups.add if sign == b"+" else groups.discard)(int(number))
    run_mark = argv[0] + "."
    for pgid in groups:
        if _alive(pgid):
            os.killpg(pgid, signal.SIGTERM)
    escaped = kill_marked(run_mark, signal.SIGTERM)
    deadline = time.monotonic() + _GRACE
    while (any(_alive(g) for g in groups) or escaped) and time.monotonic() < deadline:
        time.sleep(0.05)
        escaped = marked(run_mark)
    for pgid in groups:
        if _alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
    kill_marked(run_mark)
    if len(argv) > 1:
        shutil.rmtree(argv[1], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

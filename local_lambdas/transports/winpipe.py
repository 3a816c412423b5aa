"""Windows named pipes (\\\\.\\pipe\\NAME) as asyncio connections, for the pipe transports.

The child is the pipe server (CreateNamedPipe, one instance per concurrent client); the proxy
opens it as a client on the Proactor event loop, so nothing blocks the loop. When every
instance is taken (ERROR_PIPE_BUSY), or the child is between one instance and the next
(ERROR_FILE_NOT_FOUND), the open is retried for a moment, within the request's own deadline.
A child closing its end (ERROR_BROKEN_PIPE) reads as end-of-file, which is how a one-shot
answer ends; byte-mode pipes never give ERROR_MORE_DATA. Framing is the same as on POSIX,
except that a pipe cannot be half-closed: in one-shot mode the child reads until the JSON
parses.

Who serves a pipe can only be known once connected (GetNamedPipeServerProcessId): with a
plain pipe name (--socket-dir), another program could have created it first. Each new
connection's server must be the child or one of its descendants, or the connection is
closed before anything is sent.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import sys
from collections.abc import Callable
from typing import TypeVar

_ERROR_FILE_NOT_FOUND = 2
_ERROR_PIPE_BUSY = 231
_RETRY_FOR = 2.0  # seconds of busy or absent pipe before giving up
_RETRY_STEP = 0.005


P = TypeVar("P", bound=asyncio.Protocol)


async def connect_pipe(
    address: str, protocol: Callable[[], P], owned: Callable[[int], bool] | None = None
) -> tuple[asyncio.Transport, P]:
    loop = asyncio.get_running_loop()
    create = getattr(loop, "create_pipe_connection", None)
    if create is None:
        raise OSError("named pipes need the Proactor event loop (asyncio's default on Windows)")
    deadline = loop.time() + _RETRY_FOR
    while True:
        try:
            connected: tuple[asyncio.Transport, P] = await create(protocol, address)
        except OSError as exc:
            waiting = getattr(exc, "winerror", None) in (_ERROR_PIPE_BUSY, _ERROR_FILE_NOT_FOUND)
            if not waiting or loop.time() >= deadline:
                raise
            await asyncio.sleep(_RETRY_STEP)  # no event says an instance is free
            continue
        if owned is not None:
            server = _server_pid(connected[0])
            if server is not None and not owned(server):
                connected[0].close()
                raise OSError(errno.EACCES, f"the pipe is served by pid {server}, which is "
                              "not the child or one of its descendants")  # fmt: skip
        # Unlike create_unix_connection, this returns before the protocol's connection_made
        # (scheduled with call_soon) has run: one turn of the loop lets it, first in line.
        await asyncio.sleep(0)
        return connected


def _server_pid(transport: asyncio.Transport) -> int | None:
    """The pid of the process serving a connected pipe; None if Windows will not say."""
    pipe = transport.get_extra_info("pipe")
    if sys.platform != "win32" or pipe is None:
        return None
    pid = ctypes.c_ulong()
    if not ctypes.windll.kernel32.GetNamedPipeServerProcessId(pipe.handle, ctypes.byref(pid)):
        return None
    return pid.value

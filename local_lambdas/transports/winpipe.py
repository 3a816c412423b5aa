"""Windows named pipes (\\\\.\\pipe\\NAME) as asyncio connections, for the pipe transports.

The child is the pipe server (CreateNamedPipe, one instance per concurrent client); the proxy
opens it as a client on the Proactor event loop, so nothing blocks the loop. When every
instance is taken (ERROR_PIPE_BUSY), or the child is between one instance and the next
(ERROR_FILE_NOT_FOUND), the open is retried for a moment, within the request's own deadline.
A child closing its end (ERROR_BROKEN_PIPE) reads as end-of-file, which is how a one-shot
answer ends; byte-mode pipes never give ERROR_MORE_DATA. Framing is the same as on POSIX,
except that a pipe cannot be half-closed: in one-shot mode the child reads until the JSON
parses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

_ERROR_FILE_NOT_FOUND = 2
_ERROR_PIPE_BUSY = 231
_RETRY_FOR = 2.0  # seconds of busy or absent pipe before giving up
_RETRY_STEP = 0.005


P = TypeVar("P", bound=asyncio.Protocol)


async def connect_pipe(address: str, protocol: Callable[[], P]) -> tuple[asyncio.Transport, P]:
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
        # Unlike create_unix_connection, this returns before the protocol's connection_made
        # (scheduled with call_soon) has run: one turn of the loop lets it, first in line.
        await asyncio.sleep(0)
        return connected

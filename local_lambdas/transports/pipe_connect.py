"""A pipe transport's connect that failed (both pipe modes), off the request path: a child
that is not listening is NotConnected (one whose socket file was removed, with the way
out); one whose listen queue is full is waited for.

A child that accepts more slowly than requests come, with a small backlog (a single-threaded
server's listen(5), Python socketserver's default), has the kernel refuse a Unix socket's
non-blocking connect with EAGAIN where a blocking connect, or a TCP connect, would wait for
room. So the connect is tried again, backing off to 20 ms, for as long as the request's
<timeout> lets it; the log says so once per child.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from local_lambdas import _compat
from local_lambdas.errors import NotConnected, add_note

log = logging.getLogger("local_lambdas.pipe")

P = TypeVar("P", bound=asyncio.Protocol)
_told: set[str] = set()  # the socket paths whose full listen queue was said


async def connect_again(
    failed: OSError,
    path: str,
    protocol: Callable[[], P],
    owned: Callable[[int], bool] | None,
    name: str,
    loop: asyncio.AbstractEventLoop | None = None,
) -> tuple[asyncio.Transport, P]:
    """After `_compat.connect_pipe(path, ...)` raised `failed`: the connection once there is
    room in the child's listen queue, else NotConnected. `name`: the process, as the log
    names it."""
    delay = 0.001
    while isinstance(failed, BlockingIOError):
        if path not in _told:
            _told.add(path)
            log.warning(
                "%s: the child's listen queue is full (it accepts connections on %s more "
                "slowly than requests come): requests wait for room; a larger listen() "
                "backlog, or a lower <concurrency>, spares them the wait",
                name,
                path,
            )
        try:
            await asyncio.sleep(delay)
            return await _compat.connect_pipe(path, protocol, owned, loop)
        except OSError as exc:
            failed = exc
        except asyncio.CancelledError as cancelled:  # (its <timeout>: the 504 says why)
            add_note(
                cancelled, "the child's listen queue stayed full: this connection never got in"
            )
            raise
        delay = min(delay * 2, 0.02)
    why = failed.strerror
    if isinstance(failed, FileNotFoundError) and not _compat.IS_WINDOWS:
        # (It was there when the child became ready. A Windows pipe with no instance left
        # is one whose server stopped listening: no file to remove there.)
        why = (
            "its socket file is gone (removed while the child ran: it listens where nothing "
            f"can reach it); `local-lambdas restart {name.partition('#')[0]}` starts it anew"
        )
    raise NotConnected(f"cannot connect to {path}: {why}") from failed

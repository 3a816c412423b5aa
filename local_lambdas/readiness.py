"""Whether a child listens yet: the probes behind READY (DESIGN section 7).

A child is ready when its pipe or port accepts connections, or, with <ready_path>, when that
path answers 2xx. Where the platform can tell without connecting (Linux's /proc/net tables,
Windows' WaitNamedPipe) nothing is sent to the child: children written for the earlier tool
may take any connection for a request and fail on an empty one.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_exponential

from local_lambdas import _compat
from local_lambdas.config import Process


async def wait_until_listening(
    process: Process, address: str, *, given_up: Callable[[], bool]
) -> bool:
    """Poll (tenacity, backing off to 100 ms) until `address` listens, within the process's
    <startup_timeout>; False on time out or as soon as `given_up()` (the child exited)."""

    async def probe() -> bool | None:
        if given_up():
            return None  # stops the retrying: it will never listen
        return await listening(process, address)

    retrying = AsyncRetrying(
        stop=stop_after_delay(process.startup_timeout),
        wait=wait_exponential(multiplier=0.002, max=0.1),
        retry=retry_if_result(lambda ready: ready is False),
        retry_error_callback=lambda _: False,
    )
    result: bool | None = await retrying(probe)
    return result is True


async def listening(process: Process, address: str) -> bool:
    """Whether the child of `process` listens at `address` now."""
    if process.communication_mode.uses_pipe:
        known = _compat.pipe_listening(address)
        if known is not None:
            return known
        return await _connects(_compat.connect_pipe(address, asyncio.Protocol))
    host, _, port = address.rpartition(":")
    if process.ready_path is not None:
        return await _answers_2xx(host, int(port), process.ready_path)
    known = _compat.tcp_listening(host, int(port))
    if known is not None:
        return known
    loop = asyncio.get_running_loop()
    return await _connects(loop.create_connection(asyncio.Protocol, host, int(port)))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a child whose manifest fixes none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _connects(opening: Awaitable[tuple[asyncio.BaseTransport, asyncio.Protocol]]) -> bool:
    """Whether the connection opens; closed at once, nothing sent."""
    try:
        transport, _ = await opening
    except OSError:
        return False
    transport.close()
    return True


async def _answers_2xx(host: str, port: int, path: str) -> bool:
    """Whether GET `path` answers with a 2xx status (a readiness path)."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        status_line = await asyncio.wait_for(reader.readline(), 5)
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()
    parts = status_line.split()
    return len(parts) >= 2 and parts[1].startswith(b"2")

"""Whether a child listens yet: the probes behind READY (docs/protocol.md, "Readiness").

A child is ready when its pipe or port accepts connections, or, with <ready_path>, when that
path answers 2xx or 3xx (as a Kubernetes httpGet probe, or `curl -f`, judges it: an app
whose page redirects to its login page is up). One that works as it starts (Linux: compiles,
installs) is waited for beyond <startup_timeout> (Busy). Where the platform can tell without
connecting (Linux's sock_diag, Windows' WaitNamedPipe) nothing is sent to the child:
children written for the earlier tool may take any connection for a request and fail on an
empty one. There (Linux), a listening socket counts only when it belongs to the child or its
descendants: with a shared socket directory or a fixed port, another program could be
listening at the child's address.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_delay,
    stop_never,
    wait_exponential,
)

from local_lambdas import _compat
from local_lambdas._compat import listeners, processes
from local_lambdas._compat.listeners import Listener
from local_lambdas.config import Process
from local_lambdas.transports.answer_head import http2_frame

Owners = Callable[[], Iterable[int]]


class Busy:
    """Whether a starting child works rather than waits: `cargo run` or `go run .` compiling
    for a minute before it listens, `npm ci && npm start`, a JVM loading a framework. About
    each second from its first on (the first, an interpreter's own start, is not counted),
    and before it is given up on, the CPU its processes used (Linux, processes.cpu_ticks):
    a tenth of a core or more is work, and <startup_timeout> counts only the time since it
    was last seen working, up to LIMIT times <startup_timeout> in all. Elsewhere it is never
    busy."""

    SHARE = 0.1  # of a core
    LIMIT = 30  # times <startup_timeout>: 5 minutes by default

    def __init__(self, owners: Owners, clock: Callable[[], float] = time.monotonic) -> None:
        self._owners = owners
        self._clock = clock
        self.began = self._checked = self.idle_since = clock()
        self._measured = processes.cpu_ticks(()) is not None
        self._ticks: int | None = None  # (none yet: the first second sets it)

    def out_of_time(self, seconds: float) -> bool:
        """Whether it has been idle for `seconds` (looked at again first, if it seems so:
        a second's work just ended counts), or worked for LIMIT times as long."""
        now = self._clock()
        if now - self._checked >= 1.0 or (
            now - self.idle_since >= seconds and now - self._checked >= 0.25
        ):
            self._look(now)
        return now - self.idle_since >= seconds or now - self.began >= seconds * self.LIMIT

    def _look(self, now: float) -> None:
        """Whether it worked since it was last looked at (the first look sets where from)."""
        if not self._measured:
            return
        ticks = processes.cpu_ticks(self._owners())
        if (
            self._ticks is not None
            and ticks is not None
            and ticks - self._ticks >= self.SHARE * _HZ * (now - self._checked)
        ):
            self.idle_since = now
        self._ticks, self._checked = ticks, now

    def worked(self, seconds: float) -> str:
        """How its wait ended, for the reason (`explain.not_ready_in_time`): "" if within
        `seconds` of its start, as when it never worked."""
        waited = self._clock() - self.began
        if waited < seconds + 1.0:
            return ""
        if waited >= seconds * self.LIMIT:
            return f"not ready after {waited:.0f}s of work ({self.LIMIT} times <startup_timeout>)"
        return (
            f"not ready after {waited:.0f}s, the last {seconds:g}s of them without work "
            "(<startup_timeout>)"
        )


_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


async def wait_until_listening(
    process: Process,
    address: str,
    owners: Owners,
    *,
    seconds: float | None,
    given_up: Callable[[], bool],
    busy: Busy | None = None,
) -> Listener:
    """Poll (tenacity, backing off to 100 ms) until the child listens at `address`, within
    `seconds` (None: for as long as it takes), not counting what `busy` finds it working.
    The Listener found (true when ready: its address is the one to connect to); else the
    last one seen, false, as soon as `given_up()` or on time out."""
    last = Listener("")

    async def probe() -> Listener | None:
        nonlocal last
        if given_up():
            return None  # stops the retrying: it will never listen
        last = await listening(process, address, owners)
        return last

    if seconds is None:
        stop: Callable[[RetryCallState], bool] = stop_never
    elif busy is None:
        stop = stop_after_delay(seconds)
    else:
        limit = seconds  # (a float, for the closure)
        stop = lambda _: busy.out_of_time(limit)  # noqa: E731
    retrying = AsyncRetrying(
        stop=stop,
        wait=wait_exponential(multiplier=0.002, max=0.1),
        retry=retry_if_result(lambda found: found is not None and not found),
        retry_error_callback=lambda _: None,
    )
    await retrying(probe)
    return last


async def listening(process: Process, address: str, owners: Owners) -> Listener:
    """Who listens at `address` for the child of `process` now."""
    if process.communication_mode.uses_pipe:
        known = listeners.pipe_listening(address, owners)
        if known is not None:
            return known
        opened = await _connects(_compat.connect_pipe(address, asyncio.Protocol))
        return _UNKNOWN if opened is None else Listener(address if opened else "")
    port = int(address.rpartition(":")[2])
    found = listeners.tcp_listening(port, owners)
    if found is None:  # no tables to read: connect, IPv4 first
        found = Listener("")
        loop = asyncio.get_running_loop()
        for host in ("127.0.0.1", "::1"):
            opened = await _connects(loop.create_connection(asyncio.Protocol, host, port))
            if opened is None:
                return _UNKNOWN
            if opened:
                found = Listener(f"{host}:{port}" if ":" not in host else f"[{host}]:{port}")
                break
    if found and process.ready_path is not None:
        host = found.address.rpartition(":")[0].strip("[]")
        try:
            refused = await _refused(host, port, process.ready_path)
        except _CannotLook:
            return _UNKNOWN
        if refused:
            return Listener("", refused=f"GET {process.ready_path} {refused}")
    return found


# The proxy's own open files at their limit: a connect that fails so says nothing of the
# child (Listener.unknown). (Linux's tables, asked first, cannot be read then either.)
_OUT_OF_FILES = frozenset({errno.EMFILE, errno.ENFILE})
_UNKNOWN = Listener("", unknown=True)


class _CannotLook(Exception):
    """The proxy could not open a connection of its own (_OUT_OF_FILES)."""


async def wait_until_accepting(address: str, *, given_up: Callable[[], bool]) -> bool:
    """Connect to HOST:PORT until it accepts (a route-only process's upstream), backing off
    to a second, for as long as it takes; False as soon as `given_up()`."""

    async def probe() -> bool | None:
        if given_up():
            return None
        host, _, port = address.rpartition(":")
        loop = asyncio.get_running_loop()
        opened = await _connects(loop.create_connection(asyncio.Protocol, host.strip("[]"),
                                                        int(port)))  # fmt: skip
        return opened is True  # (None, out of open files: not yet)

    retrying = AsyncRetrying(
        wait=wait_exponential(multiplier=0.01, max=1.0),
        retry=retry_if_result(lambda ok: ok is False),
    )
    return await retrying(probe) is True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a child whose manifest fixes none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def taken(address: str) -> bool:
    """Whether another program holds HOST:PORT now: a port free_port found free may be
    bound by any other program before the child binds it (the child then fails with
    "address already in use"). Bound as POSIX servers bind (SO_REUSEADDR), so that what a
    closed connection leaves (TIME_WAIT) is not taken for another program's listener;
    Windows' TIME_WAIT never stops a bind, and its SO_REUSEADDR would let this one steal."""
    host, _, port = address.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if not _compat.IS_WINDOWS:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


async def _connects(
    opening: Awaitable[tuple[asyncio.BaseTransport, asyncio.Protocol]],
) -> bool | None:
    """Whether the connection opens, closed at once, nothing sent; None: the proxy could
    not open one at all (out of open files)."""
    try:
        transport, _ = await opening
    except OSError as exc:
        return None if exc.errno in _OUT_OF_FILES else False
    transport.close()
    return True


async def _refused(host: str, port: int, path: str) -> str:
    """How GET `path` failed to answer a 2xx or 3xx ("answered 404", "got no answer"); "": it
    did."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        if exc.errno in _OUT_OF_FILES:
            raise _CannotLook from exc
        return f"could not connect ({exc.strerror or exc})"
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n".encode()
        )
        status_line = await asyncio.wait_for(reader.readline(), 5)
    except (OSError, asyncio.TimeoutError):
        return "got no answer within 5s"
    finally:
        writer.close()
    parts = status_line.split()
    if len(parts) >= 2 and parts[1][:1] in (b"2", b"3") and len(parts[1]) == 3:
        return ""
    if http2_frame(status_line):
        return "was answered in HTTP/2: local-lambdas speaks HTTP/1.1 to children"
    return f"answered {parts[1].decode(errors='replace')}" if len(parts) >= 2 else "got no answer"


async def speaks_tls(address: str) -> bool:
    """Whether a TLS handshake succeeds at HOST:PORT within a second: a child serving HTTPS
    where plain HTTP is spoken to it. Only the protocol is asked; no certificate is checked."""
    host, _, port = address.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        opening = asyncio.open_connection(host.strip("[]"), int(port), ssl=context)
        _, writer = await asyncio.wait_for(opening, 1.0)
    except (OSError, asyncio.TimeoutError):  # (ssl.SSLError is an OSError)
        return False
    writer.close()
    return True

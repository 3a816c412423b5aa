"""aiohttp's site over one socket a run listens on (binding.py), with the fast lane
(lane/fastlane.py) taking its connections first; those it hands over are aiohttp's server's
(server.py). Over TLS on POSIX, plain HTTP sent to the port is refused (tls.Front).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

from aiohttp import web

from local_lambdas import tls
from local_lambdas._compat import IS_WINDOWS
from local_lambdas.binding import BACKLOG


class Site(web.BaseSite):
    """aiohttp's site over one socket a run listens on (binding.py; one site each), with the
    fast lane accepting its connections, so that aiohttp's runner still stops listening and
    waits for what was handed over."""

    __slots__ = ("_lane", "_plain_refused", "_socket")

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: socket.socket,
        lane: Callable[[], asyncio.Protocol],
        ssl_context: ssl.SSLContext | None = None,
        plain_refused: Callable[[str], bytes] | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._socket = sock
        self._lane = lane
        self._plain_refused = plain_refused

    @property
    def name(self) -> str:
        return str(self._socket.getsockname())

    async def start(self) -> None:
        await super().start()
        if self._ssl_context is not None and self._plain_refused is not None and not IS_WINDOWS:
            # (Windows' proactor loop cannot wait for a socket to be readable: TLS as it was.)
            self._server = tls.Front([self._socket], self._lane, self._ssl_context,
                                     self._plain_refused)  # fmt: skip
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._lane, sock=self._socket, ssl=self._ssl_context, backlog=BACKLOG
        )

"""Keep-alive pipe transport (DESIGN section 3, ours): one line of compact JSON per message,
many request/response pairs in order on each persistent Unix-socket connection.

Connections are pooled per child instance; the pool that leases the instance bounds how many
requests are in flight, so this keeps at most that many connections. A connection carries one
request at a time. One that fails, breaks or is cancelled mid-exchange (a timeout) is closed,
never reused; an invalid but whole answer leaves the framing intact, so its connection stays.
"""

from __future__ import annotations

import asyncio

from local_lambdas import _compat
from local_lambdas.envelope import Request, Response, decode_response
from local_lambdas.errors import BadResponse, ChildUnreachable

_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class KeepAlivePipeTransport:
    def __init__(self, address: str, *, max_response: int) -> None:
        self._path = address
        self._max_response = max_response
        self._idle: list[_Connection] = []
        self._closed = False

    async def forward(self, request: Request) -> Response:
        reader, writer = await self._connection()
        reusable = False
        try:
            writer.write(request.encode() + b"\n")
            line = await reader.readuntil(b"\n")
            reusable = True
        except asyncio.IncompleteReadError as exc:
            got = (
                f"after {len(exc.partial)} bytes of answer" if exc.partial else "without answering"
            )
            raise ChildUnreachable(f"the child closed the connection {got}") from exc
        except asyncio.LimitOverrunError as exc:
            raise BadResponse(f"the answer is over {self._max_response} bytes") from exc
        except OSError as exc:
            raise ChildUnreachable(f"the connection broke: {exc.strerror or exc}") from exc
        finally:
            if reusable and not self._closed:
                self._idle.append((reader, writer))
            else:
                writer.close()
        return decode_response(line)

    async def _connection(self) -> _Connection:
        if self._closed:
            raise ChildUnreachable("the child exited before the request was sent")
        while self._idle:
            reader, writer = self._idle.pop()
            # The child may have closed an idle connection: never send a request down it.
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        try:
            return await _compat.open_pipe(self._path, limit=self._max_response)
        except OSError as exc:
            raise ChildUnreachable(f"cannot connect to {self._path}: {exc.strerror}") from exc

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()

"""One-shot pipe transport over a Unix domain socket (DESIGN section 3, the earlier tool's).

Per request: connect, write one JSON object, shut the writing side, read until the child
closes. The shutdown lets children that read to EOF work; children that stop reading once
the JSON parses work too.
"""

from __future__ import annotations

import asyncio

from local_lambdas import _compat
from local_lambdas.envelope import Request, Response, decode_response
from local_lambdas.errors import BadResponse, ChildUnreachable

_CHUNK = 256 * 1024


class PipeTransport:
    def __init__(self, address: str, *, max_response: int) -> None:
        self._path = address
        self._max_response = max_response

    async def forward(self, request: Request) -> Response:
        try:
            reader, writer = await _compat.open_pipe(self._path, limit=_CHUNK)
        except OSError as exc:
            raise ChildUnreachable(f"cannot connect to {self._path}: {exc.strerror}") from exc
        try:
            try:
                writer.write(request.encode())
                # POSIX: shut the writing side, for children that read to end-of-file. Windows
                # pipes cannot half-close: there the child reads until the JSON parses.
                if writer.can_write_eof():
                    writer.write_eof()
                await writer.drain()
            except OSError:
                # The child may have answered (say, an error) without reading everything;
                # whatever it sent is still read below.
                pass
            raw = await self._read_all(reader)
        finally:
            writer.close()
        if not raw:
            raise ChildUnreachable("the child closed the connection without answering")
        return decode_response(raw)

    async def _read_all(self, reader: asyncio.StreamReader) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                chunk = await reader.read(_CHUNK)
            except OSError as exc:
                if size and _compat.is_end_of_pipe(exc):
                    return b"".join(chunks)
                what = "reset" if size == 0 else f"broken after {size} bytes of answer"
                raise ChildUnreachable(f"the connection was {what}: {exc.strerror}") from exc
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self._max_response:
                raise BadResponse(
                    f"the answer is over {self._max_response} bytes", b"".join(chunks)[:1024]
                )
            chunks.append(chunk)

    async def aclose(self) -> None:
        """Nothing is kept open between requests in one-shot mode."""

"""`http` envelope transport (docs/protocol.md, "Framing: http", the earlier tool's): POST
the request object to http://HTTP_ADDRESS/ and read the response object from the reply's
body.
"""

from __future__ import annotations

import aiohttp

from local_lambdas.envelope import TOKEN_HEADER, Request, Response, decode_response
from local_lambdas.errors import BadResponse, ChildUnreachable

_CHUNK = 256 * 1024


class HttpTransport:
    def __init__(self, address: str, *, max_response: int) -> None:
        self._url = f"http://{address}/"
        self._max_response = max_response
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop, and kept: connections are pooled.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def forward(self, request: Request) -> Response:
        if self._closed:
            # The child exited between this request's lease and its send.
            raise ChildUnreachable("the child exited before the request was sent")
        headers = {
            "Content-Type": "application/json",
            "X-Request-Id": request.request_id,
            TOKEN_HEADER: request.token,
        }
        try:
            reply = await self._client().post(self._url, data=request.encode(), headers=headers)
        except aiohttp.ClientConnectorError as exc:
            raise ChildUnreachable(f"cannot connect to {self._url}: {exc.strerror}") from exc
        except aiohttp.ClientResponseError as exc:
            raise BadResponse(f"the child's HTTP reply is invalid: {exc.message}") from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise ChildUnreachable("the child closed the connection without answering") from exc
        except aiohttp.ClientConnectionError as exc:
            # Reset before the reply's first byte: nothing came back.
            raise ChildUnreachable(f"the connection failed before any answer: {exc}") from exc
        async with reply:
            try:
                raw = await self._read_all(reply)
            except aiohttp.ClientError as exc:
                raise ChildUnreachable(f"the HTTP reply broke off: {exc}") from exc
        return decode_response(raw)

    async def _read_all(self, reply: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in reply.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > self._max_response:
                raise BadResponse(
                    f"the answer is over {self._max_response} bytes", b"".join(chunks)[:1024]
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

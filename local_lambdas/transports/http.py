"""`http` envelope transport (docs/protocol.md, "Framing: http", the earlier tool's): POST
the request object to http://HTTP_ADDRESS/ and read the response object from the reply's
body (its status is not used). Spoken in raw HTTP/1.1 over pooled keep-alive connections
(transports/upstream.py), as pass-through in the fast lane is: aiohttp's client cost half
of this mode's instructions per request. The reply's headers are not read (exchange.Bare).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from local_lambdas.envelope import MAX_HEAD, TOKEN_HEADER, Request, Response
from local_lambdas.envelope_answer import Answers, gather
from local_lambdas.errors import BadResponse, ChildUnreachable, NotAnAnswer
from local_lambdas.lane.http1 import RETRYABLE
from local_lambdas.transports.answer_head import raw_header
from local_lambdas.transports.closes import Closes
from local_lambdas.transports.upstream import Upstream


class HttpTransport:
    def __init__(self, address: str, *, max_response: int, closes: Closes | None = None) -> None:
        host, _, port = address.rpartition(":")
        self._host = address
        # (Its reply's body is the answer, kept whole: the connection is not read past it.)
        most = max_response + MAX_HEAD
        self._upstream = Upstream(
            host.strip("[]"), int(port), headers=False, most=most, closes=closes
        )
        self._max_response = max_response
        self._answers = Answers()
        self._closed = False

    async def forward(self, request: Request) -> Response:
        if self._closed:
            # The child exited between this request's lease and its send.
            raise ChildUnreachable("the child exited before the request was sent")
        body = request.encode()
        # Accept-Encoding: identity: without it any coding is acceptable (RFC 9110 12.5.3),
        # and a server's compression would be taken for a body that is not JSON.
        head = (
            f"POST / HTTP/1.1\r\nHost: {self._host}\r\nContent-Type: application/json\r\n"
            "Accept-Encoding: identity\r\n"
            f"X-Request-Id: {request.request_id}\r\n{TOKEN_HEADER}: {request.token}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        reply = _Reply(self._max_response)
        # No time limit here: the proxy bounds the whole exchange with <timeout>.
        first = await self._upstream.send(
            head + body, reply, timeout=None, idempotent=request.method in RETRYABLE
        )
        if reply.error is not None:
            raise reply.error
        try:
            return self._answers.decode(reply.answer)
        except BadResponse as exc:
            coding = raw_header(first, b"content-encoding")
            if coding and coding.lower() != "identity":
                raise BadResponse(
                    f"{exc}; its HTTP reply was compressed (Content-Encoding: {coding}) though "
                    "the request asked for none (Accept-Encoding: identity): send the JSON "
                    "envelope uncompressed",
                    exc.received,
                ) from exc
            content_type = (raw_header(first, b"content-type") or "").lower()
            if "json" in content_type and not isinstance(exc, NotAnAnswer):
                raise
            # An ordinary web server behind `http`: say what it answered, and the mode it wants.
            typed = f" of {content_type}" if content_type else ""
            raise BadResponse(
                f"{exc}; its HTTP reply was a {reply.status}{typed}, not the JSON envelope: a web "
                "server that takes requests as they are goes behind "
                "<communication_mode>passthrough</communication_mode>",
                exc.received,
            ) from exc

    async def aclose(self) -> None:
        self._closed = True
        self._upstream.close()


class _Reply:
    """The child's HTTP reply, gathered (a Sink, transports/sink.py); its body is the answer."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.answer: bytes | bytearray = b""
        self.error: ChildUnreachable | BadResponse | None = None
        self.status = 0  # the reply's, not the answer's: the envelope in its body says that

    def head(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.status = status

    def body(self, data: bytes) -> None:
        if self.error is not None:
            return  # over the limit (the exchange stops reading once past its head's room)
        self.answer = gather(self.answer, data) if self.answer else data
        if len(self.answer) > self._limit:
            sample = bytes(self.answer[:1024])
            self.answer = b""
            self.error = BadResponse(f"the answer is over {self._limit} bytes", sample)

    def end(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def broken(self, why: str) -> None:
        if self.error is None:  # (over the limit: that is why it was broken off)
            self.error = ChildUnreachable(f"the HTTP reply broke off: {why}")

    def upgraded(
        self, reason: str, headers: list[tuple[str, str]], child: asyncio.Transport, rest: bytes
    ) -> None:
        raise AssertionError("the envelope never asks to switch protocols")

    @property
    def writable(self) -> bool:
        return True

    def when_writable(self, then: Callable[[], None]) -> None:
        then()

"""Ways of talking to a child, one module each; the manifest's mode picks one from TRANSPORTS.

A transport's contract is one call and a close:

    response = await transport.forward(request)   # envelope.Request -> envelope.Response
    await transport.aclose()

`forward` raises ChildUnreachable when nothing at all came back (the connection was refused,
reset or closed before the first byte: safe to retry), BadResponse when something invalid
came back, and nothing else of its own. Deadlines are the caller's: it cancels `forward`, and
a transport must then leave no half-used connection behind.
"""

from __future__ import annotations

from typing import Protocol

from local_lambdas.config import Mode
from local_lambdas.envelope import Request, Response
from local_lambdas.transports.http import HttpTransport
from local_lambdas.transports.keepalive import KeepAlivePipeTransport
from local_lambdas.transports.pipe import PipeTransport


class Transport(Protocol):
    async def forward(self, request: Request) -> Response: ...

    async def aclose(self) -> None: ...


class TransportFactory(Protocol):
    def __call__(self, address: str, *, max_response: int) -> Transport: ...


TRANSPORTS: dict[Mode, TransportFactory] = {
    Mode.PIPE: PipeTransport,
    Mode.PIPE_KEEPALIVE: KeepAlivePipeTransport,
    Mode.HTTP: HttpTransport,
}

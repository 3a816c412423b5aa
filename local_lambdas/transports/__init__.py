"""Ways of talking to a child, one module each; the manifest's mode picks one from TRANSPORTS.

An envelope transport's contract is one call and a close (pass-through, which streams, is
the exception: see transports/passthrough.py):

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
from local_lambdas.transports.passthrough import PassthroughTransport
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
# Pass-through streams, so it answers the client itself (PassthroughTransport.relay) rather
# than returning an envelope: the proxy takes that path for this mode.
RELAYS = {Mode.PASSTHROUGH: PassthroughTransport}

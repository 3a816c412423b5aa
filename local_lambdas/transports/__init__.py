"""Ways of talking to a child, one module each; the manifest's mode picks one from TRANSPORTS.

An envelope transport's contract is one call and a close (pass-through, which streams and
answers the client itself, has its own: see transports/passthrough.py):

    response = await transport.forward(request)   # envelope.Request -> envelope.Response
    await transport.aclose()

`forward` raises ChildUnreachable when nothing at all came back (the connection was refused,
reset or closed before the first byte: safe to retry), BadResponse when something invalid
came back, and nothing else of its own. Deadlines are the caller's: it cancels `forward`, and
a transport must then leave no half-used connection behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from local_lambdas.config import Mode
from local_lambdas.envelope import Request, Response
from local_lambdas.transports.closes import Closes
from local_lambdas.transports.http import HttpTransport
from local_lambdas.transports.keepalive import KeepAlivePipeTransport
from local_lambdas.transports.pipe import PipeTransport


class Transport(Protocol):
    async def forward(self, request: Request) -> Response: ...

    async def aclose(self) -> None: ...


def for_child(
    mode: Mode, address: str, *, max_response: int, owned: Callable[[int], bool],
    closes: Closes,
) -> Transport:  # fmt: skip
    """The envelope transport to a ready child at `address`. `owned(pid)` says whether a
    process is the child or one of its descendants: where the platform can only tell who
    serves a pipe once connected (Windows), the pipe transports ask it of every new
    connection's server. `closes`: whether the child keeps connections (closes.py), for
    the modes that keep them.
    Pass-through has none: it streams, so it answers the client itself (Link.relay)."""
    if mode is Mode.PIPE:
        return PipeTransport(address, max_response=max_response, owned=owned, name=closes.name)
    if mode is Mode.PIPE_KEEPALIVE:
        return KeepAlivePipeTransport(
            address, max_response=max_response, owned=owned, closes=closes
        )
    if mode is Mode.HTTP:
        return HttpTransport(address, max_response=max_response, closes=closes)
    raise ValueError(f"{mode.value} has no envelope transport")

"""A pass-through upgrade (a WebSocket) after the child's 101, in the fast lane: the client's
connection and the child's joined, bytes relayed both ways as they come, as nginx relays
them. Nothing is decoded or re-framed: subprotocols, extensions (permessage-deflate), pings
and close frames cross as each side wrote them. Back-pressure: while one side cannot take
more, the other is not read.

What a byte relay cannot carry is said in WebSocket's own terms, between two frames (each
direction's frame boundaries are followed, `FrameEdges`): a child whose connection ends
without a close frame is a 1011 close to the client; a client that leaves without one is a
1001 close to the child (masked, as a client's frames are); a stop is 1001 both ways, the
replacement of the child (a reload, a restart, recycling) 1012.
"""

from __future__ import annotations

import asyncio
import os

_CLOSE = 0x8  # the close frame's opcode
INTERNAL_ERROR, GOING_AWAY = 1011, 1001


class FrameEdges:
    """Where the WebSocket frames in one direction's bytes end (RFC 6455 section 5.2)."""

    def __init__(self) -> None:
        self._head = b""  # the start of a frame header not yet whole
        self._left = 0  # payload bytes of the current frame still to come
        self.closed = False  # a close frame went by

    @property
    def at_edge(self) -> bool:
        return self._left == 0 and not self._head

    def feed(self, data: bytes) -> None:
        at, end = 0, len(data)
        while at < end:
            if self._left:
                step = min(self._left, end - at)
                self._left -= step
                at += step
                continue
            had = len(self._head)
            head = self._head + data[at : at + 14]  # a header is 2 to 14 bytes
            size = _header_size(head)
            if size is None:  # not whole yet: all of it is kept
                self._head = head
                at = end
                continue
            at += size - had
            self._head = b""
            self._left = _payload_size(head)
            if head[0] & 0x0F == _CLOSE:
                self.closed = True


def _header_size(head: bytes) -> int | None:
    if len(head) < 2:
        return None
    short = head[1] & 0x7F
    size = 2 + (2 if short == 126 else 8 if short == 127 else 0) + (4 if head[1] & 0x80 else 0)
    return size if len(head) >= size else None


def _payload_size(head: bytes) -> int:
    short = head[1] & 0x7F
    if short == 126:
        return int.from_bytes(head[2:4], "big")
    if short == 127:
        return int.from_bytes(head[2:10], "big")
    return short


def close_frame(code: int, *, masked: bool) -> bytes:
    """A close frame with `code` and no reason; masked as a client's frames must be."""
    payload = code.to_bytes(2, "big")
    if not masked:
        return bytes([0x80 | _CLOSE, len(payload)]) + payload
    mask = os.urandom(4)
    return (
        bytes([0x80 | _CLOSE, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


class _End(asyncio.Protocol):
    """One of the tunnel's two connections: what comes in goes out of the other."""

    def __init__(self, tunnel: Tunnel, transport: asyncio.Transport, *, child: bool) -> None:
        self._tunnel = tunnel
        self.transport = transport
        self.child = child
        self.edges = FrameEdges()  # of the bytes this end sends
        self.other: _End = self

    def data_received(self, data: bytes) -> None:
        self.edges.feed(data)
        self.other.send(data)

    def eof_received(self) -> bool:
        return False  # a half-close ends the tunnel: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._tunnel.lost(self)

    def pause_writing(self) -> None:
        if not self.other.transport.is_closing():
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.other.transport.is_closing():
            self.other.transport.resume_reading()

    def send(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def say_close(self, code: int, sender: _End) -> None:
        """A close frame to this end, in place of one `sender` did not send, when it fits
        between two of sender's frames."""
        if sender.edges.at_edge and not sender.edges.closed:
            self.send(close_frame(code, masked=self.child))

    def close(self) -> None:
        self.transport.close()  # what is buffered is written first


class Tunnel:
    """The client's and the child's connections joined, from the 101 on. `ended` is done
    once both are closed."""

    def __init__(self, client: asyncio.Transport, child: asyncio.Transport) -> None:
        self._client = _End(self, client, child=False)
        self._child = _End(self, child, child=True)
        self._client.other, self._child.other = self._child, self._client
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def start(self, from_client: bytes, from_child: bytes, *, client_done: bool = False) -> None:
        """Take both connections over; the bytes each side sent after the head go on.
        `client_done`: the client half-closed before the 101, so the tunnel ends as for
        any half-close of it, once those bytes went."""
        self._client.transport.set_protocol(self._client)
        self._child.transport.set_protocol(self._child)
        for transport in (self._client.transport, self._child.transport):
            if not transport.is_reading():
                transport.resume_reading()
        if from_child:
            self._child.data_received(from_child)
        if from_client:
            self._client.data_received(from_client)
        if client_done:
            self._client.close()  # connection_lost follows: the child is told, as in `lost`

    def lost(self, end: _End) -> None:
        """One side's connection ended: the other is told in WebSocket's terms and closed."""
        other = end.other
        if not other.transport.is_closing():
            other.say_close(INTERNAL_ERROR if end.child else GOING_AWAY, end)
            other.close()
        if not self.ended.done():
            self.ended.set_result(None)

    def stop(self, code: int = GOING_AWAY) -> None:
        """The proxy is stopping (1001), or the child is being replaced (1012): that close
        to both sides, then both closed; once."""
        if self.ended.done():
            return
        for end in (self._client, self._child):
            end.say_close(code, end.other)
            end.close()
        if not self.ended.done():  # (a close may report the loss at once)
            self.ended.set_result(None)

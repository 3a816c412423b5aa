"""A pass-through WebSocket's frames as the tunnel follows them (lane/tunnel.py)."""

from __future__ import annotations

import pytest

from local_lambdas.lane import tunnel


def _frame(opcode: int, payload: bytes, *, masked: bool) -> bytes:
    size = len(payload)
    length = (bytes([size]) if size < 126 else bytes([126]) + size.to_bytes(2, "big")
              if size < 65536 else bytes([127]) + size.to_bytes(8, "big"))  # fmt: skip
    mask = b"\x01\x02\x03\x04" if masked else b""
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if masked else payload
    return (
        bytes([0x80 | opcode])
        + bytes([length[0] | (0x80 if masked else 0)])
        + length[1:]
        + mask
        + body
    )


@pytest.mark.parametrize("masked", [False, True], ids=["child", "client"])
@pytest.mark.parametrize("sizes", [(0,), (5, 125), (126, 3), (65535,), (65536, 1)])
@pytest.mark.parametrize("piece", [1, 3, 7, 1000, 10**6])
def test_websocket_frame_edges_are_followed_across_any_split(
    masked: bool, sizes: tuple[int, ...], piece: int
) -> None:
    """tunnel.FrameEdges: between frames or not, after any split of the stream, and whether
    a close frame went by."""
    frames = [_frame(0x2, bytes(size), masked=masked) for size in sizes]
    stream = b"".join(frames)
    ends = {sum(len(f) for f in frames[: i + 1]) for i in range(len(frames))}
    edges = tunnel.FrameEdges()
    for at in range(0, len(stream), piece):
        chunk = stream[at : at + piece]
        edges.feed(chunk)
        assert edges.at_edge == (at + len(chunk) in ends)
    assert not edges.closed
    edges.feed(tunnel.close_frame(1001, masked=masked))
    assert edges.at_edge and edges.closed


@pytest.mark.parametrize("masked", [False, True])
def test_a_close_frame_says_its_code(masked: bool) -> None:
    frame = tunnel.close_frame(1011, masked=masked)
    assert frame[0] == 0x88 and (frame[1] & 0x80 == 0x80) == masked and frame[1] & 0x7F == 2
    payload = frame[-2:]
    if masked:
        payload = bytes(b ^ frame[2 + i] for i, b in enumerate(payload))
    assert int.from_bytes(payload, "big") == 1011

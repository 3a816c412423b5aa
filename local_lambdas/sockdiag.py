"""Which sockets listen, asked of the Linux kernel over netlink (sock_diag(7)), as `ss -l`
asks: the kernel sends the listening sockets alone, so the answer costs the same however many
connections the machine holds. /proc/net/tcp lists every socket, TIME_WAIT ones included:
after a load test (tens of thousands of them) reading it took tens of milliseconds of the
event loop at every readiness poll. Each function returns None where netlink or the kernel's
diag modules are not to be had (another platform, a sandbox): the caller reads /proc then.
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Iterator

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_LISTEN_STATE = 1 << 10  # TCP_LISTEN, also a listening Unix socket's state
_UDIAG_SHOW_NAME = 1
_UNIX_DIAG_NAME = 0
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_ATTRIBUTE = struct.Struct("=HH")  # rtattr: length, type


def every_tcp_listener() -> list[tuple[str, int, int]] | None:
    """Every listening TCP socket, IPv4 and IPv6: (address as /proc/net/tcp spells it, port,
    socket inode) each."""
    found = []
    for family in (socket.AF_INET, socket.AF_INET6):
        # inet_diag_req_v2: family, protocol, extensions, pad, states; a zero inet_diag_sockid.
        request = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, _LISTEN_STATE)
        answers = _dump(request + bytes(48))
        if answers is None and family == socket.AF_INET:
            return None
        for answer in answers or ():  # (no IPv6 in this kernel: no IPv6 listener)
            # inet_diag_msg: 4 bytes, then the sockid (source port big-endian at 4, source
            # address at 8), then expires, queues, uid and the inode at 68.
            if len(answer) >= 72:
                size = 4 if family == socket.AF_INET else 16
                port = int.from_bytes(answer[4:6], "big")
                found.append((_proc_spelling(answer[8 : 8 + size]), port, _u32(answer, 68)))
    return found


def every_unix_listener() -> list[tuple[bytes, int]] | None:
    """Every listening Unix socket that has a name: (path, inode) each."""
    # unix_diag_req: family, protocol, pad, states, inode, what to show, cookie.
    request = struct.pack("=BBHIII8x", socket.AF_UNIX, 0, 0, _LISTEN_STATE, 0, _UDIAG_SHOW_NAME)
    answers = _dump(request)
    if answers is None:
        return None
    found = []
    for answer in answers:
        # unix_diag_msg: family, type, state, pad, inode, cookie; then attributes.
        offset = 16
        while offset + 4 <= len(answer):
            length, kind = _ATTRIBUTE.unpack_from(answer, offset)
            if length < 4:
                break
            # A path's name ends at its NUL (bound with it, as the kernel keeps it).
            name = answer[offset + 4 : offset + length].split(b"\0", 1)[0]
            if kind == _UNIX_DIAG_NAME and name:
                found.append((name, _u32(answer, 4)))
            offset += (length + 3) & ~3
    return found


def _dump(request: bytes) -> list[bytes] | None:
    """Every answer to one SOCK_DIAG_BY_FAMILY dump; None when it cannot be asked."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as sock:
            sock.settimeout(1.0)  # the kernel answers at once; never hang the event loop
            header = _HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY,
                                  _NLM_F_REQUEST_DUMP, 1, 0)  # fmt: skip
            sock.sendall(header + request)
            return list(_answers(sock))
    except OSError:
        return None


def _answers(sock: socket.socket) -> Iterator[bytes]:
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
            if kind == _NLMSG_DONE:
                return
            if kind == _NLMSG_ERROR or length < _HEADER.size:
                raise OSError("netlink: the kernel refused the dump")
            yield data[offset + _HEADER.size : offset + length]
            offset += (length + 3) & ~3


def _u32(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("=I", data, offset)[0]
    return value


def _proc_spelling(address: bytes) -> str:
    """An address as /proc/net/tcp spells it: each 32-bit word in this machine's order, hex."""
    return "".join(
        f"{int.from_bytes(address[i : i + 4], sys.byteorder):08X}"
        for i in range(0, len(address), 4)
    )

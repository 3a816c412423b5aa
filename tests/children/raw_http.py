#!/usr/bin/env python3
"""A web server that answers in raw bytes, right or wrong, for pass-through's tests.

Listens on $PORT; the last path segment picks the answer (ANSWERS), written as it stands; an
answer of IN_PARTS is written in parts; `echo` reads the request's Content-Length body and
answers the head and body it received (it never sends 100 Continue, as many small servers do
not); `hangup` closes the connection at once, its body unread and unanswered; `refuse`
answers 413 at once and closes, its body unread, as a server refusing an upload; `stall` reads
nothing more and answers nothing; `sip` reads the body 64 KiB a tenth of a second and
answers its size. A POST to `/` is an `http` envelope request: its answer is an envelope
whose body is the last segment of the request's uri (`envelope`). Connections are kept
alive, several requests in turn, so that an answer that leaves bytes behind (`extra`,
`nocontent-body`) would show in the next request's answer if the proxy used the connection
again. `quiet` and `keeps-1s` answer how many requests their connection has carried,
`keeps-1s` saying `Keep-Alive: timeout=1`; a connection whose last answer was `quiet` closes
unanswered a request that comes after 1.6 s idle: a server closing it for idleness just as
the request came. `late` answers `ok` after 0.5 s. `events-slow` and `chunks-slow` are
chunked answers (an event stream, plain text) whose two chunks come 0.8 s apart. Standard
library only.
"""

import base64
import gzip
import json
import os
import socket
import threading
import time

ANSWERS = {
    "ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "dated": b"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    b"Content-Length: 2\r\n\r\nok",
    "lf-only": b"HTTP/1.1 200 OK\nContent-Length: 3\n\nabc",
    "abc": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    "xyz": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz",  # abc's head, another body
    "early-hints": b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    "extra": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "cookie-paths": b"HTTP/1.1 200 OK\r\n"
    b"Set-Cookie: refresh=1; Path=/auth/refresh; HttpOnly\r\n"  # a path of the child's
    b"Set-Cookie: all=2; path=/\r\n"  # every path
    b"Set-Cookie: under=3; Secure; Path=/raw/x\r\n"  # under the prefix already
    b"Set-Cookie: none=4\r\n"  # the request's own
    b"Content-Length: 2\r\n\r\nok",
    "trailer": b"HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n",
    "nocontent-body": b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nxyz",
    "short": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    # Header values beyond ASCII, as servers write them: UTF-8 (Go), Latin-1 (Node, Werkzeug).
    "utf8-header": b'HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename="caf\xc3\xa9"\r\n'
    b"Content-Length: 2\r\n\r\nok",
    "latin1-header": b'HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename="caf\xe9"\r\n'
    b"Content-Length: 2\r\n\r\nok",
    # Connection-specific fields among end-to-end ones (RFC 9110 7.6.1), a 407 among them.
    "hop-headers": b"HTTP/1.1 407 Proxy Authentication Required\r\n"
    b"Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n"
    b'Upgrade: h2c\r\nProxy-Authenticate: Basic realm="r"\r\nContent-Length: 2\r\n\r\nno',
    "garbage": b"hello there\r\n\r\n",
    # An HTTP/2-only server's first frame (SETTINGS, stream 0), as gRPC's and Node.js's
    # http2.createServer send it whatever came.
    "http2": b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64",
    "length-and-chunked": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "gzip-coding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nnot really gzip",
    "gzip-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    b"f\r\nnot really gzip\r\n0\r\n\r\n",
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "negative-length": b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\nabc",
    "no-colon": b"HTTP/1.1 200 OK\r\nBroken header\r\nContent-Length: 3\r\n\r\nabc",
    "two-digit-status": b"HTTP/1.1 20 OK\r\nContent-Length: 3\r\n\r\nabc",
    "status-below-100": b"HTTP/1.1 099 Odd\r\nContent-Length: 3\r\n\r\nabc",
    "half-head": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websock",
    "control-reason": b"HTTP/1.1 200 O\x01K\r\nContent-Length: 3\r\n\r\nabc",
    "huge-head": b"HTTP/1.1 200 OK\r\nX-Big: "
    + b"a" * 100_000
    + b"\r\nContent-Length: 3\r\n\r\nabc",
}
CLOSE_AFTER = {"short", "garbage", "half-head", "http2"}


def _slow_stream(kind: bytes) -> list[bytes | float]:
    """A chunked answer of `kind` whose two chunks come 0.8 s apart (a number: a pause)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % kind
    return [head, b"9\r\ndata: 1\n\n\r\n", 0.8, b"9\r\ndata: 2\n\n\r\n", 0.8, b"0\r\n\r\n"]


# Written in parts, a pause after each: the status line spans reads, split inside its reason
# and inside a UTF-8 character of it. `events-slow` and `chunks-slow`: see _slow_stream.
IN_PARTS: dict[str, list[bytes | float]] = {
    "split-reason": [
        b"HTTP/1.1 404 Caf\xc3",
        b"\xa9 Not ",
        b"Found\r\nContent-Length: 3\r\n\r\n",
        b"abc",
    ],
    "events-slow": _slow_stream(b"text/event-stream"),
    "chunks-slow": _slow_stream(b"text/plain"),
}


def body_of(conn: socket.socket, head: bytes, buffer: bytes) -> tuple[bytes, bytes] | None:
    """The request's Content-Length body, and what follows it; None when the client left."""
    length = 0
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value)
    while len(buffer) < length:
        data = conn.recv(65536)
        if not data:
            return None
        buffer += data
    return buffer[:length], buffer[length:]


def echo(conn: socket.socket, head: bytes, body: bytes) -> None:
    """Answer the head and body received."""
    said = head + b"\r\n\r\n" + body
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(said), said))


def envelope(conn: socket.socket, request_head: bytes, body: bytes) -> None:
    """Answer an `http` envelope request (POST /) with the last segment of its uri as the
    body, each answer's head the same for words of one length; `two`, in two writes; `rest`,
    with JSON of its own (a REST API's), not a response object; `codings`, with the request's
    Accept-Encoding as the body; `gzipped`, gzipped whatever that said."""
    word = json.loads(body)["uri"].rsplit("/", 1)[-1].encode()
    if word == b"codings":
        lines = request_head.lower().split(b"\r\n")
        word = b",".join(line.split(b":", 1)[1].strip() for line in lines
                         if line.startswith(b"accept-encoding:"))  # fmt: skip
    reply = json.dumps({"body": base64.b64encode(word).decode()}).encode()
    if word == b"rest":
        reply = b'{"message": "hello", "items": [1, 2]}'
    coded = b""
    if word == b"gzipped":
        reply, coded = gzip.compress(reply), b"Content-Encoding: gzip\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n" % (
        coded,
        len(reply),
    )
    if word == b"two":
        conn.sendall(head)
        conn.sendall(reply)
    else:
        conn.sendall(head + reply)


QUIET_IDLE = 1.6  # after a `quiet` answer, how long the connection may wait idle


def serve(conn: socket.socket) -> None:
    buffer = b""
    carried = 0  # requests this connection has carried
    closes_after = None  # idle seconds after which a request is not answered
    with conn:
        while True:
            idle = time.monotonic()
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            if closes_after is not None and time.monotonic() - idle >= closes_after:
                return  # closing for idleness as the request comes: it goes unanswered
            carried += 1
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            target = head.split(b"\r\n", 1)[0].split(b" ")[1]
            name = target.partition(b"?")[0].rsplit(b"/", 1)[-1].decode()
            if name == "hangup":
                return  # closes unanswered, the body unread (the kernel resets the connection)
            if name == "refuse":  # answers at once, the body unread, and closes: a 413
                conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n"
                             b"Connection: close\r\n\r\ntoo big\n")  # fmt: skip
                return
            if name == "stall":
                time.sleep(600)  # reads nothing more, answers nothing (the process is stopped)
                return
            if name == "sip":  # reads the body slowly but steadily, then answers its size
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                got = len(buffer)
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while got < length:
                    time.sleep(0.1)
                    got += len(conn.recv(65536))
                said = b"%d" % got
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(said), said))
                buffer = b""
                continue
            if name == "late":
                time.sleep(0.5)  # then `ok`
            if name in ("quiet", "keeps-1s"):
                read = body_of(conn, head, buffer)
                if read is None:
                    return
                buffer = read[1]
                said = b"\r\nKeep-Alive: timeout=1" if name == "keeps-1s" else b""
                conn.sendall(b"HTTP/1.1 200 OK%s\r\nContent-Length: %d\r\n\r\n%d"
                             % (said, len(str(carried)), carried))  # fmt: skip
                closes_after = QUIET_IDLE if name == "quiet" else None
                continue
            if name == "echo" or target == b"/":  # (`http` envelope requests go to /)
                read = body_of(conn, head, buffer)
                if read is None:
                    return
                body, buffer = read
                if name == "echo":
                    echo(conn, head, body)
                else:
                    envelope(conn, head, body)
                continue
            if name in IN_PARTS:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for part in IN_PARTS[name]:
                    if isinstance(part, float):
                        time.sleep(part)
                        continue
                    conn.sendall(part)
                    time.sleep(0.05)
                continue
            conn.sendall(ANSWERS.get(name, ANSWERS["ok"]))
            if name in CLOSE_AFTER:
                return


def main() -> None:
    server = socket.create_server(("127.0.0.1", int(os.environ["PORT"])))
    print("raw_http up", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A child as strict as a naive one: any connection that carries no request kills it (exit 3).
Serves one-shot pipe requests on $PIPE_ADDRESS, or `http` envelope requests on $HTTP_ADDRESS."""

import base64
import json
import os
import socket
import sys


def reply_for(raw: bytes) -> bytes:
    if not raw:
        print("an empty connection: exiting, as a naive child would", file=sys.stderr)
        sys.exit(3)
    request = json.loads(raw)
    return json.dumps({"body": base64.b64encode(request["uri"].encode()).decode()}).encode()


def read_all(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


if "PIPE_ADDRESS" in os.environ:
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.environ["PIPE_ADDRESS"])
else:
    host, port = os.environ["HTTP_ADDRESS"].rsplit(":", 1)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))
server.listen(16)
while True:
    conn, _ = server.accept()
    with conn:
        if "PIPE_ADDRESS" in os.environ:
            conn.sendall(reply_for(read_all(conn)))
            continue
        head = b""
        while b"\r\n\r\n" not in head and (chunk := conn.recv(65536)):
            head += chunk
        header, _, body = head.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in header.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length:
            body += conn.recv(65536)
        answer = reply_for(body)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(answer), answer)
        )

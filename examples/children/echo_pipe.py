#!/usr/bin/env python3
"""A pipe-mode child using only the standard library: echoes what it was sent, as JSON.

The protocol, one-shot: listen on the Unix socket at $PIPE_ADDRESS; for each connection read
one JSON request object, write one JSON response object, close the connection.
"""

import base64
import json
import os
import socket


def handle(request: dict) -> dict:
    body = base64.b64decode(request.get("body") or "")
    answer = {
        "method": request["method"],
        "uri": request["uri"],
        "headers": request["headers"],
        "body_bytes": len(body),
        "body_text": body.decode("utf-8", "replace"),
        "pid": os.getpid(),
        "child": os.environ["LOCAL_LAMBDAS_ID"],
    }
    return {
        "status": 200,
        "headers": {"Content-Type": "application/json"},
        "body": base64.b64encode(json.dumps(answer).encode()).decode(),
    }


def read_request(conn: socket.socket) -> dict:
    # Read until the JSON parses: the proxy also closes its writing side after the request,
    # so reading to end-of-file works just as well.
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return json.loads(data)
        data += chunk
        try:
            return json.loads(data)
        except ValueError:
            continue


def main() -> None:
    path = os.environ["PIPE_ADDRESS"]
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    print(f"echo_pipe listening on {path}")
    while True:
        conn, _ = server.accept()
        with conn:
            try:
                response = handle(read_request(conn))
            except ValueError as exc:
                response = {"status": 400, "body": base64.b64encode(str(exc).encode()).decode()}
            conn.sendall(json.dumps(response).encode())


if __name__ == "__main__":
    main()

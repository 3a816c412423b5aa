#!/usr/bin/env python3
"""A pipe-mode child using only the standard library: echoes what it was sent, as JSON.

The protocol, one-shot: listen on $PIPE_ADDRESS (a Unix socket; on Windows a named pipe,
\\\\.\\pipe\\NAME); for each connection read one JSON request object, write one JSON response
object, close the connection.
"""

import base64
import json
import os
import socket
import sys


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
    # (A bytearray, and a parse only where the object may end: a large body in 64 KiB reads
    # would otherwise be copied, or parsed, once a read.)
    data = bytearray()
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return json.loads(data)
        data += chunk
        if not chunk.rstrip().endswith(b"}"):
            continue
        try:
            return json.loads(data)
        except ValueError:
            continue


def serve_windows(address: str) -> None:
    """The same over a Windows named pipe (needs pywin32, which local-lambdas installs on
    Windows). A pipe cannot be half-closed, so read until the JSON parses."""
    import pywintypes
    import win32file
    import win32pipe

    print(f"echo_pipe listening on {address}", flush=True)
    while True:
        pipe = win32pipe.CreateNamedPipe(
            address,
            win32pipe.PIPE_ACCESS_DUPLEX,
            win32pipe.PIPE_TYPE_BYTE | win32pipe.PIPE_READMODE_BYTE | win32pipe.PIPE_WAIT,
            win32pipe.PIPE_UNLIMITED_INSTANCES,
            65536,
            65536,
            0,
            None,
        )
        try:
            win32pipe.ConnectNamedPipe(pipe, None)
        except pywintypes.error as exc:
            if exc.winerror != 535:  # ERROR_PIPE_CONNECTED: the client was first, fine
                raise
        data = bytearray()
        while True:
            chunk = win32file.ReadFile(pipe, 65536)[1]
            data += chunk
            if not chunk.rstrip().endswith(b"}"):
                continue
            try:
                request = json.loads(data)
                break
            except ValueError:
                continue
        win32file.WriteFile(pipe, json.dumps(handle(request)).encode())
        win32file.FlushFileBuffers(pipe)  # let the proxy read it all before we disconnect
        win32pipe.DisconnectNamedPipe(pipe)
        win32file.CloseHandle(pipe)


def main() -> None:
    path = os.environ["PIPE_ADDRESS"]
    if sys.platform == "win32":
        serve_windows(path)
        return
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

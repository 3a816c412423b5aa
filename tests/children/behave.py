#!/usr/bin/env python3
"""A test child written as the earlier tool's examples were, whose behaviour the path picks.

Serves one-shot pipe requests on $PIPE_ADDRESS, or `http` envelope requests on $HTTP_ADDRESS.
With --read-to-eof it reads each pipe request until end-of-file; without, it stops reading as
soon as the JSON parses (never waiting for EOF), as the earlier tool's examples did. With
--lines it serves the keep-alive framing whatever the mode, and holds each connection open
after its end of input until the child ends (one written for that framing alone, not
closing on EOF). With --serial it listens with a backlog of one and serves one connection at
a time, as a single-threaded server with a small listen queue does. When $PIPE_FRAMING is
"lines" (pipe-keepalive mode) it serves many requests per connection, one JSON line each,
and echoes which connection (`conn`) and request on it (`seq`) it was.

The last path segment picks the answer: echo (default), garbage, garbage2 (garbage from
instance 2, the echo from the others), crash, crashonce, hang, badbase64, status999,
status100, crlf, cookies, binary, cached, cachederror, close, slow (1 s, then echo), late
(answers after 1.5 s), pid, empty, log (prints a line with the request id, then echo), twice
(keep-alive: the echo's line sent twice), blank (keep-alive: the echo's line, then a blank
line, as print(json + "\n") writes it, and another as the next request comes), pretty
(indented JSON), trailing (a whole object, then more on its line), big (a 16 MiB body),
unended (a whole answer with no newline, its connection then held open), flood (an answer
that never ends, written until the proxy goes), gate (the echo once the file ?until= names
exists).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import threading
import time

# For the type checker only: importing typing and collections.abc was a sixth of this
# child's start (10 of 63 ms of CPU), and the suite starts it some 400 times.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

READ_TO_EOF = "--read-to-eof" in sys.argv
LINES = "--lines" in sys.argv  # the keep-alive framing whatever PIPE_FRAMING says
SERIAL = "--serial" in sys.argv  # listen(1), one connection at a time
COUNTER = iter(range(1, 1 << 30))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def answer(request: dict[str, Any]) -> bytes | None:
    """The raw bytes to send back; None closes without answering."""
    path = request["uri"].split("?")[0]
    action = path.rstrip("/").rsplit("/", 1)[-1]
    body = base64.b64decode(request.get("body") or "")
    if action == "garbage" or (
        action == "garbage2" and os.environ["LOCAL_LAMBDAS_INSTANCE"] == "2"
    ):
        return b"this is not json"
    if action == "crash":
        os._exit(17)
    if action == "crashonce":
        # Dies on the first such request this proxy run sends, answers after its restart.
        marker = f"/tmp/behave-crashonce-{os.environ['LOCAL_LAMBDAS_ID']}-{os.getppid()}"
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(17)
        os.unlink(marker)
    if action == "hang":
        time.sleep(3600)
    if action == "log":
        print(f"handling request {request.get('request_id')}", flush=True)
    if action == "slow":
        print("slow request received", flush=True)
        time.sleep(1)
    if action == "gate":  # holds its slot until the file ?until= names exists (30 s at most)
        until = request["uri"].partition("?until=")[2]
        deadline = time.monotonic() + 30
        while not os.path.exists(until) and time.monotonic() < deadline:
            time.sleep(0.01)
    if action == "late":
        time.sleep(1.5)
        return json.dumps({"body": b64(b"late answer")}).encode()
    if action == "close":
        return None
    if action == "badbase64":
        return json.dumps({"status": 200, "body": "!!not base64!!"}).encode()
    if action == "status999":
        return json.dumps({"status": 999}).encode()
    if action == "status100":
        return json.dumps({"status": 100}).encode()
    if action == "crlf":
        return json.dumps({"headers": {"X-Evil": "a\r\nInjected: yes"}}).encode()
    if action == "cookies":
        headers = [["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"], ["Content-Type", "text/plain"]]
        return json.dumps({"status": 201, "headers": headers, "body": b64(b"two cookies")}).encode()
    if action == "binary":
        return json.dumps({"body": b64(bytes(range(256)) * 4)}).encode()
    if action == "pid":
        return json.dumps({"body": b64(str(os.getpid()).encode())}).encode()
    if action in ("cached", "cachederror"):
        # A counter, so that a test can tell a cached answer from a fresh one.
        status = 500 if action == "cachederror" else 200
        count = str(next(COUNTER)).encode()
        headers = [["Cache-Control", "max-age=60"], ["ETag", f'"v{count.decode()}"']]
        return json.dumps({"status": status, "headers": headers, "body": b64(count)}).encode()
    if action == "empty":
        return json.dumps({}).encode()
    if action == "flood":
        return FLOOD
    if action == "big":
        return json.dumps({"body": b64(b"x" * (16 << 20))}).encode()
    if action == "unended":
        return json.dumps({"body": b64(b"unended")}).encode()
    if action == "trailing":  # a whole object, then more on its line
        return b'{"status": 200} and more'
    if action == "pretty":  # one answer over several lines: fine for one-shot, not for lines
        return json.dumps({"status": 200, "body": b64(b"pretty")}, indent=2).encode()
    echoed = {
        "method": request["method"],
        "uri": request["uri"],
        "headers": request["headers"],
        "body": b64(body),
        "request_id": request.get("request_id"),
        "token": request.get("token"),
        "pid": os.getpid(),
        "conn": request.get("_conn"),
        "seq": request.get("_seq"),
    }
    return json.dumps(
        {
            "status": 200,
            "headers": {"Content-Type": "application/json"},
            "body": b64(json.dumps(echoed).encode()),
        }
    ).encode()


FLOOD = b"(flood)"  # answer's answer for /flood: told apart by identity


def flood(write: Callable[[bytes], object]) -> None:
    """An answer that never ends: the start of its JSON, then "x"s until the reader goes."""
    chunk = b"x" * (1 << 20)
    try:
        write(b'{"status": 200, "body": "')
        while True:
            write(chunk)
    except OSError:
        pass


def read_request(conn: socket.socket) -> dict[str, Any]:
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            request: dict[str, Any] = json.loads(data)
            return request
        data += chunk
        if not READ_TO_EOF:
            try:
                request = json.loads(data)
                return request
            except ValueError:
                continue


CONNECTIONS = iter(range(1, 1 << 30))


def serve_connection(conn: socket.socket) -> None:
    with conn:
        if os.environ.get("PIPE_FRAMING") == "lines" or LINES:
            serve_lines(conn)
            return
        request = read_request(conn)
        reply = answer(request)
        if reply is FLOOD:
            flood(conn.sendall)
        elif reply is not None:
            conn.sendall(reply)
            if request["uri"].split("?")[0].endswith("/unended"):
                threading.Event().wait(60)  # held open, with no newline (past any <timeout>)


def serve_lines(conn: socket.socket) -> None:
    number = next(CONNECTIONS)
    blank_before_next = False  # after a `blank` answer: one more, as the next request came
    with conn.makefile("rb") as lines:
        for seq, line in enumerate(lines, 1):
            if blank_before_next:  # (the proxy holds a request in flight as it comes)
                conn.sendall(b"\r\n")
                blank_before_next = False
            request = json.loads(line)
            request["_conn"], request["_seq"] = number, seq
            reply = answer(request)
            if reply is None:
                return
            if reply is FLOOD:
                flood(conn.sendall)
                return
            target = request["uri"].split("?")[0]
            if target.endswith("/unended"):
                conn.sendall(reply)  # no newline
                continue
            twice = target.endswith("/twice")  # one line too many
            conn.sendall((reply + b"\n") * (2 if twice else 1))
            if target.endswith("/blank"):  # blank lines, after the answer and before the next
                conn.sendall(b"\n")  # (the answer above went on its own)
                blank_before_next = True
    if LINES:
        threading.Event().wait()  # the connection held open after its end of input, for good


def serve_pipe(path: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1 if SERIAL else 128)
    while True:
        conn, _ = server.accept()
        if SERIAL:
            serve_connection(conn)
        else:
            threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()


def serve_http(address: str) -> None:
    # Imported here: http.server costs pipe children (most of the suite's) more than the rest.
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reply = answer(request)
            if reply is None or reply is FLOOD:
                self.close_connection = True
            if reply is FLOOD:
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 40))
                self.end_headers()
                flood(self.wfile.write)
            if reply is None or reply is FLOOD:
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    host, port = address.rsplit(":", 1)
    # A listen queue of 128, not socketserver's 5: past it, the kernel drops a connection and
    # the proxy's connect is tried again a second later (TCP's first retransmission).
    ThreadingHTTPServer.request_queue_size = 128
    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()


def main() -> None:
    print(f"behave {os.environ['LOCAL_LAMBDAS_ID']} up, pid {os.getpid()}", flush=True)
    if "PIPE_ADDRESS" in os.environ:
        serve_pipe(os.environ["PIPE_ADDRESS"])
    else:
        serve_http(os.environ["HTTP_ADDRESS"])


if __name__ == "__main__":
    main()

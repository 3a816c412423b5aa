#!/usr/bin/env python3
"""An ordinary web server, standard library only, that runs behind local-lambdas unchanged
(communication_mode passthrough): it knows nothing but $PORT.

    GET /            a greeting, with the headers the proxy added
    GET /events      Server-Sent Events: a tick a second, five of them, each flushed at once
    POST /echo       the request body back
    HEAD             a GET's head, as `curl -I` asks

No WebSocket route: the standard library has no WebSocket server. The pass-through mode
relays WebSockets all the same; see the README for one with aiohttp.
"""

import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._body()  # a GET may carry one: unread, it would begin the next request's bytes
        if self.path.startswith("/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command == "HEAD":
                self.close_connection = True
                return
            for tick in range(5):
                self.wfile.write(f"data: {json.dumps({'tick': tick})}\n\n".encode())
                self.wfile.flush()
                time.sleep(1)
            self.close_connection = True
            return
        seen = {k: v for k, v in self.headers.items() if k.lower().startswith("x-")}
        self._send(200, {"hello": "from a plain web server", "path": self.path, "added": seen})

    do_HEAD = do_GET  # _send and the stream leave the body out

    def do_POST(self) -> None:
        self._send(200, {"echo": self._body().decode("utf-8", "replace")})

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, data: dict) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    # A listen queue of 128: past socketserver's 5, the kernel drops a connection and the
    # client's TCP tries again a second later.
    request_queue_size = 128


if __name__ == "__main__":
    Server(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Handler).serve_forever()

#!/usr/bin/env python3
"""A pass-through child in Python, standard library only: an ordinary web server on $PORT.

It speaks plain HTTP; local-lambdas relays requests to it as they came. Its answer describes
the request it saw; /teapot answers 418.
"""

import base64
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "/teapot" in self.path:
            status, described = 418, {"error": "I am a teapot", "lang": "python"}
        else:
            status, described = (
                200,
                {
                    "lang": "python",
                    "method": self.command,
                    "uri": self.path,  # path and query, after the proxy's <strip_prefix>
                    "headers": [[k, v] for k, v in self.headers.items()],  # repeats kept
                    "body": base64.b64encode(body).decode(),
                },
            )
        payload = json.dumps(described).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    # A listen queue of 128: past socketserver's 5, the kernel drops a connection and the
    # client's TCP tries again a second later.
    request_queue_size = 128


if __name__ == "__main__":
    Server(("127.0.0.1", int(os.environ["PORT"])), Echo).serve_forever()

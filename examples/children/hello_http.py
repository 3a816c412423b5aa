#!/usr/bin/env python3
"""An `http`-mode child using only the standard library.

The protocol: listen on $HTTP_ADDRESS (host:port; $PORT holds the port alone); the proxy
POSTs one JSON request object to / and reads one JSON response object from the reply body.
"""

import base64
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        query = parse_qs(urlsplit(request["uri"]).query)
        name = query.get("name", ["world"])[0]
        text = f"Hello, {name}! ({request['method']} {request['uri']})\n"
        response = {
            "status": 200,
            "headers": [["Content-Type", "text/plain; charset=utf-8"]],
            "body": base64.b64encode(text.encode()).decode(),
        }
        payload = json.dumps(response).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the proxy logs requests; keep the console for what matters


class Server(ThreadingHTTPServer):
    # A listen queue of 128: past socketserver's 5, the kernel drops a connection and the
    # client's TCP tries again a second later.
    request_queue_size = 128


def main() -> None:
    host, port = os.environ["HTTP_ADDRESS"].rsplit(":", 1)
    server = Server((host, int(port)), Handler)
    print(f"hello_http listening on {host}:{port}")
    server.serve_forever()


if __name__ == "__main__":
    main()

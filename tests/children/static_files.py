#!/usr/bin/env python3
"""A plain static file server (Python's http.server) on $PORT, serving the directory given as
its argument: it resolves `..` in paths itself, as every file server does, and reads a `#` as
part of the path, as Go's net/http and hypercorn do (no fragment comes in a request)."""

import functools
import http.server
import os
import sys

http.server.ThreadingHTTPServer.request_queue_size = 128  # (see behave.py)


class Handler(http.server.SimpleHTTPRequestHandler):
    def translate_path(self, path: str) -> str:
        return super().translate_path(path.replace("#", "%23"))  # (it would drop what follows)


handler = functools.partial(Handler, directory=sys.argv[1])
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), handler)
print(f"serving {sys.argv[1]} on port {os.environ['PORT']}", flush=True)
server.serve_forever()

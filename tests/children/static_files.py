#!/usr/bin/env python3
"""A plain static file server (Python's http.server) on $PORT, serving the directory given as
its argument: it resolves `..` in paths itself, as every file server does."""

import functools
import http.server
import os
import sys

http.server.ThreadingHTTPServer.request_queue_size = 128  # (see behave.py)
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), handler)
print(f"serving {sys.argv[1]} on port {os.environ['PORT']}", flush=True)
server.serve_forever()

#!/usr/bin/env python3
"""A child that stops when its standard input ends, as esbuild's --serve, Tailwind's --watch
and a program held up by Console.ReadLine() do: it serves pipe requests (local_lambdas.child,
in a thread) while its main thread reads its input, and exits 0 once that ends."""

import sys
import threading

from local_lambdas.child import Request, Response, serve


def handle(request: Request) -> Response:
    return Response(200, body=b"still here")


threading.Thread(target=serve, args=(handle,), daemon=True).start()
sys.stdin.read()
print("stopped: my input ended", flush=True)

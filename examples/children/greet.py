#!/usr/bin/env python3
"""A Python child using local_lambdas.child: works in every communication mode."""

import json
import os
import sys
from pathlib import Path

try:
    from local_lambdas.child import Request, Response, serve
except ImportError:
    # This Python is not the one local-lambdas is installed in (pipx, a virtual environment
    # that is not active, Windows' python): the helper is one standard-library file, taken
    # here from the checkout this example is part of.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from local_lambdas.child import Request, Response, serve


def handle(request: Request) -> Response:
    name = request.query.get("name", ["world"])[0]
    body = {
        "greeting": f"Hello, {name}!",
        "from": "python",
        "pid": os.getpid(),
        "method": request.method,
        "uri": request.uri,
    }
    return Response(200, {"Content-Type": "application/json"}, json.dumps(body))


if __name__ == "__main__":
    serve(handle)

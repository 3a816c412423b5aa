#!/usr/bin/env python3
"""A Python child using local_lambdas.child: works in every communication mode."""

import json
import os

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

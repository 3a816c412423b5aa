#!/usr/bin/env python3
"""A child built on local_lambdas.child: echoes the request; /boom raises in the handler."""

import base64
import os

from local_lambdas.child import Request, Response, serve


def handle(request: Request) -> Response:
    if request.path.endswith("/boom"):
        raise RuntimeError("boom")
    echoed = {
        "method": request.method,
        "uri": request.uri,
        "path": request.path,
        "query": request.query,
        "headers": request.headers,
        "x_tag": request.header("x-tag"),
        "body": base64.b64encode(request.body).decode(),
        "request_id": request.request_id,
        "pid": os.getpid(),
    }
    import json

    return Response(
        201,
        [("Content-Type", "application/json"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
        json.dumps(echoed),
    )


serve(handle)

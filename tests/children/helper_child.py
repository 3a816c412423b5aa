#!/usr/bin/env python3
"""A child built on local_lambdas.child: echoes the request; /boom raises in the handler."""

import base64
import os

from local_lambdas.child import Request, Response, serve

# What handlers get wrong: each answered 500, the child saying what it was.
WRONG: dict[str, object] = {
    "/h/none": None,
    "/h/str": "a string",
    "/h/status": Response("200", {}, "x"),  # type: ignore[arg-type]
    "/h/body": Response(200, {}, 5),  # type: ignore[arg-type]
    "/h/lambda": {"statusCode": 404, "body": "x"},
}


def handle(request: Request) -> Response:
    if request.path.endswith("/boom"):
        raise RuntimeError("boom")
    if request.path in WRONG:
        return WRONG[request.path]  # type: ignore[return-value]
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

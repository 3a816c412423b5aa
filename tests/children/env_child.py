#!/usr/bin/env python3
"""Answers with what it was started with: its arguments, and the environment variables named
in the query (?names=A,B)."""

import json
import os
import sys

from local_lambdas.child import Request, Response, serve


def handle(request: Request) -> Response:
    names = request.query.get("names", [""])[0].split(",")
    seen = {"argv": sys.argv[1:], "env": {n: os.environ.get(n) for n in names if n}}
    return Response(200, {"Content-Type": "application/json"}, json.dumps(seen))


serve(handle)

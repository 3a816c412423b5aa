#!/usr/bin/env python3
"""Answers with what it was started with: its arguments, and the environment variables named
in the query (?names=A,B); with ?call=/PATH, also what the proxy at $LOCAL_LAMBDAS_URL
answered to a GET of PATH (a child calling another's route)."""

import json
import os
import sys
import urllib.request

from local_lambdas.child import Request, Response, serve


def handle(request: Request) -> Response:
    names = request.query.get("names", [""])[0].split(",")
    seen = {"argv": sys.argv[1:], "env": {n: os.environ.get(n) for n in names if n}}
    if "call" in request.query:
        url = os.environ["LOCAL_LAMBDAS_URL"] + request.query["call"][0]
        with urllib.request.urlopen(url, timeout=10) as reply:
            seen["called"] = [reply.status, json.loads(reply.read())]
    return Response(200, {"Content-Type": "application/json"}, json.dumps(seen))


serve(handle)

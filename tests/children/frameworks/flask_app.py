"""A Flask application on its development server (werkzeug), started as its docs say:
app.run(port=...), here on $PORT. Routes the framework tests use: /echo, /redirect,
/login (a redirect under X-Forwarded-Prefix, written the framework's way), /stream (three
events, flushed one by one), /forever (events until the client leaves)."""

import json
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, redirect, request, stream_with_context, url_for
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response as BaseResponse

app = Flask(__name__)
# As Flask's docs have an app behind a proxy do: X-Forwarded-Prefix becomes its root, so
# url_for writes paths under the prefix.
app.wsgi_app = ProxyFix(app.wsgi_app, x_prefix=1)  # type: ignore[method-assign]


@app.route("/echo", methods=["GET", "POST", "PUT"])
def echo() -> Response:
    return Response(
        json.dumps(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string.decode(),
                "body": request.get_data(as_text=True),
                "prefix": request.headers.get("X-Forwarded-Prefix"),
                "host": request.host,
            }
        ),
        content_type="application/json",
    )


@app.route("/redirect")
def to_echo() -> BaseResponse:
    return redirect("/echo?from=redirect")


@app.route("/login")
def login() -> BaseResponse:
    query: dict[str, Any] = {"from": "login"}  # a keyword Python reserves
    return redirect(url_for("echo", **query))


@app.route("/stream")
def stream() -> Response:
    def events() -> Iterator[str]:
        for i in range(3):
            yield f"data: {i}\n\n"
            time.sleep(0.2)

    return Response(stream_with_context(events()), mimetype="text/event-stream")


@app.route("/forever")
def forever() -> Response:
    def events() -> Iterator[str]:
        while True:
            yield "data: tick\n\n"
            time.sleep(0.05)

    return Response(stream_with_context(events()), mimetype="text/event-stream")


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]), threaded=True)

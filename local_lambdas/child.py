"""Write a local-lambdas child in Python without touching the protocol. Standard library only.

    from local_lambdas.child import Request, Response, serve

    def handle(request: Request) -> Response:
        return Response(200, {"Content-Type": "text/plain"}, f"hello {request.path}\\n")

    serve(handle)

`handle` may be an `async def` function too.

`serve` listens where local-lambdas says ($PIPE_ADDRESS or $HTTP_ADDRESS) and speaks whichever
protocol the manifest chose: one-shot pipe, keep-alive pipe, or the `http` envelope. Each
connection is served on a thread of its own, so a slow request does not hold up the others.
An exception in the handler, or what it returns that is not a Response (None, a dict, a
body that is neither bytes nor str), is printed to stderr and answered with a 500. A request
without the run's token ($LOCAL_LAMBDAS_TOKEN, which local-lambdas sends in every request
object) is answered with a 403 and never reaches the handler: another local program that
finds the child's socket or port cannot use it.

This module imports nothing outside the standard library (not aiohttp), so it loads fast, and
a child in another environment can use a copy of this one file.
"""

from __future__ import annotations

import base64
import json
import os
import socketserver
import sys
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Request", "Response", "serve"]


@dataclass(frozen=True)
class Request:
    method: str
    uri: str  # path and query string, as the client sent them
    headers: list[tuple[str, str]]  # in arrival order, repeats kept
    body: bytes
    request_id: str = ""
    client: str | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.uri).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.uri).query)

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (any case), or `default`."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), default)

    def json(self) -> object:
        return json.loads(self.body)


@dataclass(frozen=True)
class Response:
    status: int = 200
    headers: dict[str, str] | list[tuple[str, str]] = field(default_factory=dict)
    body: bytes | str = b""  # str is sent as UTF-8


# A function, or an `async def` one: each request then runs it to completion on its
# connection's thread (asyncio.run), so it may await what it calls.
Handler = Callable[[Request], "Response | Awaitable[Response]"]


def serve(handler: Handler) -> None:
    """Serve `handler` where local-lambdas says, until the process is stopped."""
    if "PIPE_ADDRESS" in os.environ and sys.platform == "win32":
        _serve_windows_pipe(os.environ["PIPE_ADDRESS"], handler)
    elif "PIPE_ADDRESS" in os.environ:
        _serve_pipe(os.environ["PIPE_ADDRESS"], handler)
    elif "HTTP_ADDRESS" in os.environ:
        host, port = os.environ["HTTP_ADDRESS"].rsplit(":", 1)
        _serve_http(host, int(port), handler)
    else:
        sys.exit("neither PIPE_ADDRESS nor HTTP_ADDRESS is set: run this under local-lambdas")


def _answer(handler: Handler, raw: bytes | dict[str, Any]) -> bytes:
    """One request object (its JSON, or what that parsed to) in, one response object out
    (compact JSON, no newline)."""
    try:
        data = json.loads(raw) if isinstance(raw, bytes) else raw
        token = os.environ.get("LOCAL_LAMBDAS_TOKEN")
        if token and data.get("token") != token:
            return _encoded(403, [("Content-Type", "text/plain")], b"not from local-lambdas\n")
        request = Request(
            method=data["method"],
            uri=data["uri"],
            headers=[(k, v) for k, v in data.get("headers", [])],
            body=base64.b64decode(data.get("body") or ""),
            request_id=data.get("request_id") or "",
            client=data.get("client"),
        )
        response = handler(request)
        if isinstance(response, Coroutine):
            import asyncio  # (only for an async handler: a child of plain ones loads faster)

            response = asyncio.run(response)
        return _encoded(*_checked(response))
    except Exception:  # the child must go on serving; the traceback goes to its stderr
        traceback.print_exc()
        return _encoded(500, [("Content-Type", "text/plain")], b"handler failed\n")


def _checked(response: object) -> tuple[int, list[tuple[str, str]], bytes]:
    """What the handler returned as status, header pairs and body; TypeError saying what is
    wrong with it, so that the 500 it becomes is explained in the child's output."""
    if not isinstance(response, Response):
        raise TypeError(f"the handler returned {response!r:.80}, not a Response")
    status, headers, body = response.status, response.headers, response.body
    if not isinstance(status, int) or isinstance(status, bool):
        raise TypeError(f"Response status {status!r:.80} is not an int")
    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"Response body {body!r:.80} is not bytes or str")
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    return status, pairs, bytes(body)


def _encoded(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    return json.dumps(
        {"status": status, "headers": headers, "body": base64.b64encode(body).decode("ascii")},
        separators=(",", ":"),
    ).encode()


def _serve_pipe(path: str, handler: Handler) -> None:
    class Connection(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            # A request that ends in a newline is the keep-alive framing: answer with a line
            # and wait for the next. One that ends at end-of-file is one-shot: answer, close.
            while True:
                line = self.rfile.readline()
                if not line.strip():
                    return
                answer = _answer(handler, line)
                if not line.endswith(b"\n"):
                    self.wfile.write(answer)
                    return
                self.wfile.write(answer + b"\n")

    class Server(socketserver.ThreadingUnixStreamServer):
        daemon_threads = True
        request_queue_size = 128

    if os.path.exists(path):
        os.unlink(path)
    with Server(path, Connection) as server:
        server.serve_forever()


def _serve_windows_pipe(address: str, handler: Handler) -> None:
    """Windows: a named-pipe server (pywin32), one pipe instance per client, each on a thread.

    A Windows pipe cannot be half-closed, so the framing comes from $PIPE_FRAMING: one-shot
    requests are read until the JSON parses; keep-alive ones line by line.
    """
    import threading

    import pywintypes
    import win32file
    import win32pipe

    lines = os.environ.get("PIPE_FRAMING") == "lines"

    def serve_client(pipe: object) -> None:
        # A bytearray searched from each read's start, parsed only at a read that may end the
        # object: a large request costs its size, not its size once a read.
        buffer = bytearray()
        try:
            while True:
                try:
                    _, chunk = win32file.ReadFile(pipe, 65536)
                except pywintypes.error:  # ERROR_BROKEN_PIPE: the proxy closed its end
                    return
                start = len(buffer)
                buffer += chunk
                if lines:
                    end = buffer.find(b"\n", start)
                    while end != -1:
                        line = bytes(buffer[:end])
                        del buffer[: end + 1]
                        win32file.WriteFile(pipe, _answer(handler, line) + b"\n")
                        end = buffer.find(b"\n")
                    continue
                if not chunk.rstrip().endswith(b"}"):
                    continue
                try:
                    request = json.loads(buffer)  # (parsed once: the answer is made from it)
                except ValueError:
                    continue  # not all of it yet
                win32file.WriteFile(pipe, _answer(handler, request))
                win32file.FlushFileBuffers(pipe)
                return
        finally:
            win32pipe.DisconnectNamedPipe(pipe)
            win32file.CloseHandle(pipe)

    while True:
        pipe = win32pipe.CreateNamedPipe(
            address,
            win32pipe.PIPE_ACCESS_DUPLEX,
            win32pipe.PIPE_TYPE_BYTE | win32pipe.PIPE_READMODE_BYTE | win32pipe.PIPE_WAIT,
            win32pipe.PIPE_UNLIMITED_INSTANCES,
            65536,
            65536,
            0,
            None,
        )
        try:
            win32pipe.ConnectNamedPipe(pipe, None)
        except pywintypes.error as exc:
            if exc.winerror != 535:  # ERROR_PIPE_CONNECTED: the client came first; fine
                raise
        threading.Thread(target=serve_client, args=(pipe,), daemon=True).start()


def _serve_http(host: str, port: int, handler: Handler) -> None:
    # Here, not at the top: http.server (with email, http.client and ssl) is a third of the
    # helper's import, and the pipe modes do without it.
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Exchange(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep connections open between requests
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = _answer(handler, raw)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the proxy logs every request already

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    with Server((host, port), Exchange) as server:
        server.serve_forever()

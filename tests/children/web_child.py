#!/usr/bin/env python3
"""An ordinary web server (aiohttp) for the pass-through tests; knows nothing of local-lambdas
beyond $PORT.

/echo...      method, path, query, headers and body size as JSON
/redirect     302 to /echo; ?to=URL: to URL, "{port}" in it its own port
/events       three Server-Sent Events, 300 ms apart (?gap=SECONDS), each stamped with its
              send time
/forever      an event every 100 ms, until the connection or the process ends
/download/N   N bytes, streamed in 1 MiB chunks
/upload       counts the request body's bytes as they stream in
/ws           WebSocket echo (text and binary); "bye" closes with code 4001 and reason
              "bye"; "headers" answers the upgrade's Host and Origin as JSON; "die" ends
              the process at once; a close from the client is printed with its code and
              reason
/healthz      200; /missing: 404
/slow         counts its requests, then answers after 2 s

With WEB_CHILD_TLS=CERT:KEY it serves HTTPS.
"""

import asyncio
import json
import os
import ssl
import time

# It makes no HTTPS request: aiohttp's client contexts, built as it is imported, need no CA
# bundle (reading the system's costs a tenth of a second of CPU, and this child starts ~60
# times a run of the suite).
os.environ.setdefault("SSL_CERT_FILE", os.devnull)

from aiohttp import WSMsgType, web

CHUNK = b"x" * (1024 * 1024)


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "raw_path": request.raw_path,
            "headers": list(request.headers.items()),
            "body_bytes": len(body),
            "pid": os.getpid(),
        }
    )


SLOW_CALLS = [0]


async def slow(request: web.Request) -> web.Response:
    SLOW_CALLS[0] += 1
    print(f"slow request {SLOW_CALLS[0]}", flush=True)
    await asyncio.sleep(2)
    return web.Response(text="late\n")


async def redirect(request: web.Request) -> web.Response:
    to = request.query.get("to", "/echo?from=redirect").replace("{port}", os.environ["PORT"])
    return web.Response(status=302, headers={"Location": to})


async def events(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for i in range(3):
        await response.write(f"data: {json.dumps({'i': i, 'sent': time.time()})}\n\n".encode())
        await asyncio.sleep(float(request.query.get("gap", 0.3)))
    return response


async def forever(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    print("streaming forever", flush=True)
    while True:
        await response.write(b"data: tick\n\n")
        await asyncio.sleep(0.1)


async def download(request: web.Request) -> web.StreamResponse:
    size = int(request.match_info["size"])
    response = web.StreamResponse(headers={"Content-Length": str(size)})
    await response.prepare(request)
    while size > 0:
        await response.write(CHUNK[: min(size, len(CHUNK))])
        size -= len(CHUNK)
    return response


async def upload(request: web.Request) -> web.Response:
    total = 0
    async for chunk in request.content.iter_chunked(1 << 20):
        total += len(chunk)
    return web.json_response({"received": total})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=["echo.v1"], max_msg_size=0)
    ws.headers["X-Child-Upgrade"] = "yes"  # on the 101, for the client to see
    await ws.prepare(request)
    while True:
        message = await ws.receive()
        if message.type == WSMsgType.TEXT and message.data == "bye":
            await ws.close(code=4001, message=b"bye")
        elif message.type == WSMsgType.TEXT and message.data == "headers":
            await ws.send_str(json.dumps({k: request.headers.get(k) for k in ("Host", "Origin")}))
        elif message.type == WSMsgType.TEXT and message.data == "die":
            os._exit(9)
        elif message.type == WSMsgType.TEXT:
            await ws.send_str("echo: " + message.data)
        elif message.type == WSMsgType.BINARY:
            await ws.send_bytes(message.data[::-1])
        elif message.type == WSMsgType.CLOSE:
            print(f"ws closed by the client: {message.data} {message.extra}", flush=True)
            break
        else:
            break
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


app = web.Application(client_max_size=0)
app.router.add_route("*", "/echo{tail:.*}", echo)
app.router.add_get("/redirect", redirect)
app.router.add_get("/events", events)
app.router.add_get("/forever", forever)
app.router.add_get("/download/{size}", download)
app.router.add_post("/upload", upload)
app.router.add_get("/ws", websocket)
app.router.add_get("/healthz", healthz)
app.router.add_get("/slow", slow)
# WEB_CHILD_TLS=CERT:KEY: HTTPS on $PORT, as a dev server configured for it serves.
tls = None
if "WEB_CHILD_TLS" in os.environ:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(*os.environ["WEB_CHILD_TLS"].split(":"))
web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None, access_log=None,
            ssl_context=tls)  # fmt: skip

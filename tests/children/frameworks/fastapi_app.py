"""A FastAPI application, run as `uvicorn fastapi_app:app --port $PORT` (uvicorn's own
command line), with the same routes as flask_app.py, and a WebSocket echo at /ws (as
express_app.js's): the `chat` subprotocol when asked, `close-me` closes with 4002 "done"."""

import asyncio
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse

app = FastAPI()


@app.api_route("/echo", methods=["GET", "POST", "PUT"])
async def echo(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "body": (await request.body()).decode(),
            "prefix": request.headers.get("x-forwarded-prefix"),
            "host": request.headers.get("host"),
        }
    )


@app.get("/redirect")
async def to_echo() -> RedirectResponse:
    return RedirectResponse("/echo?from=redirect", status_code=302)


@app.get("/login")
async def login(request: Request) -> RedirectResponse:
    prefix = request.headers.get("x-forwarded-prefix", "")
    return RedirectResponse(prefix + "/echo?from=login", status_code=302)


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        for i in range(3):
            yield f"data: {i}\n\n"
            await asyncio.sleep(0.2)

    return StreamingResponse(events(), media_type="text/event-stream")


@app.get("/forever")
async def forever() -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        while True:
            yield "data: tick\n\n"
            await asyncio.sleep(0.05)

    return StreamingResponse(events(), media_type="text/event-stream")


@app.websocket("/ws")
async def echo_socket(socket: WebSocket) -> None:
    asked = socket.scope.get("subprotocols", [])
    await socket.accept(subprotocol="chat" if "chat" in asked else None)
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "close-me":
            await socket.close(code=4002, reason="done")
            return
        if message.get("text") is not None:
            await socket.send_text(message["text"])
        else:
            await socket.send_bytes(message["bytes"])

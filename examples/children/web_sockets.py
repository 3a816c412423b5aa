#!/usr/bin/env python3
"""An ordinary aiohttp web server with Server-Sent Events and a WebSocket echo, to run behind
local-lambdas in passthrough mode. aiohttp comes with local-lambdas (pip install aiohttp
otherwise); the server knows nothing of the proxy but $PORT.

    GET /events   a tick a second, five of them
    GET /ws       WebSocket echo: text back as text, binary back reversed
"""

import asyncio
import os

from aiohttp import WSMsgType, web


async def events(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for tick in range(5):
        await response.write(f"data: tick {tick}\n\n".encode())
        await asyncio.sleep(1)
    return response


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            await ws.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await ws.send_bytes(message.data[::-1])
    return ws


app = web.Application()
app.router.add_get("/events", events)
app.router.add_get("/ws", echo)
web.run_app(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), print=None)

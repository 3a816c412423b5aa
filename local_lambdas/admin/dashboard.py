"""The dashboard at /_/: one HTML page (dashboard.html, no build step, nothing fetched from
elsewhere) fed by an event stream, and the request inspector's endpoints.

GET  /_/                        the page
GET  /_/events                  Server-Sent Events: `status` (as /_/status, when it changes,
                                checked twice a second), `log` (each line the console shows),
                                `request` (each request the inspector records); on connecting,
                                `logs` and `requests` with what is kept
GET  /_/requests                the inspector's requests, newest first (summaries)
GET  /_/requests/ID             one request: headers and the first 64 KiB of each body
POST /_/requests/ID/replay      send it through the proxy again; the new request's detail

The log keeps the console's last lines (console_log.py); each open page's stream is an
event_stream.Page.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from local_lambdas.admin.console_log import ConsoleLog, Entry
from local_lambdas.admin.event_stream import Page, sse
from local_lambdas.admin.inspector import BODY, Exchange, Inspector
from local_lambdas.envelope import valid_text
from local_lambdas.router import BadTarget, origin_form
from local_lambdas.stats import thousandths

_STATUS_EVERY = 0.5  # seconds between looks at the status
_REPLAY_TIMEOUT = 30.0


class Dashboard:
    """The page's live state: the log, the event streams open, the inspector if recording."""

    def __init__(
        self, status: Callable[[], dict[str, Any]], inspector: Inspector | None, log: ConsoleLog
    ) -> None:
        self._status = status
        self.inspector = inspector
        self.log = log.lines
        log.listener = self._logged
        self.url = ""  # the proxy's own, for replays; set once it listens
        self._pages: set[Page] = set()
        self._thread = 0  # the event loop's, once a page opens: lines from others wait
        self._watching: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[Exchange]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._status_due = False
        self._last_status = b""

    # -- what the page hears of

    def _logged(self, entry: Entry) -> None:
        """A line the console shows (console_log.py), kept there: the open pages get it."""
        if self._pages and threading.get_ident() == self._thread:  # (see _thread)
            self._publish("log", _line(entry))

    def _listen(self) -> None:
        """Hear of each request while a page is open or a replay waits: not otherwise, since
        that is a call on every request."""
        if self.inspector is not None:
            self.inspector.on_record = self._recorded if self._pages or self._waiting else None

    def _recorded(self, exchange: Exchange) -> None:
        waiting = self._waiting.pop(exchange.id, None)
        if waiting is not None:
            if not waiting.done():
                waiting.set_result(exchange)
            self._listen()
        if self._pages:
            self._publish("request", exchange.summary())

    def _publish(self, name: str, data: object) -> None:
        self._send(sse(name, orjson.dumps(data)))

    def _send(self, event: bytes) -> None:
        """`event` to every open page; one too far behind is let go (it connects again)."""
        for page in list(self._pages):
            if not page.send(event):
                self._pages.discard(page)
                self._listen()

    def state_changed(self) -> None:
        """A process changed state (Supervisor.on_state): the pages hear of it at once."""
        if self._pages and not self._status_due:
            self._status_due = True
            asyncio.get_running_loop().call_soon(self._push_status)

    def _push_status(self) -> None:
        """Send the status to every page, if it changed since the last one sent."""
        self._status_due = False
        body = orjson.dumps(self._status())
        if body != self._last_status:
            self._last_status = body
            self._send(sse("status", body))

    async def _watch_status(self) -> None:
        """Counters change without a line to say so: look twice a second while pages are open."""
        while self._pages:
            self._push_status()
            await asyncio.sleep(_STATUS_EVERY)
        self._watching = None

    async def close(self) -> None:
        """End every event stream (a stop must not wait for open pages)."""
        for page in self._pages:
            page.end()
        self._pages.clear()
        self._listen()
        if self._watching is not None:
            self._watching.cancel()
            self._watching = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the endpoints

    async def handle(self, request: web.BaseRequest, name: str, path: str) -> web.StreamResponse:
        """Answer `name` (the path under the admin prefix): "", events, requests[/ID[/replay]]."""
        if name == "":
            return _only(request, "GET", path) or web.Response(
                body=_page(), content_type="text/html", charset="utf-8",
                headers={"Cache-Control": "no-store", "Content-Security-Policy": _CSP},
            )  # fmt: skip
        if name == "events":
            return _only(request, "GET", path) or await self._events(request)
        parts = name.split("/")
        if parts[0] != "requests" or len(parts) > 3 or parts[-1:] == [""]:
            return _error(404, f"no endpoint {path}")
        if self.inspector is None:
            return _off()
        if len(parts) == 1:
            return _only(request, "GET", path) or self._list(self.inspector)
        exchange = self.inspector.get(parts[1])
        if exchange is None:
            return _error(404, f"no request {parts[1]} is kept (the last 200 are)")
        if len(parts) == 2:
            return _only(request, "GET", path) or self._one(self.inspector, exchange)
        if parts[2] == "replay":
            return _only(request, "POST", path) or await self._replay(self.inspector, exchange)
        return _error(404, f"no endpoint {path}")

    async def _events(self, request: web.BaseRequest) -> web.StreamResponse:
        answer = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        })  # fmt: skip
        await answer.prepare(request)
        if request.method == "HEAD":  # the head alone: no stream of events follows one
            return answer
        page = Page()
        self._thread = threading.get_ident()
        page.send(sse("status", orjson.dumps(self._status())))
        page.send(sse("logs", orjson.dumps([_line(entry) for entry in self.log])))
        recording = self.inspector is not None
        kept = [e.summary() for e in self.inspector.newest_first()] if self.inspector else []
        page.send(sse("requests", orjson.dumps({"recording": recording, "requests": kept})))
        self._pages.add(page)
        self._listen()
        if self._watching is None:
            self._watching = asyncio.create_task(self._watch_status())
        try:
            await page.write_to(answer)
        finally:
            self._pages.discard(page)
            self._listen()
        return answer

    def _list(self, inspector: Inspector) -> web.Response:
        return _json({"requests": [e.summary() for e in inspector.newest_first()]})

    def _one(self, inspector: Inspector, exchange: Exchange) -> web.Response:
        detail = inspector.detail(exchange)
        detail["logs"] = [_line(entry) for entry in self.log if exchange.id in entry[3]]
        return _json(detail)

    async def _replay(self, inspector: Inspector, exchange: Exchange) -> web.Response:
        """Send a kept request through the proxy again, and answer the new one's detail."""
        why_not = inspector.replayable(exchange)
        if why_not is not None:
            return _error(409, f"{exchange.id} cannot be replayed: {why_not}")
        try:
            target = origin_form(exchange.target)
        except BadTarget:
            target = exchange.target
        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"),
                timeout=aiohttp.ClientTimeout(total=_REPLAY_TIMEOUT),
            )  # fmt: skip
        try:
            async with self._session.request(
                exchange.method, self.url + target, data=exchange.request_body or None,
                headers=inspector.replay_headers(exchange), ssl=False,
                allow_redirects=False,
            ) as reply:  # fmt: skip
                new_id = reply.headers.get("X-Request-Id", "")
                waiting = self._recorded_soon(new_id)
                got = 0
                while got < BODY:  # what is kept of it; an endless stream ends there
                    chunk = await reply.content.readany()
                    if not chunk:
                        break
                    got += len(chunk)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return _error(502, f"the replay could not be sent through the proxy: {exc}")
        try:
            replayed = await asyncio.wait_for(waiting, _REPLAY_TIMEOUT)
        except asyncio.TimeoutError:
            return _error(504, f"the replay ({new_id}) was sent but not recorded in time")
        return _json({"replay_of": exchange.id, "request": inspector.detail(replayed)})

    def _recorded_soon(self, request_id: str) -> asyncio.Future[Exchange]:
        """The exchange `request_id` once recorded (now, if it is already)."""
        future: asyncio.Future[Exchange] = asyncio.get_running_loop().create_future()
        assert self.inspector is not None
        kept = self.inspector.get(request_id)
        if kept is not None:
            future.set_result(kept)
        else:
            self._waiting[request_id] = future
            self._listen()
        return future


# The page asks for nothing outside the proxy: no CDN, fonts or images (it works offline).
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:"
)


def _line(entry: Entry) -> dict[str, object]:
    """A log line as the page takes it."""
    when, source, kind, text, color = entry
    return {"time": thousandths(when), "source": source, "kind": kind, "text": text,
            "color": color}  # fmt: skip


def _page() -> bytes:
    return resources.files("local_lambdas.admin").joinpath("dashboard.html").read_bytes()


def _only(request: web.BaseRequest, method: str, path: str) -> web.Response | None:
    if request.method == method or (method == "GET" and request.method == "HEAD"):
        return None
    answer = _error(405, f"{request.method} is not allowed on {path}")
    answer.headers["Allow"] = "GET, HEAD" if method == "GET" else method
    return answer


def _off() -> web.Response:
    return _error(404, "the request inspector is off: it records only while the proxy is "
                  "bound to loopback, unless started with --inspector")  # fmt: skip


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": valid_text(message)}, status)  # (it may quote a path: `%E9`)

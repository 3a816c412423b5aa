"""One dashboard page's event stream (GET /_/events, Server-Sent Events): the events waiting
for it, and their writing, gathered for _GATHER seconds so that a page hearing of every
request under load costs a write per gathering, not per event. A page that falls more than
QUEUE events behind is ended: its EventSource connects again and starts from what is kept.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

QUEUE = 5000  # events waiting for one page
_PING_EVERY = 15.0  # seconds of silence before a comment line, to find closed pages
_GATHER = 0.05  # seconds of events gathered for one write to a page


def sse(name: str, data: bytes) -> bytes:
    """An event as the stream carries it (Server-Sent Events)."""
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


class Page:
    """One open event stream: the events waiting for it (each as the stream carries it,
    `sse`), and its wake-up. A list and a future, not an asyncio.Queue, whose put cost a
    request served 9k instructions while a page was open."""

    def __init__(self) -> None:
        self.events: list[bytes] = []
        self.ended = False
        self._woken: asyncio.Future[None] | None = None

    def send(self, event: bytes) -> bool:
        """Queue `event`; False, and the page ended, once QUEUE are waiting (too far behind:
        it reconnects and starts afresh), or once it ended."""
        if self.ended or len(self.events) >= QUEUE:
            self.end()
            return False
        self.events.append(event)
        self._wake()
        return True

    def end(self) -> None:
        """The stream ends once what is waiting is sent."""
        self.ended = True
        self._wake()

    async def wait(self, timeout: float) -> bool:
        """Whether an event (or the end) came within `timeout` seconds."""
        if not self.events and not self.ended:
            self._woken = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._woken, timeout)
            except asyncio.TimeoutError:
                return False
            finally:
                self._woken = None
        return True

    def take(self) -> list[bytes]:
        events, self.events = self.events, []
        return events

    async def write_to(self, answer: web.StreamResponse) -> None:
        """Write the events to `answer` as they come, until the page ends or closes."""
        try:
            while True:
                if not await self.wait(_PING_EVERY):
                    await answer.write(b": ping\n\n")
                    continue
                # What comes meanwhile goes in the same write: under load a page hears of
                # every request twice, and a write (and a wait) for each event cost a
                # request served more than the request itself.
                await asyncio.sleep(_GATHER)
                events = self.take()
                if events:
                    await answer.write(b"".join(events))
                if self.ended:
                    return
        except ConnectionResetError:
            pass  # the page closed

    def _wake(self) -> None:
        if self._woken is not None and not self._woken.done():
            self._woken.set_result(None)

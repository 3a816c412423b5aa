"""The access log: one line for each request answered (Proxy.finish calls `AccessLog.line`).

It runs for every request, so it is compiled with the hot path (interpreted, as a method of
output.Printer, it cost 12k instructions a request, a fifth of a kept-alive request's). Its
lines are gathered for _GATHER seconds and handed to the output thread together; the
Printer flushes them first whenever it prints anything else, so that the order holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

import orjson

from local_lambdas.stats import thousandths

# ANSI colours of an access line by status class: 1xx-2xx green, 3xx cyan, 4xx yellow, 5xx red.
_STATUS_ANSI: Final = ("\x1b[32m", "\x1b[32m", "\x1b[32m", "\x1b[36m", "\x1b[33m", "\x1b[31m")
_STATUS_COLOR: Final = ("green", "green", "green", "cyan", "yellow", "red")  # the dashboard's
# Seconds of lines gathered before they go to the output thread: waking it (and handing it
# the GIL) for each request cost a request served one at a time 50k instructions, more than
# the request itself. Anything else printed first sends them on (Printer), so the order holds.
_GATHER: Final = 0.05


class AccessLog:
    """`put` takes the text of the lines gathered; `source`, whose lines they are (the
    proxy's name); `json`: --log-format json; `ansi`: in colour. The Printer sets `tap` (the
    dashboard's log, which hears each line too) and the name column's width (`widen`)."""

    def __init__(self, put: Callable[[str], None], *, source: str, json: bool, ansi: bool) -> None:
        self._put = put
        self._json = json
        self._ansi = ansi
        self.source = source
        self._bar = self._bold_bar = ""  # the name column and its bar, before a line
        self.widen(len(source))
        self.tap: Callable[[str, str, str, str], None] | None = None
        self._pending: list[str] = []

    def line(
        self, method: str, uri: str, process: str | None, status: int, seconds: float, rid: str
    ) -> None:
        # (Tenths of a millisecond as integers: a float's format costs more than the rest.)
        tenths = int(seconds * 10000 + 0.5)
        plain = (
            f"{status} {method} {uri} -> {process or '-'} {tenths // 10}.{tenths % 10} ms [{rid}]"
        )
        kind = min(status // 100, 5)
        if self.tap is not None:
            self.tap(self.source, "access", plain, _STATUS_COLOR[kind])
        if self._json:
            record = {"time": thousandths(time.time()), "event": "access", "method": method,
                      "uri": uri, "process": process, "status": status,
                      "ms": thousandths(seconds * 1000), "request_id": rid}  # fmt: skip
            text = orjson.dumps(record).decode()
        elif self._ansi:
            text = f"{self._bold_bar}{_STATUS_ANSI[kind]}{plain}\x1b[0m"
        else:
            text = self._bar + plain
        if not self._pending:
            asyncio.get_running_loop().call_later(_GATHER, self.flush)
        self._pending.append(text)

    def widen(self, width: int) -> None:
        """The name column is `width` wide (the Printer's, which fits every child's name)."""
        name = f"{self.source:<{width}}"
        self._bar = f"{name} | "
        self._bold_bar = f"\x1b[1m{name}\x1b[0m | "

    def flush(self) -> None:
        """Hand the lines gathered to `put`."""
        if self._pending:
            lines, self._pending = self._pending, []
            self._put("\n".join(lines) + "\n")

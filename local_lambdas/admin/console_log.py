"""The console's last lines, kept for the dashboard's log from the run's first line.

The run's Printer hands each line it shows here (Printer.tap): a child's output, an event,
an access line. The dashboard (dashboard.py) loads with aiohttp's side, while the children
start (lifecycle.py), so the lines they print first wait here for it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

LOG_LINES = 1000

# (time, source, kind, text, colour): a tuple per line, made a dict only when sent.
Entry = tuple[float, str, str, str, str]


class ConsoleLog:
    def __init__(self) -> None:
        self.lines: deque[Entry] = deque(maxlen=LOG_LINES)
        self.listener: Callable[[Entry], None] | None = None  # the dashboard, once it is up

    def line(self, source: str, kind: str, text: str, color: str) -> None:
        entry = (time.time(), source, kind, text, color)
        self.lines.append(entry)
        if self.listener is not None:
            self.listener(entry)

"""Every line a person (or, with --log-format json, a machine) reads comes out of here.

Children's output is shown line by line as `id | line`, the id in the child's own colour, as
Procfile runners do. The proxy's own events arrive through `logging` and are printed by
`Printer.handler()`, so library code only ever calls `logging.getLogger(...)`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Literal

import orjson
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

_PALETTE = (
    "cyan",
    "magenta",
    "green",
    "yellow",
    "blue",
    "bright_red",
    "bright_cyan",
    "bright_magenta",
    "bright_green",
    "bright_yellow",
)
_LEVEL_STYLE = {logging.WARNING: "yellow", logging.ERROR: "bold red", logging.CRITICAL: "bold red"}
PROXY = "local-lambdas"
# ANSI colours of an access line by status class: 1xx-2xx green, 3xx cyan, 4xx yellow, 5xx red.
_STATUS_ANSI = ("\x1b[32m", "\x1b[32m", "\x1b[32m", "\x1b[36m", "\x1b[33m", "\x1b[31m")


class Printer:
    """Owns the console; one instance per run, shared by everything that prints."""

    def __init__(
        self,
        *,
        log_format: Literal["text", "json"] = "text",
        file: IO[str] | None = None,
        color: bool | None = None,
    ) -> None:
        self.log_format = log_format
        self._file = file or sys.stdout
        self._console = Console(
            file=self._file,
            force_terminal=color,
            no_color=color is False,
            highlight=False,
            soft_wrap=True,
        )
        self._colors: dict[str, str] = {}
        self._pending: list[str] = []  # access lines not yet written
        self._width = len(PROXY)

    def register(self, name: str) -> None:
        """Give `name` its colour and widen the name column to fit it."""
        self._colors.setdefault(name, _PALETTE[len(self._colors) % len(_PALETTE)])
        self._width = max(self._width, len(name))

    def child_line(self, name: str, stream: Literal["stdout", "stderr"], line: str) -> None:
        if self.log_format == "json":
            self._json({"event": "output", "process": name, "stream": stream, "line": line})
            return
        text = Text(f"{name:<{self._width}} | ", style=self._colors.get(name, "white"))
        text.append(line)
        self._console.print(text)

    def event(self, level: int, message: str, fields: dict[str, object] | None = None) -> None:
        if self.log_format == "json":
            record = {"event": "log", "level": logging.getLevelName(level).lower(),
                      "message": message}  # fmt: skip
            self._json(record | (fields or {}))
            return
        text = Text(f"{PROXY:<{self._width}} | ", style="bold")
        text.append(message, style=_LEVEL_STYLE.get(level, ""))
        self._console.print(text)

    def access(
        self, method: str, uri: str, process: str | None, status: int, seconds: float, rid: str
    ) -> None:
        """One access-log line. It runs for every request, so it skips rich, and lines are
        gathered and written once per turn of the event loop rather than one write each."""
        ms = seconds * 1000
        if self.log_format == "json":
            record = {"time": round(time.time(), 3), "event": "access", "method": method,
                      "uri": uri, "process": process, "status": status, "ms": round(ms, 3),
                      "request_id": rid}  # fmt: skip
            line = orjson.dumps(record).decode()
        else:
            line = f"{status} {method} {uri} -> {process or '-'} {ms:.1f} ms [{rid}]"
            if self._console.color_system is not None:
                color = _STATUS_ANSI[min(status // 100, 5)]
                line = f"\x1b[1m{PROXY:<{self._width}}\x1b[0m | {color}{line}\x1b[0m"
            else:
                line = f"{PROXY:<{self._width}} | {line}"
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._write_pending)
        self._pending.append(line)

    def _write_pending(self) -> None:
        lines, self._pending = self._pending, []
        self._file.write("\n".join(lines) + "\n")
        self._file.flush()

    @contextmanager
    def progress(self) -> Iterator[Callable[[str], None]]:
        """A live status line on a terminal (updated through the function this yields); on
        anything else nothing, since the state lines already say it all."""
        if self.log_format == "json" or not self._console.is_terminal:
            yield lambda text: None
            return
        with self._console.status("", spinner="dots") as status:
            yield status.update

    def table(self, title: str, columns: list[str], rows: list[list[str]]) -> None:
        """A table for people; for machines, one event holding the rows."""
        if self.log_format == "json":
            self._json(
                {
                    "event": "table",
                    "title": title,
                    "rows": [dict(zip(columns, row, strict=True)) for row in rows],
                }
            )
            return
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        # Off a terminal rich would squeeze the table into 80 columns and cut the addresses.
        self._console.print(table, width=None if self._console.is_terminal else 200)

    def _json(self, record: dict[str, object]) -> None:
        stamped = {"time": round(time.time(), 3)} | record
        self._file.write(orjson.dumps(stamped, default=str).decode() + "\n")
        self._file.flush()

    def handler(self, level: int = logging.INFO) -> logging.Handler:
        """A logging handler that prints the proxy's events through this printer."""
        return _Handler(self, level)


class _Handler(logging.Handler):
    def __init__(self, printer: Printer, level: int) -> None:
        super().__init__(level)
        self._printer = printer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = getattr(record, "fields", None)
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                message = f"{message}: {type(exc).__name__}: {exc}"
            # One record, one line: a multi-line message (a traceback) would break both
            # the columns and the one-object-per-line JSON.
            message = " ".join(message.split()) if "\n" in message else message
            if record.name.split(".")[0] != "local_lambdas":
                fields = {"event": record.name.split(".")[0], **(fields or {})}
            self._printer.event(record.levelno, message, fields)
        except Exception:  # a broken stdout must not take the proxy down
            self.handleError(record)


def print_problems(problems: list[str], file: IO[str] | None = None) -> None:
    """Manifest problems, one per line, for `check` and for a run that cannot start."""
    console = Console(file=file or sys.stderr, highlight=False, soft_wrap=True)
    for problem in problems:
        console.print(Text(problem, style="red"))


def print_line(message: str, file: IO[str] | None = None) -> None:
    """One plain line for the user (a command's result, or why it stopped)."""
    Console(file=file or sys.stderr, highlight=False, soft_wrap=True).print(Text(message))

"""Every line a person (or, with --log-format json, a machine) reads while a run lasts comes
out of here (what is said before it starts or once it has stopped: notices.py).

Children's output is shown line by line as `id | line`, the id in the child's own colour, as
Procfile runners do. A child's colours (SGR escapes) are kept in text; its other escapes
and control characters (clearing the screen, moving the cursor, a window title, the bell)
are dropped, so that no child can wipe or garble the others' lines; the dashboard shows the
text without colours, and --log-format json gives each line as the child wrote it. The
proxy's own events arrive through `logging` and are printed by `Printer.handler()`, so
library code only ever calls `logging.getLogger(...)`.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Literal

import orjson
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from local_lambdas.access_log import AccessLog
from local_lambdas.output_writer import Writer

_PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan",
            "bright_magenta", "bright_green", "bright_yellow")  # fmt: skip
_LEVEL_STYLE = {logging.WARNING: "yellow", logging.ERROR: "bold red", logging.CRITICAL: "bold red"}
PROXY = "local-lambdas"
# The table's box, rich's SIMPLE_HEAD with its rule drawn with "-", for an output that cannot
# encode "─" (a Windows pipe in cp1252, as on a CI runner): rich, rendering into a string,
# would not know, and each "─" would come out escaped.
_ASCII_HEAD_RULE = box.Box("    \n    \n -- \n    \n    \n    \n    \n    \n", ascii=True)
# What a child's line may not pass on to a terminal: an escape sequence that is not a colour
# (SGR: a CSI ending in `m`), whole or cut short, or a control character but TAB and LF.
_NOT_COLOUR = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-ln-~]"  # CSI: the cursor moved, the screen cleared...
    r"|\x1b\[(?![0-?]*[ -/]*[@-~])"  # a CSI cut short
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: a window title, the clipboard...
    r"|\x1b(?![\[\]])[ -~]?"  # a two-byte escape, or ESC alone
    r"|[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f]"  # C0 and C1 controls, DEL
)
_ANY_ESCAPE = re.compile(_NOT_COLOUR.pattern + r"|\x1b\[[0-?]*[ -/]*m")


def for_terminal(text: str) -> str:
    """`text` without what `_NOT_COLOUR` finds: its colours kept."""
    return text if text.isprintable() else _NOT_COLOUR.sub("", text)  # (most lines: no regex)


def plain(text: str) -> str:
    """`text` without any escape sequence or control character but TAB and LF."""
    return text if text.isprintable() else _ANY_ESCAPE.sub("", text)


# Rich's names of the palette above, as ANSI codes: child lines are printed without rich.
_ANSI = {"cyan": "36", "magenta": "35", "green": "32", "yellow": "33", "blue": "34",
         "bright_red": "91", "bright_cyan": "96", "bright_magenta": "95", "bright_green": "92",
         "bright_yellow": "93", "white": "37"}  # fmt: skip
_LEVEL_ANSI = {logging.WARNING: "33", logging.ERROR: "1;31", logging.CRITICAL: "1;31"}
# Bytes of one child's output shown per second, at most (in bursts of as much): what a person
# or a log can use, while formatting a flood of lines would cost the proxy its requests.
RATE = 4 * 1024 * 1024


class Printer:
    """Owns the output stream; one instance per run, shared by everything that prints.

    Lines are formatted on the event loop and written by a thread of their own, in order, so
    that a slow terminal or a full pipe never holds the loop up (output_writer.py). Each
    source (a child, or the proxy) may have output_writer.BUDGET bytes waiting, and a child
    may print RATE bytes a second; its lines past either are dropped and counted, and a line
    says how many once it is shown again.
    """

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
            no_color=True if color is False else None,  # None: rich reads NO_COLOR
            highlight=False,
            soft_wrap=True,
        )
        # The colours the proxy adds (ids, its own lines, the table): on a terminal, or with
        # FORCE_COLOR; never with NO_COLOR (no-color.org). A child's own go on as it wrote them.
        self._ansi = self._console.color_system is not None and not self._console.no_color
        self._colors: dict[str, str] = {}
        self._prefixes: dict[str, str] = {}
        self._allowance: dict[str, tuple[float, float]] = {}  # child -> (bytes, when)
        self._width = len(PROXY)
        self._writer = Writer(self._file, self._dropped_note)
        # One line for each request answered (Proxy.finish's), compiled.
        self.access_log = AccessLog(
            lambda text: self._writer.put(PROXY, text), source=PROXY,
            json=log_format == "json", ansi=self._ansi,
        )  # fmt: skip

    @property
    def tap(self) -> Callable[[str, str, str, str], None] | None:
        """Hears every line shown, plain: (source, kind, text, colour); the dashboard's log.
        kind: stdout or stderr for a child, a level name or "access" for the proxy. (Held by
        the access log, which hears each of its lines.)"""
        return self.access_log.tap

    @tap.setter
    def tap(self, tap: Callable[[str, str, str, str], None] | None) -> None:
        self.access_log.tap = tap

    def register(self, name: str) -> None:
        """Give `name` its colour and widen the name column to fit it."""
        self._colors.setdefault(name, _PALETTE[len(self._colors) % len(_PALETTE)])
        if cell_len(name) > self._width or name not in self._prefixes:
            self._width = max(self._width, cell_len(name))
            self._prefixes = {n: self._prefix(n) for n in self._colors}
            self.access_log.widen(self._width)

    def _prefix(self, name: str) -> str:
        """`name` padded to the column's width as a terminal shows it (日本 takes four)."""
        padded = name + " " * (self._width - cell_len(name))
        if not self._ansi:
            return f"{padded} | "
        return f"\x1b[{_ANSI[self._colors.get(name, 'white')]}m{padded} | \x1b[0m"

    def child_lines(
        self, name: str, stream: Literal["stdout", "stderr"], lines: list[bytes]
    ) -> None:
        """Lines a child printed (without their line ends); dropped past its budget."""
        if not self._writer.room(name) or not self._within_rate(name, lines):
            self._writer.drop(name, len(lines))
            return
        texts = [line_text(line) for line in lines]
        if self.tap is not None:
            color = self._colors.get(name, "white")
            for line in texts:
                self.tap(name, stream, plain(line), color)
        if self.log_format == "json":
            now = round(time.time(), 3)
            text = "".join(
                orjson.dumps({"time": now, "event": "output", "process": name, "stream": stream,
                              "line": line}).decode() + "\n"
                for line in texts
            )  # fmt: skip
        else:
            prefix = self._prefixes.get(name) or self._prefix(name)
            text = "".join(f"{prefix}{for_terminal(line)}\n" for line in texts)
        self.access_log.flush()  # (the requests answered before these lines, first)
        self._writer.put(name, text)

    def _within_rate(self, name: str, lines: list[bytes]) -> bool:
        """Take these lines' bytes from the child's allowance (a token bucket of RATE)."""
        now = time.monotonic()
        left, then = self._allowance.get(name, (RATE, now))
        left = min(RATE, left + (now - then) * RATE)
        size = sum(map(len, lines))
        if size > left:
            self._allowance[name] = (left, now)
            return False
        self._allowance[name] = (left - size, now)
        return True

    def _dropped_note(self, name: str, count: int) -> str:
        message = f"... {count} lines dropped: {name} printed faster than they could be shown"
        if self.log_format == "json":
            record = {"time": round(time.time(), 3), "event": "output_dropped",
                      "process": name, "lines": count, "message": message}  # fmt: skip
            return orjson.dumps(record).decode() + "\n"
        return f"{self._prefixes.get(name) or self._prefix(name)}{message}\n"

    def event(self, level: int, message: str, fields: dict[str, object] | None = None) -> None:
        if self.tap is not None:
            self.tap(PROXY, logging.getLevelName(level).lower(), message, "")
        if self.log_format == "json":
            record = {"event": "log", "level": logging.getLevelName(level).lower(),
                      "message": message}  # fmt: skip
            self._json(record | (fields or {}))
            return
        name = f"{PROXY:<{self._width}}"
        if self._ansi:
            style = _LEVEL_ANSI.get(level)
            text = f"\x1b[1m{name}\x1b[0m | " + (
                f"\x1b[{style}m{message}\x1b[0m" if style else message
            )
        else:
            text = f"{name} | {message}"
        self.access_log.flush()
        self._writer.put(PROXY, text + "\n", droppable=False)

    @contextmanager
    def progress(self) -> Iterator[Callable[[str], None]]:
        """A live status line on a terminal (updated through the function this yields); on
        anything else nothing, since the state lines already say it all."""
        if self.log_format == "json" or not self._console.is_terminal:
            yield lambda text: None
            return
        self.flush()
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
        # Off a terminal rich would squeeze the table into 80 columns and cut the addresses:
        # there it gets all the width it needs (a CI log or a file has no edge). A terminal
        # narrower than the table (a split pane, an editor's panel) gets a line a row, which
        # it wraps: rich would cut the addresses and routes, the values asked for.
        lines = self._table_lines(title, columns, rows, 1000, ansi=False)
        if self._console.is_terminal and max(map(cell_len, lines)) > self._console.width:
            lines = [title] + [
                f"  {row[0]}: "
                + ", ".join(f"{c} {v}" for c, v in zip(columns[1:], row[1:], strict=True))
                for row in rows
            ]
        elif self._ansi:
            width = self._console.width if self._console.is_terminal else 1000
            lines = self._table_lines(title, columns, rows, width, ansi=True)
        self._writer.put(PROXY, "\n".join(lines) + "\n", droppable=False)

    def _table_lines(
        self, title: str, columns: list[str], rows: list[list[str]], width: int, ansi: bool
    ) -> list[str]:
        unicode = "\u2500".encode(self._console.encoding, "replace") != b"?"
        table = Table(
            title=title, title_justify="left", box=box.SIMPLE_HEAD if unicode else _ASCII_HEAD_RULE
        )
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        rendered = io.StringIO()
        Console(
            file=rendered, width=width, force_terminal=ansi, no_color=not ansi, highlight=False
        ).print(table)
        return [line.rstrip() for line in rendered.getvalue().splitlines()]

    def _json(self, record: dict[str, object]) -> None:
        stamped = {"time": round(time.time(), 3)} | record
        self.access_log.flush()
        self._writer.put(PROXY, orjson.dumps(stamped, default=str).decode() + "\n",
                         droppable=False)  # fmt: skip

    def dropped(self, name: str) -> int:
        """How many of `name`'s lines were dropped in all (see output_writer.BUDGET)."""
        return self._writer.dropped_total.get(name, 0)

    def flush(self, timeout: float = 2.0) -> None:
        """Wait (up to `timeout`) until every line so far is written."""
        self.access_log.flush()
        self._writer.flush(timeout)

    def handler(self, level: int = logging.INFO) -> logging.Handler:
        """A logging handler that prints the proxy's events through this printer."""
        return _Handler(self, level)


def line_text(line: bytes) -> str:
    """A child's output line (bytes, no LF) as text: a CR end dropped, bad UTF-8 replaced, and
    a line rewritten after CRs (a progress bar: `\rbuilding 50%\rbuilding 100%`) as a terminal
    leaves it, its last state, so that it keeps the `id | ` before it."""
    line = line.rstrip(b"\r")
    if b"\r" in line:
        line = line.rpartition(b"\r")[2]
    return line.decode("utf-8", "replace")


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

"""Lines said outside a run's Printer (output.py), before a run starts or once it has
stopped: a manifest's problems and warnings (`check`, a run that cannot start), a command's
result, why it stopped; as text on standard error, or with --log-format json as JSON events
on standard output, where a run's own go.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import IO

import orjson
from rich.console import Console
from rich.text import Text

from local_lambdas.errors import one_line


def print_problems(
    problems: list[str], file: IO[str] | None = None, *, as_json: bool = False
) -> None:
    """Manifest problems, one per line, for `check` and for a run that cannot start;
    `as_json` (--log-format json): as `manifest` events, on standard output as the run's are."""
    if as_json:
        for problem in problems:
            _json_line({"event": "manifest", "level": "error", "message": problem})
        return
    console = Console(file=file or sys.stderr, highlight=False, soft_wrap=True)
    for problem in problems:
        console.print(Text(problem, style="red"))


def print_warnings(
    warnings: Iterable[str], file: IO[str] | None = None, *, as_json: bool = False
) -> None:
    """What `check` points out without refusing the manifest, one per line (`as_json`: as
    print_problems)."""
    if as_json:
        for warning in warnings:
            _json_line({"event": "manifest", "level": "warning", "message": one_line(warning)})
        return
    console = Console(file=file or sys.stderr, highlight=False, soft_wrap=True)
    for warning in warnings:
        console.print(Text(f"warning: {one_line(warning)}", style="yellow"))


def print_line(
    message: str, file: IO[str] | None = None, *, as_json: bool = False, level: str = "error"
) -> None:
    """One plain line for the user (a command's result, or why it stopped); `as_json`: an
    `exit` event of `level` on standard output, after the run's own."""
    if as_json:
        _json_line({"event": "exit", "level": level, "message": message})
        return
    Console(file=file or sys.stderr, highlight=False, soft_wrap=True).print(Text(message))


def _json_line(record: dict[str, object]) -> None:
    """One JSON line outside a run's Printer (before it starts, or after it has flushed)."""
    sys.stdout.write(orjson.dumps({"time": round(time.time(), 3)} | record).decode() + "\n")
    sys.stdout.flush()

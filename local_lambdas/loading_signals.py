"""Ctrl+C, SIGTERM and SIGHUP while a run loads, before its event loop takes them
(_compat.on_signals).

Ctrl+C is taken from the start, whatever was inherited: a script's background job
(`local-lambdas manifest.xml &`) starts with SIGINT ignored, and one sent while the proxy
loads would be lost while it went on to serve. cli.main says it in one line with status 130,
even where an extension's import it cut short raises an error of its own for it (pydantic
core's PanicException, "failed to import datetime"). A SIGTERM (POSIX), whose default action
would end the run without a word, is taken the same way: one line, status 143. A
`kill -HUP`, whose default action would end the run without a word too, is noted instead,
for `serve` to reload once it serves (`held_hangup`); under nohup (SIGHUP ignored) and on
Windows (none) nothing changes.
Standard library only: this runs before anything else is loaded.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

_hangups: list[int] = []  # SIGHUPs that came while the run loaded


class Loading:
    """What came while the run loaded: `stopped_by`, the Ctrl+C or SIGTERM, if one did."""

    def __init__(self) -> None:
        self.stopped_by: int | None = None

    def ctrl_c(self, signum: int, frame: object) -> None:
        if self.stopped_by is not None:
            return  # the run is ending already; raised again, it cut short its one line
        self.stopped_by = signum
        raise KeyboardInterrupt


def _note_hangup(signum: int, frame: object) -> None:
    _hangups.append(signum)


def held_hangup() -> bool:
    """Whether a SIGHUP came while the run loaded; asked once, by `serve`."""
    came = bool(_hangups)
    _hangups.clear()
    return came


@contextlib.contextmanager
def while_loading() -> Iterator[Loading]:
    """Ctrl+C and SIGHUP taken as the module's docstring says, until the block ends (the
    run's loop, meanwhile, takes them over; a test's run in-process, not on the main
    thread, changes nothing)."""
    loading = Loading()
    previous = signal.getsignal(signal.SIGINT)
    hangup = getattr(signal, "SIGHUP", None)
    # SIGTERM on POSIX, unless it was ignored (what started the proxy asked for that).
    term = signal.SIGTERM if sys.platform != "win32" else None
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGINT, loading.ctrl_c)
        if term is not None and signal.getsignal(term) is signal.SIG_DFL:
            signal.signal(term, loading.ctrl_c)
        if hangup is not None and signal.getsignal(hangup) is signal.SIG_DFL:
            signal.signal(hangup, _note_hangup)
    try:
        yield loading
    finally:
        with contextlib.suppress(ValueError):
            if hangup is not None and signal.getsignal(hangup) is _note_hangup:
                signal.signal(hangup, signal.SIG_DFL)
            if term is not None and signal.getsignal(term) == loading.ctrl_c:
                signal.signal(term, signal.SIG_DFL)
            if signal.getsignal(signal.SIGINT) == loading.ctrl_c:
                signal.signal(signal.SIGINT, previous)

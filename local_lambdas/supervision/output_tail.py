"""The last lines a child printed (a process's instance, a task), kept to say why it failed
or ended, with each line passed on to the console (output.Printer) as it comes. Kept plain
(output.plain): a reason quotes a red `Error:` as its words.
"""

from __future__ import annotations

import collections
from typing import Literal

from local_lambdas.output import Printer, line_text, plain
from local_lambdas.supervision import failure_line

# Of each line kept: a reason quotes 200 characters at most; the console has the whole line.
_KEPT_CHARS = 1000


class OutputTail:
    """The last `keep` lines a child printed over all its runs, and how many of them its
    current (or last) run printed. Called with each batch of lines: the callback a spawn is
    given (spawned.spawn)."""

    def __init__(self, printer: Printer, name: str, keep: int) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._own = 0
        self._told: str | None = None  # what telling() says since the proxy stopped the run
        self._keep = keep
        self._printer = printer
        self._name = name
        printer.register(name)

    def __call__(self, stream: Literal["stdout", "stderr"], lines: list[bytes]) -> None:
        self.lines.extend(plain(line_text(line))[:_KEPT_CHARS] for line in lines[-self._keep :])
        self._own = min(self._own + len(lines), self._keep)
        self._printer.child_lines(self._name, stream, lines)

    def new_run(self) -> None:
        """A new process of the child begins: the lines so far were earlier runs'."""
        self._own = 0
        self._told = None

    def stopped_by_the_proxy(self) -> None:
        """The proxy stops the current run for failing (not ready in time): what it prints
        from now is its way out ("exited with code SIGTERM", "shutting down"), so the line
        that says why is the one it said before."""
        self._told = self.telling()

    def this_run(self) -> list[str]:
        """The lines its current (or last) process printed."""
        return list(self.lines)[-self._own :] if self._own else []

    def telling(self) -> str:
        """The line of its current (or last) process's output that says why it ended
        (failure_line.telling), at most 200 characters; "" if none does."""
        if self._told is not None:
            return self._told
        return failure_line.telling(self.this_run())[:200]

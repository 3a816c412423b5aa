"""The thread that writes the proxy's output (output.Printer's), so that a slow terminal or a
full pipe never holds up the event loop: text is queued and written in batches. Each source
(a child, or the proxy) may have BUDGET bytes waiting; the lines it prints beyond that are
dropped, and how many is said once its backlog is written. A closed or broken stream ends
the showing, never the proxy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import IO

BUDGET = 256 * 1024  # bytes of one source's lines waiting to be written, before lines drop
_NAME = "local-lambdas output"


class Writer:
    """The thread that writes queued text to the stream, and each source's budget."""

    def __init__(self, file: IO[str], note: Callable[[str, int], str]) -> None:
        self._file = file
        self._note = note
        self._lock = threading.Lock()
        self._queue: list[tuple[str, str]] = []
        self._waiting: dict[str, int] = {}  # source -> bytes queued
        self._dropped: dict[str, int] = {}  # source -> lines dropped, not yet reported
        self.dropped_total: dict[str, int] = {}  # source -> lines dropped in all
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None

    def room(self, source: str) -> bool:
        return self._waiting.get(source, 0) < BUDGET and not self._dropped.get(source)

    def drop(self, source: str, lines: int) -> None:
        with self._lock:
            self._dropped[source] = self._dropped.get(source, 0) + lines
            self.dropped_total[source] = self.dropped_total.get(source, 0) + lines

    def put(self, source: str, text: str, *, droppable: bool = True) -> None:
        with self._lock:
            self._queue.append((source, text))
            if droppable:
                self._waiting[source] = self._waiting.get(source, 0) + len(text)
            self._idle.clear()
            if self._thread is None:
                thread = threading.Thread(target=self._run, name=_NAME, daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # no thread to be had (the system's limit on processes)
                    batch, self._queue = self._queue, []
                    self._write(batch)  # here, then, as it comes; a thread next time
                    self._written(batch)
                    self._idle.set()
                    return
                self._thread = thread
            self._wake.notify()

    def flush(self, timeout: float) -> None:
        if self._thread is not None:
            self._idle.wait(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    # Drops are reported once the source's backlog is written.
                    notes = [(s, n) for s, n in self._dropped.items() if not self._waiting.get(s)]
                    for source, _ in notes:
                        del self._dropped[source]
                    if notes:
                        self._queue.extend((s, self._note(s, n)) for s, n in notes)
                        break
                    self._idle.set()
                    self._wake.wait()
                batch, self._queue = self._queue, []
            self._write(batch)
            with self._lock:
                self._written(batch)

    def _write(self, batch: list[tuple[str, str]]) -> None:
        try:
            self._file.write("".join(text for _, text in batch))
            self._file.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream: nothing more can be shown

    def _written(self, batch: list[tuple[str, str]]) -> None:
        for source, text in batch:
            if source in self._waiting:
                self._waiting[source] = max(0, self._waiting[source] - len(text))

"""The one exception tree of local-lambdas.

    LocalLambdasError
    ├── ManifestError          the manifest cannot be used; carries every Problem found
    ├── StartupError           the proxy cannot start (port in use, socket dir not creatable)
    │   ├── NotAllReady        `run`: some children did not become ready in time
    │   └── CommandNotRun      `run`: its command cannot be run (127 not found, 126 not runnable)
    ├── Stopped                `run`, `check`: a stop signal came as they started (128 + N)
    └── ForwardError           one request could not be answered by its child; maps to a status
        ├── PayloadTooLarge    413: the request body is over the route's <max_body_size>
        ├── ClientTooSlow      408: the client's body did not come on (--client-body-timeout)
        ├── ClientGone         499: the client left during its upload (nobody reads the answer)
        ├── BodyNotKept        500: a large body could not wait in a temporary file (spool.py)
        ├── NotReady           503: the child is starting, backing off, or FATAL
        ├── ChildUnreachable   502: refused, reset, or closed before a whole answer came back
        │   ├── NotConnected   the request never reached the child: any method may go again
        │   └── Stale          a kept connection gave nothing back: an idempotent request may go
        ├── BadResponse        502: the child answered something that is not a valid response
        │   └── NotAnAnswer    JSON of its own, none of the response object's keys in it
        └── ChildTimeout       504: no complete answer within the route's timeout

An envelope transport cancelled while its child had sent a whole answer it did not end as
its framing asks adds a note saying so to the CancelledError (PEP 678, `add_note`), which
goes on as it came: the 504's reason carries the note.

Foreign errors (OSError, aiohttp's ClientError, json's ValueError) are translated once, in
the module that calls the foreign code, with `raise ... from exc`.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from local_lambdas.config_values import shown_size


class LocalLambdasError(Exception):
    """Base of every error local-lambdas raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a manifest, with where and how to fix it; said on one line."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return one_line(f"{where}: {self.message}")


def one_line(text: str) -> str:
    """`text` with what would not show as itself written as escapes: control characters but
    tab (a value quoted from a manifest, "p\\nython3", stays on its line), and the invisible
    ones (a no-break or zero-width space or a byte order mark pasted with a value), which
    would have a quoted value look like the one it was meant to be."""
    if text.isprintable():
        return text
    # (ascii() of one character: \n, \x7f, \xa0, \u200b, as Python writes them.)
    return "".join(ch if ch.isprintable() or ch == "\t" else ascii(ch)[1:-1] for ch in text)


def closest(word: str, known: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The one of `known` a mistyped `word` was most likely meant as, if any is close enough.
    (difflib is loaded here, on the error path only: --help and a clean start never need it.)"""
    import difflib

    known = list(known)
    same = [name for name in known if name.casefold() == word.casefold()]
    if same:  # (HTTP for http: difflib compares characters, and finds none alike)
        return same[0]
    close = difflib.get_close_matches(word, known, n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(word: str, known: Iterable[str], shown: str = "{}", cutoff: float = 0.6) -> str:
    """Every error's hint for a mistyped name: "did you mean X? ", X the closest known name
    in the form `shown` gives it ("<{}>", "${{{}}}"); "" when no known name is close."""
    close = closest(word, known, cutoff)
    return f"did you mean {shown.format(close)}? " if close else ""


class ManifestError(LocalLambdasError):
    """The manifest cannot be used; `problems` lists every problem found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0))
        super().__init__("\n".join(str(p) for p in self.problems))


class StartupError(LocalLambdasError):
    """The proxy itself cannot start; the message is one line that says what to do."""


class NotAllReady(StartupError):
    """Some children did not become ready in time; what happened was logged."""


class CommandNotRun(StartupError):
    """`run`'s command could not be started; `status` is what a shell would exit with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Stopped(LocalLambdasError):
    """A stop signal came while `run` or `check` started: what had started was stopped in
    order; `status` is 128 + the signal, as a shell gives it."""

    def __init__(self, number: int) -> None:
        keys = {signal.SIGINT: "Ctrl+C", getattr(signal, "SIGBREAK", -1): "Ctrl+Break"}
        name = keys.get(number) or signal.Signals(number).name
        super().__init__(f"stopped by {name}")
        self.status = 128 + number


class ForwardError(LocalLambdasError):
    """A request could not be answered by its child. `status` is what the client gets."""

    status = 502

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(ForwardError):
    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the request body is over the route's limit of {shown_size(limit)} (<max_body_size>)"
        )


class ClientTooSlow(ForwardError):
    status = 408

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"no byte of the request body came for {seconds:g}s (--client-body-timeout)"
        )


class ClientGone(ForwardError):
    """The client left during its upload: its own doing, not the child's, so not said as a
    failure; counted 499, as nginx counts a client that closed its connection."""

    status = 499


class BodyNotKept(ForwardError):
    """A request body past BUFFERED could not be written to, or read back from, its
    temporary file (a full disk under TMPDIR): 500, as nginx answers when it cannot keep a
    body in its client_body_temp."""

    status = 500

    def __init__(self, why: str) -> None:
        super().__init__(f"the request body could not be kept in a temporary file: {why}")


class NotReady(ForwardError):
    status = 503


# The cause of a ChildUnreachable when the child took the request and closed the connection
# without a byte in answer, in every transport (an HTTP child serving HTTPS does: proxy.py
# then asks whether it does).
UNANSWERED: Final = "the child closed the connection without answering"
SHUTTING_DOWN: Final = "local-lambdas is shutting down"  # a 503's reason once a stop has begun


class ChildUnreachable(ForwardError):
    """The exchange broke before a whole answer came back. The proxy buffers answers, so the
    client has seen nothing yet: an idempotent request may be sent again."""

    status = 502


class NotConnected(ChildUnreachable):
    """The connection to the child could not be made: the request never reached it, so any
    method may be sent again (as nginx sends it to the next upstream)."""


class Stale(ChildUnreachable):
    """Nothing came back on a kept connection: the child may have closed it while it was
    idle, before the request reached it, so an idempotent request may go again on another."""


class BadResponse(ForwardError):
    status = 502

    def __init__(self, message: str, received: bytes = b"") -> None:
        super().__init__(message)
        self.received = received


class NotAnAnswer(BadResponse):
    """A JSON object with none of the response object's keys (a web server's own JSON): in
    `http` mode, a sign of a web server that wants pass-through, whatever its Content-Type."""


class UpgradeRefused(ForwardError):
    """The child answered a WebSocket handshake that aiohttp's side relays without switching
    protocols: its status when it refused (4xx, 5xx), else 502. (The lane relays its answer
    as it came.)"""

    def __init__(self, status: int) -> None:
        super().__init__(f"the child answered the WebSocket handshake with {status}, not 101")
        self.status = status if status >= 400 else 502


class ChildTimeout(ForwardError):
    status = 504


def add_note(exc: BaseException, note: str) -> None:
    """`exc.add_note(note)` (Python 3.11), on 3.10 too."""
    notes = getattr(exc, "__notes__", None)
    if notes is None:
        setattr(exc, "__notes__", [note])  # noqa: B010 (3.10's BaseException has no field)
    else:
        notes.append(note)


def notes(exc: BaseException) -> str:
    """The notes added to `exc`, "; " before each (for a message); "" when none."""
    return "".join(f"; {note}" for note in getattr(exc, "__notes__", ()))

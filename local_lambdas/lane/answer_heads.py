"""The heads of the answers the fast lane writes itself (envelope modes, errors, CORS
preflights): `AnswerHeads` writes each with the headers aiohttp would add, in its order, so
that the two servers' answers are the same (tests/units/test_answer_heads.py holds them
equal), and keeps the lines that do not change for a connection's next answer, which is
usually the same.
No I/O; compiled with the lane.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

from local_lambdas.lane.http1 import NO_BODY

_REASONS: Final = {status.value: status.phrase for status in HTTPStatus}


class AnswerHeads:
    """Writes the heads of one connection's answers: the given headers, then X-Request-Id
    (unless the headers carry it) and what aiohttp would add (Content-Length, a Content-Type
    for a body sent without one, Date, Server, Connection). A child answers with the same
    status and headers request after request: the lines that do not change are kept for the
    last ones written, and only the request's id, the body's length and the date are written
    anew."""

    __slots__ = (
        "_date", "_fixed", "_headers", "_keep", "_length", "_parts", "_sent", "_status",
        "_tail", "_to_id", "_version",
    )  # fmt: skip

    def __init__(self) -> None:
        self._status = 0
        self._headers: list[tuple[str, str]] | None = None
        self._version = ""
        self._sent = self._keep = False
        self._parts: tuple[str, bool, str, bool, str] = ("", False, "", False, "")
        # Encoded: the status line and headers; the head up to X-Request-Id's value; and
        # from the line after it to the end, for the last length and date (an answer's are
        # mostly the last one's).
        self._fixed = self._to_id = self._tail = b""
        self._length = -1
        self._date = ""

    def head(
        self, status: int, headers: list[tuple[str, str]], request_id: str | None, *,
        version: str, length: int, sent: bool, keep: bool, date: str,
    ) -> bytes:  # fmt: skip
        """`request_id` None: the headers carry it; `length` is the body's (a HEAD answer
        states it too); `sent`, whether it follows; `date`, the Date line an answer whose
        headers have none gets."""
        if (
            status != self._status or version != self._version or sent != self._sent
            or keep != self._keep or headers != self._headers
        ):  # fmt: skip
            parts, last = _fixed_lines(status, headers, version, sent, keep), self._parts
            if parts[1:] != last[1:]:  # (else only the headers changed: the tail stays)
                self._length = -1
            self._parts = parts
            self._status, self._headers, self._version = status, headers, version
            self._sent, self._keep = sent, keep
            self._fixed = parts[0].encode("utf-8")
            self._to_id = self._fixed + b"X-Request-Id: "
        if length != self._length or date is not self._date:
            _, counted, typed, dated, after = self._parts
            counted_line = f"Content-Length: {length}\r\n" if counted else ""
            self._tail = f"\r\n{counted_line}{typed}{'' if dated else date}{after}".encode()
            self._length, self._date = length, date
        if request_id is None:  # (CORS's answers: among their headers)
            return self._fixed + self._tail[2:]
        # (Three parts joined: 1,200 instructions less than a string formatted and encoded.)
        return b"".join((self._to_id, request_id.encode("utf-8"), self._tail))


_server: list[str] = []  # the line, once made


def _server_line() -> str:
    """The Server header aiohttp's side writes, for the lane's answers to match. Read when an
    answer is first written, not at import: a run loads aiohttp while its children start
    (lifecycle.py), and the supervisor's modules import this one. Made once: an import
    statement run for every answer whose headers change was a third of writing its head."""
    if not _server:
        from aiohttp.http import SERVER_SOFTWARE

        _server.append(f"Server: {SERVER_SOFTWARE}\r\n")
    return _server[0]


def _fixed_lines(
    status: int, headers: list[tuple[str, str]], version: str, sent: bool, keep: bool
) -> tuple[str, bool, str, bool, str]:
    """An answer head's lines that the request does not change: the status line and the
    headers; whether Content-Length is written; the Content-Type added after it; whether
    the headers have a Date; the lines after the Date and the head's end."""
    lines = [f"HTTP/{version} {status} {_REASONS.get(status, '')}\r\n"]
    typed = dated = named = False
    for name, value in headers:
        lines.append(f"{name}: {value}\r\n")
        lower = name.lower()
        typed = typed or lower == "content-type"
        dated = dated or lower == "date"
        named = named or lower == "server"
    after = "" if named else _server_line()
    if not keep and version == "1.1":
        after += "Connection: close\r\n"
    elif keep and version == "1.0":
        after += "Connection: keep-alive\r\n"
    added = "Content-Type: application/octet-stream\r\n" if sent and not typed else ""
    return "".join(lines), status not in NO_BODY, added, dated, after + "\r\n"

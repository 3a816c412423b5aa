"""Request ids: the X-Request-Id every request carries to its child, its answer, the access
log and the inspector. The client's own when it is usable (printable ASCII, 1 to 200
characters), else one made here: unique within the run and cheap (a random prefix per run,
then a count in hex)."""

from __future__ import annotations

import re
import secrets
from typing import Final

_CLIENT_ID: Final = re.compile(r"^[\x21-\x7e]{1,200}$")
_LOW_DIGITS: Final = [f"{n:02x}" for n in range(256)]


class RequestIds:
    """One run's request ids (Proxy.ids, asked by both servers)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._count = 0
        self._high = f"{self._prefix}000000"  # new_id's first six digits

    def new_id(self) -> str:
        """The run's prefix and a count in hex. Formatting an int cost 4k instructions per
        request; only its last two digits change each time, from a table."""
        count = self._count = self._count + 1
        low = count & 0xFF
        if low == 0:
            self._high = f"{self._prefix}{count >> 8:06x}"
        return self._high + _LOW_DIGITS[low]

    def identify(self, given: str | None, headers: list[tuple[str, str]]) -> str:
        """The request's id: the client's X-Request-Id when it is usable, else a new one,
        which replaces the client's in the headers the child will see."""
        if given is not None and _CLIENT_ID.match(given):
            return given
        request_id = self.new_id()
        if given is not None:
            headers[:] = [(k, v) for k, v in headers if k.lower() != "x-request-id"]
        headers.append(("X-Request-Id", request_id))
        return request_id

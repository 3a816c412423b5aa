"""The exchange pass-through uses (transports/upstream.py): a Bare exchange
(transports/exchange.py) whose answer's headers are read, as sent, for the sink to relay."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httptools

from local_lambdas.transports.exchange import Bare

if TYPE_CHECKING:
    from local_lambdas.transports.upstream import Upstream


class Exchange(Bare):
    """A Bare exchange whose answer's headers are read, as sent, for the sink: pass-through
    relays them. A child answers with the same head again and again (the same status and
    headers; its Date changes once a second): an answer that begins with the last one's
    head, byte for byte, is read by a second parser that calls nothing per header, and has
    the last one's headers (10k instructions a request, 13% of the mode's); one that came
    whole in one read is read by none (Bare._whole)."""

    def __init__(self, upstream: Upstream) -> None:
        super().__init__(upstream)
        self._repeat = httptools.HttpResponseParser(_Repeated(self))  # (_reader: on_header)
        self._repeat.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        self._last: tuple[list[tuple[str, str]], str, int] = ([], "", 0)

    def repeated(self) -> None:
        """The head of an answer read by the second parser: the last one's."""
        self._repeat_head()
        self._headers_complete(self._last_status)

    def _repeat_head(self) -> None:
        self._reason = self._last_reason
        headers, self._coding, self._head_size = self._last
        self._headers = headers

    def _keep(self, status: int) -> None:
        """Keep the head's headers too (a copy: a chunked answer's trailers are added to
        `_headers`). A head another connection to the child kept already gives its list: a
        client connection compares an answer's headers with the last it relayed
        (relay.RelayedHeads), and an answer on another child connection than the last one
        then has the same tuples, equal by identity (1.7k instructions a request at 64
        connections, 3% of the mode's), not string by string."""
        super()._keep(status)
        headers, head, upstream = self._headers.copy(), self._last_head, self._upstream
        if head:
            shared_head, shared = upstream.heads
            if shared_head == head:
                # This answer's too (a list of its own, for its trailers).
                headers, self._headers = shared, shared.copy()
            else:
                upstream.heads = (head, headers)
        self._last = (headers, self._coding, self._head_size)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value)
        # Values as the child wrote them, UTF-8 or not: written out again, they are the
        # same bytes (relay.Answer encodes with surrogateescape too).
        text = value.decode("utf-8", "surrogateescape")
        self._headers.append((name.decode("latin-1"), text))
        if len(name) == 17 and name.lower() == b"transfer-encoding":
            self._coding += f",{text}"

    def _close_delimited(self) -> bool:
        return not any(
            k.lower() in ("content-length", "transfer-encoding") for k, _ in self._headers
        )


class _Repeated:
    """The second parser's callbacks (Exchange): none per header, none for the status's
    reason; the rest are the exchange's."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    def on_message_begin(self) -> None:
        self._exchange.on_message_begin()

    def on_headers_complete(self) -> None:
        self._exchange.repeated()

    def on_body(self, body: bytes) -> None:
        self._exchange.on_body(body)

    def on_message_complete(self) -> None:
        self._exchange.on_message_complete()

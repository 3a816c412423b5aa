"""One connection to a pass-through child in raw HTTP/1.1, carrying one exchange at a time
for the pool (upstream.Upstream): the answer read, parsed by httptools (llhttp), and handed
on to a `Sink` as it comes (transports/sink.py); the exchange's course (the request out, a
streaming body, the time limit, its end) is exchanging.py's.

The answer goes to the sink as its head (status, reason, headers as sent), its body in
pieces, its end. Before the head, failures raise the transport errors (ChildUnreachable:
nothing came back, safe to send again unless a body streamed, `Stale` when the connection
was a kept one; ChildTimeout: no head within <timeout>, never sent again; BadResponse: not
HTTP, or more than the upstream takes); once the head is out, the sink is told to break the
client's connection instead. While the sink cannot take more, the child's connection stops
being read. 1xx answers are skipped; the answer to a HEAD request ends with its head. An
`upgrade` request answered 101 ends the exchange there: the connection is the sink's from
then on (`Sink.upgraded`), never pooled again. An answer that comes whole in one read with
the last answer's head, byte for byte (a child repeats its head; the size its
Content-Length gives), is taken without the parser. A kept connection carries the next
request only while the child would still keep it (ChildConnection.fresh, the limit from
answer_head.idle_limit). The connection itself (its socket's options, reading paused and
resumed) is child_connection.py's; the rules an answer's head must keep, answer_head.py's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httptools

from local_lambdas.envelope import MAX_HEAD  # an answer's head, with any 1xx before it
from local_lambdas.errors import UNANSWERED, BadResponse, ChildUnreachable, Stale
from local_lambdas.forwarding import has_control
from local_lambdas.transports.answer_head import (
    close_delimited,
    head_problem,
    idle_limit,
    kept_head,
    not_http,
)
from local_lambdas.transports.exchanging import Exchanging

if TYPE_CHECKING:
    from local_lambdas.transports.upstream import Upstream


class Bare(Exchanging):
    """One connection to the child, carrying one exchange at a time; the answer's headers
    are not read (its sink's `head` gets none). For the `http` envelope, which needs only
    the answer's status and body: made without an `on_header` method, httptools calls
    nothing per header (10k instructions a request, 11% of the mode's). What the headers
    must still say is read from the head's bytes when needed (answer_head.py): whether a body
    ends with the connection, what an answer that is not an envelope was.
    """

    def __init__(self, upstream: Upstream) -> None:
        super().__init__(upstream)
        self._parser = httptools.HttpResponseParser(self)
        # The parser of an answer whose head is the last one's (`_repeats`), and of any other:
        # the same one here; Exchange (exchange_headers.py) has a second, which calls nothing
        # per header.
        self._repeat = self._reader = self._parser
        # Lines ended by a bare LF, as a shell script's printf writes them: nginx and aiohttp's
        # client read them, and the client never sees them (the lane writes its own head).
        self._parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        self._head_size = 0  # of the headers so far
        self._coding = ""  # the answer's Transfer-Encoding, if it has one
        self._reason_bytes = b""  # the reason phrase as read so far
        # The last answer's head, when it came whole at the start of its first read, with
        # its status and reason; and the size of an answer with that head and the body its
        # Content-Length gives, on a kept connection (else -1): a read of just that size
        # beginning with that head is such an answer, taken without the parser (`_whole`).
        self._last_head = b""
        self._last_status = 0
        self._last_reason = ""
        self._last_size = -1
        self._repeats = False  # this answer began with the last one's head

    # -- asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        if self._done is None:  # bytes nobody asked for: out of step for good
            self._out_of_step()
            return
        if not self._got:
            head = self._last_head
            repeats = self._repeats = len(head) > 0 and data.startswith(head)
            if repeats and len(data) == self._last_size and not (self._head_only or self._upgrade):
                self._whole(data, len(head))
                return
            self.first = data
            self._parser = self._repeat if repeats else self._reader
        self._got += len(data)
        self._progress = self.loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self._upgrade and self._parser.get_status_code() == 101:
                self._hand_over(data[upgrade.args[0] :])
            else:
                self._fail(self._bad("the child switched protocols unasked"),
                           "the child switched protocols unasked")  # fmt: skip
        except httptools.HttpParserError as exc:
            what = " ".join(str(exc).split())
            if self._done.done():
                self._upstream.unasked()
            self._fail(self._bad(not_http(self.first, what)),
                       f"the child's answer broke HTTP mid-way: {what}")  # fmt: skip
            return
        if not self._headed and self._got > MAX_HEAD and not self._lost:  # a head without end
            self._fail(self._bad(f"the child's answer head is over {MAX_HEAD // 1024} KiB"), "")
            return
        if self._got > self._upstream.most:  # (never read on past: one that never ends)
            self._fail(self._bad(f"the answer is over {self._upstream.most} bytes"),
                       f"the answer is over {self._upstream.most} bytes")  # fmt: skip
            return
        sink = self._sink
        if sink is not None:
            sink.flush()
        done = self._done
        if self._socket is not None and done is not None and not done.done():
            self.acknowledge()  # more of the answer to come: what came is, now

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        done = self._done
        if done is not None and not done.done() and self._got == 0 and self._body is not None:
            self._answered_early()
        self._forget_socket()
        if done is None or done.done():
            return
        if self._headed and self._close_delimited():
            self._finish()  # an answer without a length ends with the connection
            return
        reason = getattr(exc, "strerror", None) or exc or "closed"
        body = self._body
        if self._got == 0 and body is not None and not body.complete:
            # (Not Stale: a body that began to stream is never sent again.)
            self._fail(ChildUnreachable(
                f"the child closed the connection before it had read the request body ({reason})"
            ), "")  # fmt: skip
        elif self._got == 0 and not self._headed:
            self._fail(Stale(f"{UNANSWERED} ({reason})"), "")
        else:
            self._fail(None, f"the child's answer broke off: {reason}")

    def _answered_early(self) -> None:
        """Read what the child answered before it hung up on a body it had not read (a 413
        or a 401 to an upload, the body left unread): writing the rest of the body met its
        reset before the loop read the answer, which the kernel still holds. Read through
        the socket's duplicate (child_connection.py), as curl reads it after a failed send."""
        sock, self._socket = self._socket, None  # (no TCP_QUICKACK on it as it is read)
        try:
            while sock is not None and self._done is not None and not self._done.done():
                data = sock.recv(65536)
                if not data:
                    break
                self.data_received(data)
        except OSError:  # nothing more: EAGAIN, or the reset itself
            pass
        finally:
            self._socket = sock

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        done = self._done
        if done is None or done.done():
            # Another answer after the one asked for (more than its Content-Length, or a
            # body after a 204): the connection is out of step, never to be used again, and
            # nothing of this answer goes anywhere.
            self._out_of_step()
            return
        self._headers = []
        self._head_size = 0
        self._coding = ""
        self._reason_bytes = b""

    def _out_of_step(self) -> None:
        self._upstream.unasked()
        self._lost, self.reusable, self._sink = True, False, None
        self._headers = []  # the answer's, handed on, is not added to
        self.close()

    def _bad(self, why: str) -> BadResponse:
        """An answer that is not HTTP, with its first bytes for the log."""
        return BadResponse(why, self.first)

    def on_status(self, status: bytes) -> None:
        # In pieces when the status line spans reads (a child writing its head in parts).
        self._reason_bytes += status

    def on_headers_complete(self) -> None:
        # The reason as sent, UTF-8 or not (written out again, the same bytes), unless a
        # control character in it would break the client's head: aiohttp refuses to write
        # one, and nginx's parser takes them.
        reason = self._reason_bytes.decode("utf-8", "surrogateescape")
        if has_control(reason):
            self._fail(self._bad("the child's answer has a control character in its status "
                                 "line's reason"), "")  # fmt: skip
            return
        self._reason = reason
        self._headers_complete(self._parser.get_status_code())

    def _headers_complete(self, status: int) -> None:
        if 100 <= status < 200:
            return  # informational (103 Early Hints): the final answer follows
        if self._sink is None:
            return  # out of step (on_message_begin)
        problem = head_problem(status, self._head_size, self._coding)
        if problem is not None:
            self._fail(self._bad(problem), "")
            return
        self._headed = True
        if not self._repeats:
            self._keep(status)
        self._sink.head(status, self._reason, self._headers)
        if self._head_only:
            # A HEAD answer has no body whatever its Content-Length says; the parser
            # cannot be told, so this connection is not used again.
            self._finish(reusable=False)

    def _keep(self, status: int) -> None:
        """Keep the head of an answer that came whole at the start of its first read, and
        the size an answer with it has (see __init__)."""
        head, self._last_size = kept_head(self.first, status, self._parser.should_keep_alive())
        self._last_head = head
        self._idle_limit = idle_limit(self.first)
        if head:
            self._last_status, self._last_reason = status, self._reason

    def _whole(self, data: bytes, at: int) -> None:
        """An answer that came whole in one read with the last one's head (the first `at`
        bytes): handed on as the parser would hand it, without it (it stays where an answer
        begins)."""
        self.first = data
        self._got = len(data)
        self.on_message_begin()
        self._repeat_head()
        self._headers_complete(self._last_status)
        if at < len(data):
            self.on_body(data[at:])
        self._finish(reusable=True)
        sink = self._sink
        if sink is not None:
            sink.flush()

    def _repeat_head(self) -> None:
        """What the last answer's head said, for one read without a parser."""
        self._reason = self._last_reason

    def on_body(self, body: bytes) -> None:
        sink = self._sink
        if sink is None or self._done is None or self._done.done():
            return
        sink.body(body)
        if not sink.writable:
            self.pause_reading()
            sink.when_writable(self.resume_reading)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            return
        if self._done is not None and not self._done.done():
            self._finish(reusable=self._parser.should_keep_alive())

    def _close_delimited(self) -> bool:
        """Whether the answer's body ends with the connection (answer_head.close_delimited)."""
        return close_delimited(self.first)

"""What the proxy prints (output.py, access_log.py, stats.py): a child's lines as a terminal
leaves them, access lines, tables, counts and latencies."""

from __future__ import annotations

import bisect
import errno
import io
import json
import logging
import os
import socket
import sys
import warnings

import pytest
from rich.cells import cell_len

from local_lambdas import (
    binding,
    output,
)
from local_lambdas._compat import listeners
from local_lambdas.access_log import AccessLog
from local_lambdas.output import Printer, line_text
from local_lambdas.stats import BUCKETS, ProcessStats
from local_lambdas.supervision import spawned
from tests.helpers import eventually

# What a child writes, read by read ("" between reads: a quiet longer than the wait to show an
# unended line) -> the lines shown.
SHOWN_AS_WRITTEN = {
    "lines": (["a\nb\n"], ["a", "b"]),
    "a prompt, answered": (["Seed? [y/N] ", "", "y\n"], ["Seed? [y/N] ", "y"]),
    "a progress bar ended": (
        ["\rDone 50%", "", "\rDone 100%", "", "\nnext\n"],
        ["\rDone 50%", "\rDone 100%", "next"],
    ),
    "its CRLF split": (["ask ", "", "\r", "\nnext\r\n"], ["ask ", "next\r"]),
    "a line ended at once": (["ask ", "\n"], ["ask "]),
    "an empty line after": (["ask ", "", "\n\nnext\n"], ["ask ", "", "next"]),
}


@pytest.mark.parametrize("case", SHOWN_AS_WRITTEN)
async def test_a_line_shown_before_its_end_is_ended_by_what_follows(case: str) -> None:
    """A line shown before its end (spawned.py: a prompt, a progress bar's last state) is not
    followed by an empty line when its end comes, as in a terminal."""
    reads, expected = SHOWN_AS_WRITTEN[case]
    shown: list[bytes] = []
    protocol = spawned.Spawned(lambda _, lines: shown.extend(lines), "mark", None)
    for data in reads:
        if data:
            protocol.pipe_data_received(1, data.encode())
        else:
            protocol._show_unended(1)  # (what its timer does after a quiet)
    protocol._stop_waiting(1)
    assert [line.decode() for line in shown] == expected


@pytest.mark.parametrize(("columns", "row"), [
    ("200", "  /api/*   api       /tmp/local-lambdas-0123abcd/api"),
    # A terminal narrower than the table (a split pane): a line a row, the values whole,
    # where rich cut them ("/tmp/local-lam…").
    ("40", "  /api/*: process api, address /tmp/local-lambdas-0123abcd/api"),
])  # fmt: skip
def test_a_table_wider_than_its_terminal_cuts_no_value(
    columns: str, row: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setenv("NO_COLOR", "1")  # a terminal, without colours to strip
    out = io.StringIO()
    printer = Printer(color=True, file=out)
    printer.table("serving on http://x", ["routes", "process", "address"],
                  [["/api/*", "api", "/tmp/local-lambdas-0123abcd/api"]])  # fmt: skip
    printer.flush()
    lines = out.getvalue().splitlines()
    assert lines[0] == "serving on http://x" and row in lines, lines


def test_output_is_written_where_no_thread_can_be_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At the system's limit on processes (ulimit -u, a container's pids.max) no thread
    starts: the proxy's output went nowhere, with a "--- Logging error ---" traceback for
    each line. It is written as it comes, and by the thread once one starts."""
    import threading

    start = threading.Thread.start

    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    out = io.StringIO()
    printer = Printer(color=False, file=out)
    monkeypatch.setattr(threading.Thread, "start", refused)
    printer.table("one", ["column"], [["1"]])
    assert out.getvalue().startswith("one\n"), out.getvalue()
    monkeypatch.setattr(threading.Thread, "start", start)
    printer.table("two", ["column"], [["2"]])
    printer.flush()
    assert "\ntwo\n" in out.getvalue(), out.getvalue()


def test_process_stats_count_by_status_and_bucket_as_bisect_does() -> None:
    stats = ProcessStats()
    latencies = [0.0, 0.0005, 0.0007, 0.001, 0.3, 10.0, 10.5, 99.0]
    for status, seconds in zip([200, 200, 404, 502, 599, 100, 99, 700], latencies, strict=True):
        stats.record(status, seconds)
    assert stats.by_status == {200: 2, 404: 1, 502: 1, 599: 1, 100: 1, 99: 1, 700: 1}
    assert (stats.requests, stats.errors) == (8, 3)
    expected = [0] * (len(BUCKETS) + 1)
    for seconds in latencies:
        expected[bisect.bisect_left(BUCKETS, seconds)] += 1
    assert stats.bucket_counts == expected
    assert stats.bucket_counts[-1] == 2  # +Inf: above the last bound


def test_process_stats_percentiles_are_of_the_last_2048_requests() -> None:
    stats = ProcessStats()
    assert stats.percentile_ms(0.5) is None
    for _ in range(2048):
        stats.record(200, 1.0)  # 1 s each: all of them pushed out by what follows
    for n in range(3000):
        stats.record(200, n / 1000)  # n ms
    # The last 2048: 952 to 2999 ms.
    assert stats.percentile_ms(0.0) == 952.0
    assert stats.percentile_ms(0.5) == 952.0 + 1024
    assert stats.percentile_ms(1.0) == 2999.0
    assert stats.requests == 5048


@pytest.mark.parametrize(("printed", "shown"), [
    (b"plain", "plain"), (b"windows line\r", "windows line"),
    (b"\rbuilding 0%\rbuilding 50%\rbuilding 100%", "building 100%"),  # a progress bar
    (b"caf\xe9", "caf\ufffd"),  # not UTF-8
])  # fmt: skip
def test_a_childs_line_is_shown_as_a_terminal_leaves_it(printed: bytes, shown: str) -> None:
    assert line_text(printed) == shown


@pytest.mark.parametrize(("printed", "in_text", "plain"), [
    ("\x1b[2J\x1b[3J\x1b[H\x1b[32mready\x1b[0m", "\x1b[32mready\x1b[0m", "ready"),  # Vite's start
    ("\x1b[1;31mError\x1b[m: no", "\x1b[1;31mError\x1b[m: no", "Error: no"),
    ("\x07bell \x1b]0;a title\x07done", "bell done", "bell done"),  # BEL, OSC ended by BEL
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link", "link"),  # OSC 8, ended by ST
    ("up\x1b[1A\x1b[2Kover", "upover", "upover"), ("cut \x1b[12", "cut 12", "cut 12"),
    ("reset\x1bc", "reset", "reset"), ("a\tb\x00\x7f\u009b", "a\tb", "a\tb"),
    ("caf\u00e9 \u2713", "caf\u00e9 \u2713", "caf\u00e9 \u2713"),
])  # fmt: skip
def test_a_childs_escapes_are_colours_or_nothing(printed: str, in_text: str, plain: str) -> None:
    """No child can clear the screen, move the cursor or retitle the window of the terminal
    the proxy prints to; its colours stay in text, and go from the dashboard's lines."""
    assert output.for_terminal(printed) == in_text
    assert output.plain(printed) == plain


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc tells who listens")
def test_who_holds_a_port_is_told_without_leaving_proc_open() -> None:
    """listeners.port_holder names the process listening on a port, this one here, and
    closes its walk of /proc though it stops at the first holder."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            holder = listeners.port_holder(server.getsockname()[1])
    assert holder is not None and holder.startswith(f"pid {os.getpid()} ("), holder
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_access_lines_as_each_log_format_writes_them() -> None:
    """One line for each request, in the order answered, handed on together a moment later
    (access_log._GATHER) or as soon as anything else is printed: plain (the name column as
    wide as the Printer says), in colour by status class, or one JSON object; the dashboard's
    tap hears each at once."""
    written: list[str] = []
    tapped: list[tuple[str, str, str, str]] = []
    plain = AccessLog(written.append, source="local-lambdas", json=False, ansi=False)
    plain.tap = lambda *line: tapped.append(line)
    plain.line("GET", "/api/x?y=1", "api", 200, 0.00125, "r1")
    plain.widen(15)
    plain.line("POST", "/nope", None, 404, 2.5, "r2")
    assert written == [] and len(tapped) == 2  # (the output thread is not woken for each)
    assert await eventually(lambda: bool(written), 5)
    assert written == [
        "local-lambdas | 200 GET /api/x?y=1 -> api 1.3 ms [r1]\n"
        "local-lambdas   | 404 POST /nope -> - 2500.0 ms [r2]\n"
    ]
    assert tapped == [
        ("local-lambdas", "access", "200 GET /api/x?y=1 -> api 1.3 ms [r1]", "green"),
        ("local-lambdas", "access", "404 POST /nope -> - 2500.0 ms [r2]", "yellow"),
    ]
    coloured: list[str] = []
    AccessLog(coloured.append, source="ll", json=False, ansi=True).line(
        "GET", "/", "web", 502, 0.0, "r3"
    )
    machine: list[str] = []
    AccessLog(machine.append, source="ll", json=True, ansi=False).line(
        "GET", "/a", "api", 301, 0.0123456, "r4"
    )
    assert await eventually(lambda: bool(coloured and machine), 5)
    assert coloured == ["\x1b[1mll\x1b[0m | \x1b[31m502 GET / -> web 0.0 ms [r3]\x1b[0m\n"]
    record = json.loads(machine[0])
    assert record.pop("time") > 0
    assert record == {"event": "access", "method": "GET", "uri": "/a", "process": "api",
                      "status": 301, "ms": 12.346, "request_id": "r4"}  # fmt: skip


def test_a_port_windows_keeps_for_itself_is_said_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows refuses ports in the ranges Hyper-V, WSL or Docker reserved with WSAEACCES
    (errno 13), 3000 among them on some machines. The platform is patched: neither this
    machine nor Wine reserves ports, so the refusal cannot be made real here."""
    monkeypatch.setattr(binding, "IS_WINDOWS", True)
    refused = OSError(errno.EACCES, "An attempt was made to access a socket in a way "
                      "forbidden by its access permissions")  # fmt: skip
    said = str(binding._cannot_listen("127.0.0.1", 3000, refused))
    assert said.startswith(
        "cannot listen on 127.0.0.1:3000: permission denied (Windows keeps "
        "some ports for itself: netsh interface ipv4 show excludedportrange "
        "protocol=tcp lists them); choose another with --port PORT"
    ), said


def test_names_line_up_as_a_terminal_shows_them() -> None:
    """A name of wide characters (CJK: two columns each) pads to the same column as the
    others: the bars line up."""
    shown = io.StringIO()
    printer = Printer(file=shown, color=False)
    for name in ("日本", "api", "a-long-name"):
        printer.register(name)
        printer.child_lines(name, "stdout", [b"up"])
    printer.flush()
    bars = [cell_len(line.partition(" | ")[0]) for line in shown.getvalue().splitlines()]
    assert len(bars) == 3 and len(set(bars)) == 1, shown.getvalue()


async def test_access_lines_keep_their_place_among_the_other_lines() -> None:
    """The access lines gathered go out before any line printed after them: a child's, an
    event, and at a flush."""
    shown = io.StringIO()
    printer = Printer(file=shown, color=False)
    printer.register("api")
    printer.access_log.line("GET", "/a", "api", 200, 0.001, "r1")
    printer.child_lines("api", "stdout", [b"after r1"])
    printer.access_log.line("GET", "/b", "api", 200, 0.001, "r2")
    printer.event(logging.WARNING, "after r2")
    printer.access_log.line("GET", "/c", "api", 200, 0.001, "r3")
    printer.flush()
    lines = shown.getvalue().splitlines()
    assert [line.split(" | ")[1] for line in lines] == [
        "200 GET /a -> api 1.0 ms [r1]", "after r1", "200 GET /b -> api 1.0 ms [r2]",
        "after r2", "200 GET /c -> api 1.0 ms [r3]",
    ]  # fmt: skip

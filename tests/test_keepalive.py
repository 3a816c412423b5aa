"""Keep-alive pipes: connections reused, bounded, and never reused after a broken exchange."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Running, WriteManifest, process_xml, running


def keepalive(extra: str = "") -> str:
    return process_xml("svc", "/api/*", mode="pipe-keepalive", extra=extra)


async def get(run: Running, path: str, method: str = "GET") -> tuple[int, dict[str, Any]]:
    async with run.http.request(method, run.url + path) as reply:
        body = await reply.read()
        return reply.status, (json.loads(body) if reply.status == 200 else {"raw": body})


async def test_one_connection_carries_many_requests(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(keepalive())
    async with running(path, socket_dir) as run:
        seen = [(await get(run, "/api/x"))[1] for _ in range(5)]
    assert {s["conn"] for s in seen} == {1}
    assert [s["seq"] for s in seen] == [1, 2, 3, 4, 5]


async def test_connections_are_bounded_by_concurrency(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(keepalive("<concurrency>2</concurrency>"))
    async with running(path, socket_dir) as run:
        answers = await asyncio.gather(*(get(run, "/api/x") for _ in range(20)))
    assert all(status == 200 for status, _ in answers)
    assert len({seen["conn"] for _, seen in answers}) <= 2


async def test_timed_out_connection_is_not_reused(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(keepalive("<timeout>1s</timeout>"))
    async with running(path, socket_dir) as run:
        first = (await get(run, "/api/x"))[1]["conn"]
        status, _ = await get(run, "/api/late", "POST")
        assert status == 504
        # Were the connection reused, this would read the late answer meant for the other.
        status, seen = await get(run, "/api/x")
    assert status == 200 and seen["uri"] == "/api/x"
    assert seen["conn"] != first


async def test_connection_closed_mid_exchange_is_replaced(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(keepalive())
    async with running(path, socket_dir) as run:
        first = (await get(run, "/api/x"))[1]["conn"]
        status, error = await get(run, "/api/close", "POST")
        assert status == 502 and b"closed the connection" in error["raw"]
        status, seen = await get(run, "/api/x", "POST")
    assert status == 200 and seen["conn"] != first


async def test_invalid_answer_keeps_the_framing(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(keepalive())
    async with running(path, socket_dir) as run:
        assert (await get(run, "/api/garbage"))[0] == 502
        status, seen = await get(run, "/api/x")
    assert status == 200 and seen["seq"] == 2  # the same connection, still in step


async def test_a_line_no_request_asked_for_is_said_and_never_taken_as_an_answer(
    write_manifest: WriteManifest, socket_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_manifest(keepalive())
    async with running(path, socket_dir) as run:
        status, seen = await get(run, "/api/twice")
        assert status == 200 and seen["uri"] == "/api/twice"
        for number in range(3):  # the extra line is never the answer to another request
            status, seen = await get(run, f"/api/x{number}")
            assert status == 200 and seen["uri"] == f"/api/x{number}", seen
    said = [r.getMessage() for r in caplog.records if "no request asked for" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith('svc: the child sent b\'{"status": 200'), said  # as it came
    assert said[0].endswith("answer each request line with exactly one line")


async def test_blank_lines_between_answers_are_no_answers_and_keep_the_connection(
    write_manifest: WriteManifest, socket_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A child that prints each answer with a newline of its own (Python's
    `print(json.dumps(answer) + "\\n")`) sends a blank line after each: skipped, the
    connection kept and in step (each had cost a new connection, and a warning)."""
    path = write_manifest(keepalive())
    async with running(path, socket_dir) as run:
        first = await get(run, "/api/blank")
        second = await get(run, "/api/blank")
        third = await get(run, "/api/x")
    assert [status for status, _ in (first, second, third)] == [200, 200, 200]
    assert [seen["uri"] for _, seen in (first, second, third)] == ["/api/blank"] * 2 + ["/api/x"]
    assert {seen["conn"] for _, seen in (first, second, third)} == {first[1]["conn"]}
    assert "no request asked for" not in caplog.text


@pytest.mark.parametrize(
    ("action", "said", "hinted"),
    [
        ("pretty", b"unexpected end of data", True),  # json.dumps(indent=2) in a keep-alive child
        ("trailing", b"unexpected content after document", False),  # a whole object, then more
    ],
)
async def test_an_answer_spread_over_lines_is_named_as_such(
    write_manifest: WriteManifest, socket_dir: Path, action: str, said: bytes, hinted: bool
) -> None:
    """A line the parser ran out of inside its JSON: the 502 says why, not only "not JSON".
    A line with more after its JSON is not taken for a cut one."""
    path = write_manifest(keepalive())
    async with running(path, socket_dir) as run:
        status, error = await get(run, f"/api/{action}")
    assert status == 502 and said in error["raw"]
    hint = b"its answer line ended inside the JSON; in pipe-keepalive each answer is one line"
    assert (hint in error["raw"]) is hinted


async def test_a_keep_alive_child_in_one_shot_mode_answers_at_once(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A child written for the line framing alone, put in `pipe` mode: it answers with a
    line and keeps the connection open for the next; the whole JSON line is its answer,
    not a wait for a close that never comes (<timeout>, then 504)."""
    path = write_manifest(process_xml("svc", "/api/*", mode="pipe", args=("--lines",),
                                      extra="<timeout>5s</timeout>"))  # fmt: skip
    async with running(path, socket_dir) as run:
        started = asyncio.get_running_loop().time()
        answers = [await get(run, f"/api/x{number}") for number in range(3)]
        took = asyncio.get_running_loop().time() - started
    assert [(status, seen["uri"]) for status, seen in answers] == [
        (200, f"/api/x{number}") for number in range(3)
    ]
    assert took < 4  # three answers, none waited out its 5 s <timeout>

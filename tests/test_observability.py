"""Seeing and scripting: admin endpoints, metrics, JSON logs, request ids, `run`, `check --boot`."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path
from typing import cast
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

from local_lambdas import __version__
from local_lambdas.admin.endpoints import Admin
from local_lambdas.binding import is_loopback
from tests.helpers import (
    WriteManifest,
    cli,
    connect,
    eventually,
    process_xml,
    run_main,
    running,
    worker_xml,
)


def _from_another_host(path: str) -> web.BaseRequest:
    """A GET of `path` as a client from another host sends it: aiohttp's mocked request with
    that peer address (tests reach loopback only)."""
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda key, default=None: (
        ("192.0.2.7", 40000) if key == "peername" else default
    )
    return make_mocked_request("GET", path, transport=transport)


def fatal_process(tmp_path: Path, pid: str = "broken") -> str:
    script = tmp_path / f"{pid}.py"
    script.write_text("import sys\nprint('missing API_KEY', file=sys.stderr)\nsys.exit(9)\n")
    return (
        f"<process><id>{pid}</id><executable>{sys.executable}</executable>"
        f"<arg>{script}</arg><route>/{pid}/*</route><start_retries>1</start_retries>"
        "</process>"
    )


async def test_endpoints_report_known_states(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    path = write_manifest(process_xml("good", "/good/*"), fatal_process(tmp_path))
    async with running(path, socket_dir, wait=False) as run:
        broken = run.pool("broken")
        assert await broken.wait_for(lambda: broken.instances[0].state.value == "FATAL", 10)
        assert await run.pool("good").wait_ready(10)
        for _ in range(3):
            async with run.http.get(run.url + "/good/x") as reply:
                assert reply.status == 200
        async with run.http.get(run.url + "/broken/x") as reply:
            assert reply.status == 503

        async with run.http.get(run.url + "/_/health") as reply:
            assert reply.status == 200 and (await reply.json())["status"] == "ok"
        async with run.http.get(run.url + "/_/ready") as reply:
            assert reply.status == 503
            ready = await reply.json()
        assert ready["ready"] is False and list(ready["not_ready"]) == ["broken"]
        assert ready["not_ready"]["broken"].startswith("FATAL: gave up")
        # A loopback client (a CI job's probe) is told the line that says why; a client from
        # another host, which /_/ready answers too, is not: a child's output may hold secrets.
        assert ready["not_ready"]["broken"].endswith("; its last output: missing API_KEY")
        remote = _from_another_host("/_/ready")
        answer = await Admin(run.supervisor, "/_/").handle(remote, "/_/ready")
        told = json.loads(cast(web.Response, answer).text or "")["not_ready"]["broken"]
        assert told == ready["not_ready"]["broken"].partition("; its last output")[0]

        async with run.http.get(run.url + "/_/status") as reply:
            status = (await reply.json())["processes"]
        good, bad = status["good"], status["broken"]
        assert good["state"] == "READY" and good["requests"] == 3 and good["errors"] == 0
        assert good["instances"][0]["pid"] == run.child("good").pid
        assert good["latency_ms"]["p50"] > 0 and good["mode"] == "pipe"
        assert bad["state"] == "FATAL" and bad["requests"] == 1 and bad["errors"] == 1
        # The process says why, as /_/ready does, less the state; a ready one says nothing.
        assert bad["reason"] == ready["not_ready"]["broken"].removeprefix("FATAL: ")
        assert good["reason"] is None
        assert bad["instances"][0]["last_exit_code"] == 9
        assert bad["instances"][0]["restarts"] == 1
        assert bad["instances"][0]["pid"] is None  # gone: its number may be another's now

        async with run.http.get(run.url + "/_/metrics") as reply:
            assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await reply.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("local_lambdas_requests_total", (("process", "good"), ("status", "200")))] == 3
    assert (
        samples[("local_lambdas_requests_total", (("process", "broken"), ("status", "503")))] == 1
    )
    assert samples[("local_lambdas_request_duration_seconds_count", (("process", "good"),))] == 3
    assert samples[("local_lambdas_process_up", (("process", "good"),))] == 1
    assert samples[("local_lambdas_process_up", (("process", "broken"),))] == 0
    assert samples[("local_lambdas_restarts_total", (("process", "broken"),))] == 1
    assert samples[("local_lambdas_in_flight", (("process", "good"),))] == 0
    assert samples[("local_lambdas_queue_depth", (("process", "good"),))] == 0


async def test_ready_turns_200_when_all_are_ready(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("a", "/a/*"), process_xml("b", "/b/*", mode="http"))
    async with running(path, socket_dir) as run, run.http.get(run.url + "/_/ready") as reply:
        assert reply.status == 200
        assert await reply.json() == {"ready": True, "not_ready": {}}


async def test_unknown_admin_endpoint_and_method_are_explained(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("svc", "/*"))  # a catch-all does not shadow /_/
    async with running(path, socket_dir) as run:
        async with run.http.get(run.url + "/_/nope") as reply:
            assert reply.status == 404
            assert "/_/health, /_/ready, /_/status, /_/metrics" in (await reply.json())["error"]
        async with run.http.post(run.url + "/_/health") as reply:
            assert reply.status == 405 and reply.headers["Allow"] == "GET, HEAD"
        async with run.http.get(run.url + "/_health") as reply:
            assert reply.status == 200  # outside the prefix: the child's


async def test_request_id_round_trip(
    write_manifest: WriteManifest, socket_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_manifest(process_xml("svc", "/api/*"))
    async with running(path, socket_dir) as run:
        async with run.http.get(run.url + "/api/x", headers={"x-request-id": "trace-42"}) as reply:
            assert reply.headers["X-Request-Id"] == "trace-42"
            seen = json.loads(await reply.read())
        assert seen["request_id"] == "trace-42"
        assert ["x-request-id", "trace-42"] in seen["headers"]  # as the client spelt it
        async with run.http.get(run.url + "/api/x") as reply:
            generated = reply.headers["X-Request-Id"]
            seen = json.loads(await reply.read())
        assert seen["request_id"] == generated and ["X-Request-Id", generated] in seen["headers"]
        async with run.http.get(run.url + "/api/garbage", headers={"X-Request-Id": "t-7"}) as reply:
            assert reply.status == 502 and (await reply.json())["request_id"] == "t-7"
    assert any("[t-7]" in r.getMessage() for r in caplog.records)


def test_json_logs_carry_the_manifests_problems_and_warnings_too(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """With --log-format json a log reader of standard output gets why nothing started (each
    problem, then the line that ends the command) and the manifest's warnings as JSON lines,
    not plain text beside them on standard error."""
    broken = tmp_path / "broken.xml"
    broken.write_text("<manifest><process><id>x</id></process></manifest>")
    ran = run_main("--log-format", "json", str(broken))
    events = [json.loads(line) for line in ran.stdout.splitlines()]
    assert ran.returncode == 1 and ran.stderr == "", ran.stderr
    assert [(e["event"], e["level"]) for e in events] == [("manifest", "error")] * 2 + [
        ("exit", "error")
    ]
    assert "missing <executable>" in events[0]["message"]
    assert events[-1]["message"].endswith("has 2 problem(s); nothing was started")
    warned = write_manifest(process_xml("svc", "/api/*", args=("no/such/file.py",)))
    ran = run_main("check", "--log-format", "json", str(warned))
    events = [json.loads(line) for line in ran.stdout.splitlines()]
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    assert [(e["event"], e["level"]) for e in events] == [("manifest", "warning"), ("exit", "info")]
    assert '<arg> "no/such/file.py" looks like a file' in events[0]["message"]


async def test_json_state_events_name_the_process_they_are_about(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """A start names no pid yet (the last one's is gone); an exit names the process that
    ended, each run its own."""
    path = write_manifest(fatal_process(tmp_path))
    async with cli(str(path), "--bind", "127.0.0.1:0", "--log-format", "json") as run:
        await run.expect(r'"state":"FATAL"')
        run.proc.send_signal(2)
        assert await run.finish() == 0
    states = [(e["state"], e["pid"]) for e in map(json.loads, run.lines)
              if e.get("event") == "state"]  # fmt: skip
    assert [state for state, _ in states] == ["STARTING", "BACKOFF", "STARTING", "FATAL"]
    assert states[0][1] is None and states[2][1] is None, states
    assert isinstance(states[1][1], int) and isinstance(states[3][1], int), states
    assert states[1][1] != states[3][1], states


async def test_json_logs_are_one_object_per_line(write_manifest: WriteManifest) -> None:
    path = write_manifest(process_xml("svc", "/api/*"))
    async with cli(str(path), "--bind", "127.0.0.1:0", "--log-format", "json") as run:
        found = await run.expect(r'"event":"listening".*"url":"(http://[^"]+)"')
        await run.expect(r'"state":"READY"')
        await run.expect(r'"event":"table"')
        import aiohttp

        async with aiohttp.ClientSession() as http:
            async with http.get(found.group(1) + "/api/x", headers={"X-Request-Id": "j1"}) as r:
                assert r.status == 200
        await run.expect(r'"event":"access"')
        # Malformed requests: one JSON line each, never a traceback on the stream.
        for raw in (b"GET /api/x HTTP/1.1\nHost: x\n\n", b"\x16\x03\x01\x00\r\n\r\n",
                    b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\x01\r\n\r\n"):  # fmt: skip
            reader, writer = await connect(found.group(1))
            writer.write(raw)
            await reader.read()
            writer.close()
        for _ in range(3):
            await run.expect(r'"event":"bad_request"')
        run.proc.send_signal(2)
        assert await run.finish() == 0
    events = [json.loads(line) for line in run.lines]  # every line parses
    assert all("event" in e for e in events)
    assert [e["status"] for e in events if e["event"] == "bad_request"] == [400, 400, 400]
    access = [e for e in events if e.get("event") == "access" and e["request_id"] == "j1"]
    assert access == [
        {
            **access[0],
            "method": "GET",
            "uri": "/api/x",
            "process": "svc",
            "status": 200,
            "request_id": "j1",
        }
    ]
    assert any(e.get("event") == "output" and e["process"] == "svc" for e in events)
    assert any(e.get("event") == "table" for e in events)
    assert all("time" in e for e in events)


@pytest.mark.parametrize("status", [0, 7, -15])  # -15: it kills itself with SIGTERM
async def test_run_exits_with_the_commands_status(
    write_manifest: WriteManifest, status: int
) -> None:
    path = write_manifest(process_xml("svc", "/api/*"))
    check = (
        "import os, sys, urllib.request\n"
        "url = os.environ['LOCAL_LAMBDAS_URL']\n"
        "assert urllib.request.urlopen(url + '/api/smoke').status == 200\n"
        + (f"sys.exit({status})\n" if status >= 0 else f"os.kill(os.getpid(), {-status})\n")
    )
    async with cli("run", str(path), "--", sys.executable, "-c", check) as run:
        # As a shell gives it: 128 + the signal's number for a command a signal killed.
        assert await run.finish() == (status if status >= 0 else 128 - status)
    # The command as a shell takes it: its code quoted (one line, as every line is).
    ran = f"all ready; running {sys.executable} -c 'import os, sys, urllib.request url = "
    assert any(ran in line for line in run.lines), run.lines
    said = f"exited with status {status}" if status >= 0 else "was killed by SIGTERM (status 143)"
    assert any(f"{Path(sys.executable).name} {said}" in line for line in run.lines), run.lines
    assert run.lines[-1].endswith("stopped")


@pytest.mark.parametrize(("flag", "info", "debug"), [("--quiet", False, False),
                                                      ("--verbose", True, True)])  # fmt: skip
async def test_quiet_says_less_and_verbose_more(
    write_manifest: WriteManifest, flag: str, info: bool, debug: bool
) -> None:
    """--quiet: the proxy's warnings and errors alone (no access line), the children's
    output still; --verbose: its debug lines too (which build runs), said by none before."""
    path = write_manifest(process_xml("svc", "/api/*"))
    call = (
        "import os, urllib.request\n"
        "urllib.request.urlopen(os.environ['LOCAL_LAMBDAS_URL'] + '/api/log').read()"
    )
    async with cli("run", flag, str(path), "--", sys.executable, "-c", call) as run:
        assert await run.finish() == 0
    said = "\n".join(run.lines)
    assert "handling request" in said  # the child's line, either way
    assert ("listening on" in said) == ("200 GET /api/log -> svc" in said) == info, said
    assert (f"local-lambdas {__version__} on Python" in said) == debug, said


async def test_run_and_check_boot_name_their_ready_timeout_when_a_child_is_still_starting(
    write_manifest: WriteManifest,
) -> None:
    """A child still starting when --ready-timeout (60 s by default) is up, as one compiling
    can be: the run says which limit it hit and how to give it more, not just "after 60s"."""
    slow = (
        f"<process><id>slow</id><executable>{sys.executable}</executable><arg>-S</arg>"
        "<arg>-c</arg><arg>import time; time.sleep(30)</arg><route>/s/*</route>"
        "<communication_mode>http</communication_mode></process>"
    )
    path = write_manifest(slow)
    async with cli("run", str(path), "--ready-timeout", "0.5s", "--", "true") as run:
        assert await run.finish() == 3
    text = "\n".join(run.lines)
    assert "slow is not ready after 0.5s (--ready-timeout): STARTING" in text, text
    assert "give it more with --ready-timeout SECONDS" in text, text
    async with cli("check", "--boot", "--ready-timeout", "0.5s", str(path)) as run:
        assert await run.finish() == 1
    said = "\n".join(run.lines)
    assert "not ready within 0.5s (--ready-timeout: give it longer if it compiles)" in said


async def test_run_and_check_boot_say_a_route_only_process_is_not_theirs_to_start(
    write_manifest: WriteManifest,
) -> None:
    """A route-only process whose <upstream> nothing serves: the run was told it "may need
    longer (compiling, installing)", but nothing here starts it. Both say what to do."""
    with socket.socket() as held:  # bound, never listening: its port refuses connections
        held.bind(("127.0.0.1", 0))
        upstream = f"http://127.0.0.1:{held.getsockname()[1]}"
        path = write_manifest(
            f"<process><id>db</id><upstream>{upstream}</upstream><route>/db/*</route></process>"
        )
        async with cli("run", str(path), "--ready-timeout", "0.5s", "--", "true") as run:
            assert await run.finish() == 3
        text = "\n".join(run.lines)
        assert f"db is route-only: local-lambdas starts nothing for it; start what serves " \
            f"{upstream} before run, or leave db out with --only" in text, text  # fmt: skip
        assert "--ready-timeout SECONDS" not in text, text
        async with cli("check", "--boot", "--ready-timeout", "0.5s", str(path)) as run:
            assert await run.finish() == 1
        said = "\n".join(run.lines)
        assert "not ready within 0.5s: route-only, so start what serves it first" in said


async def test_ready_waits_for_the_tasks(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """/_/ready said 200 while a <task> no process waits for still ran: a CI job that
    polls it before its tests (as a compose healthcheck does) tested a database not yet
    seeded. A task still to run is not ready, as for `run`."""
    gate = tmp_path / "gate"
    gate.write_text("")
    seed = (
        "<task><id>seed</id><executable>sh</executable><arg>-c</arg>"
        f"<arg>while [ -e {gate} ]; do sleep 0.05; done</arg></task>"
    )
    path = write_manifest(seed + process_xml("svc", "/api/*"))
    async with running(path, socket_dir, wait=False) as run:
        assert await run.pool("svc").wait_ready(10)
        async with run.http.get(run.url + "/_/ready") as reply:
            assert reply.status == 503
            assert (await reply.json())["not_ready"] == {"seed": "RUNNING (task)"}
        gate.unlink()
        assert await eventually(lambda: run.supervisor.tasks["seed"].state == "DONE")
        async with run.http.get(run.url + "/_/ready") as reply:
            assert reply.status == 200


SEED = "<task><id>seed</id><executable>sleep</executable><arg>30</arg></task>"


@pytest.mark.parametrize(("task", "extra"), [
    (SEED, ""),  # a task alone, still running
    ("", "<build>sleep 30</build>"),  # a build still running
    (SEED, "<depends_on>seed</depends_on>"),  # a process waiting for a task
])  # fmt: skip
async def test_run_never_runs_its_command_before_the_tasks_and_builds_are_done(
    write_manifest: WriteManifest, tmp_path: Path, task: str, extra: str
) -> None:
    """At --ready-timeout, a <task> still running (a database seeded), or a process whose
    <build> still ran or that waited for a task had no instance that was not ready, so
    `run` said "all ready" and ran the command against a backend that was not there."""
    path = write_manifest(task + process_xml("svc", "/api/*", extra=extra))
    marker = tmp_path / "ran"
    args = ("--ready-timeout", "0.5s", "--", "touch", str(marker))
    async with cli("run", str(path), *args) as run:
        assert await run.finish() == 3
    said = "\n".join(run.lines)
    assert "(--ready-timeout)" in said and "nothing was run" in said, said
    assert not marker.exists()


async def test_run_when_a_child_never_gets_ready(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    path = write_manifest(process_xml("good", "/good/*"), fatal_process(tmp_path))
    marker = tmp_path / "ran"
    async with cli("run", str(path), "--ready-timeout", "20s", "--", "touch", str(marker)) as run:
        assert await run.finish() == 3
    text = "\n".join(run.lines)
    assert "broken is not ready: FATAL: gave up" in text  # at once, not "after 20s"
    assert "exited with code 9" in text
    # Its last run's output, once (not a copy per failed start).
    assert sum("  broken | missing API_KEY" in line for line in run.lines) == 1
    assert "not ready: broken; nothing was run" in text
    assert not marker.exists()


async def test_run_when_a_build_fails(write_manifest: WriteManifest, tmp_path: Path) -> None:
    """A process whose <build> fails never starts, so has no instance that is not ready:
    `run` ran its command against its 503s, and exited with the command's 0."""
    lazy = "<start>on-request</start>"
    path = write_manifest(
        process_xml("good", "/good/*"),
        process_xml("svc", "/svc/*", extra=f"{lazy}<build>echo broken; exit 3</build>"),
    )
    marker = tmp_path / "ran"
    async with cli("run", str(path), "--", "touch", str(marker)) as run:
        assert await run.finish() == 3
    text = "\n".join(run.lines)
    assert "svc was not started: its <build> failed: exited with code 3; nothing was run" in text
    assert not marker.exists()


async def test_two_runs_in_parallel_do_not_collide(write_manifest: WriteManifest) -> None:
    path = write_manifest(process_xml("svc", "/api/*"), process_xml("web", "/web/*", mode="http"))
    check = (
        "import os, urllib.request\n"
        "print('URL', os.environ['LOCAL_LAMBDAS_URL'])\n"
        "assert urllib.request.urlopen(os.environ['LOCAL_LAMBDAS_URL'] + '/web/x').status == 200\n"
    )

    async def one() -> tuple[int, list[str]]:
        async with cli("run", str(path), "--", sys.executable, "-c", check) as run:
            return await run.finish(), run.lines

    (code1, lines1), (code2, lines2) = await asyncio.gather(one(), one())
    assert (code1, code2) == (0, 0)
    urls = {line.split("URL ")[1] for line in lines1 + lines2 if line.startswith("URL ")}
    assert len(urls) == 2


async def test_check_boot_reports_each_process(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    # A worker: nothing is routed to it: ready as it runs, and no probe sent.
    worker = worker_xml("queue", "-c", "import time; time.sleep(60)")
    path = write_manifest(process_xml("good", "/good/*"), fatal_process(tmp_path), worker)
    async with cli("check", "--boot", str(path)) as run:
        assert await run.finish() == 1
    text = "\n".join(run.lines)
    assert "GET /good -> 200" in text
    row = next(line for line in run.lines if line.strip().startswith("queue "))
    assert "ready in" in row and "none: nothing is routed to it" in row, row
    # The table's row says why, the child's own line included (the log above it has it too).
    row = next(line for line in run.lines if line.strip().startswith("broken ") and "FATAL" in line)
    assert "FATAL: gave up after 2 failed starts in a row (<start_retries>: 1): exited with " \
        "code 9; its last output: missing API_KEY" in row  # fmt: skip


async def test_admin_prefix_is_reserved_and_movable(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    clash = write_manifest(process_xml("svc", "/_/mine/*"), name="clash.xml")
    async with cli("check", str(clash)) as run:
        assert await run.finish() == 1
    assert any("is inside /_/, where the proxy's own endpoints are" in ln for ln in run.lines)
    path = write_manifest(process_xml("svc", "/_/mine/*"))
    async with cli("check", "--boot", "--admin-prefix", "/admin/", str(path)) as run:
        assert await run.finish() == 0


def test_loopback_addresses() -> None:
    for host in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "::ffff:127.0.0.1", "localhost"):
        assert is_loopback(host), host
    for other in ("0.0.0.0", "::", "192.0.2.7", "::ffff:192.0.2.7", "example.com", None):
        assert not is_loopback(other), other


async def test_private_admin_endpoints_refuse_other_hosts(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("svc", "/api/*"))
    async with running(path, socket_dir) as run:
        for public, name, status in [(False, "status", 403), (False, "metrics", 403),
                                     (False, "ready", 200), (False, "health", 200),
                                     (True, "status", 200)]:  # fmt: skip
            admin = Admin(run.supervisor, "/_/", public=public)
            request = _from_another_host(f"/_/{name}")
            answer = await admin.handle(request, f"/_/{name}")
            assert answer.status == status, (public, name)
        # Over a real (loopback) connection every endpoint answers.
        async with run.http.get(run.url + "/_/status") as reply:
            assert reply.status == 200

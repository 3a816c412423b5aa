"""Windows: real \\\\.\\pipe\\ named pipes, job objects, and the proxy end to end, under
Windows CPython (the Wine lane in .ci/run runs this module there; elsewhere it is skipped)."""

from __future__ import annotations

import asyncio
import base64
import ctypes
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from local_lambdas import _compat
from tests.helpers import (
    CHILDREN,
    PYTHON,
    WriteManifest,
    eventually,
    running,
    serves_with_its_input_held,
    worker_xml,
)

pytestmark = pytest.mark.skipif(sys.platform != "win32", reason="Windows only")

UNDER_WINE = sys.platform == "win32" and (
    getattr(ctypes.WinDLL("ntdll"), "wine_get_version", None) is not None
)


def alive(pid: int) -> bool:
    """Whether `pid` runs (never os.kill(pid, 0): on Windows that terminates the process)."""
    kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined,unused-ignore]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    code = ctypes.c_ulong()
    try:
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
    finally:
        kernel32.CloseHandle(handle)
    return code.value == 259  # STILL_ACTIVE


async def gone(pid: int) -> bool:
    # No exit event for a process we did not start: poll it, bounded.
    return await eventually(lambda: not alive(pid), 15)


def helper(pid: str, route: str, mode: str) -> str:
    return (
        f"<process><id>{pid}</id><executable>{PYTHON}</executable>"
        f"<arg>{CHILDREN / 'helper_child.py'}</arg><route>{route}</route>"
        f"<communication_mode>{mode}</communication_mode></process>"
    )


@pytest.mark.parametrize("mode", ["pipe", "pipe-keepalive"])
async def test_named_pipe_round_trip_with_the_helper(
    write_manifest: WriteManifest, socket_dir: Path, mode: str
) -> None:
    path = write_manifest(helper("h", "/h/*", mode))
    body = bytes(range(256)) * 8
    async with running(path, socket_dir) as run:
        assert (run.child("h").pipe or "").startswith("\\\\.\\pipe\\")
        for _ in range(3):
            async with run.http.post(
                run.url + "/h/x?q=1", data=body, headers=[("X-Tag", "a"), ("X-Tag", "b")]
            ) as reply:
                assert reply.status == 201
                seen = json.loads(await reply.read())
            assert seen["uri"] == "/h/x?q=1"
            assert [v for k, v in seen["headers"] if k == "X-Tag"] == ["a", "b"]
            assert base64.b64decode(seen["body"]) == body
        # The same keep-alive connection handed to aiohttp (an admin endpoint), then served
        # there: the Proactor transport changes protocol mid-connection.
        async with run.http.get(run.url + "/_/health") as reply:
            assert reply.status == 200
        async with run.http.post(run.url + "/h/after", data=b"x") as reply:
            assert reply.status == 201
        assert run.lane.served == 3 and run.lane.handed_over == 1


async def test_busy_pipe_is_retried_and_the_tree_stops_with_the_child(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(
        f"<process><id>one</id><executable>{PYTHON}</executable>"
        f"<arg>{CHILDREN / 'win_single.py'}</arg><route>/one/*</route></process>"
    )
    async with running(path, socket_dir) as run:
        child = run.child("one").pid
        assert child is not None

        async def get(n: int) -> dict[str, Any]:
            async with run.http.get(run.url + f"/one/{n}") as reply:
                assert reply.status == 200, await reply.text()
                seen: dict[str, Any] = json.loads(await reply.read())
                return seen

        answers = await asyncio.gather(*(get(n) for n in range(3)))
        assert sorted(a["uri"] for a in answers) == ["/one/0", "/one/1", "/one/2"]
        grandchild = answers[0]["grandchild"]
        assert alive(child) and alive(grandchild)
    assert await gone(child) and await gone(grandchild)  # the job object took the whole tree


async def test_run_end_to_end_through_the_command_line(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    path = write_manifest(helper("h", "/h/*", "pipe"))
    check = (
        "import os, urllib.request\n"
        "reply = urllib.request.urlopen(os.environ['LOCAL_LAMBDAS_URL'] + '/h/smoke')\n"
        "assert reply.status == 201, reply.status\n"
    )
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "local_lambdas",
        "run",
        str(path),
        "--",
        PYTHON,
        "-c",
        check,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with _compat.timeout(120):
        output, _ = await proc.communicate()
    assert proc.returncode == 0, output.decode(errors="replace")
    assert b"all ready; running" in output
    # A clean exit: nothing left for the Proactor loop to finish after it closed.
    assert b"Traceback" not in output and b"Event loop is closed" not in output, output


async def test_killed_proxy_leaves_no_child(write_manifest: WriteManifest) -> None:
    import aiohttp

    path = write_manifest(
        f"<process><id>one</id><executable>{PYTHON}</executable>"
        f"<arg>{CHILDREN / 'win_single.py'}</arg><route>/one/*</route></process>"
    )
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "local_lambdas", str(path), "--bind", "127.0.0.1:0", "--log-format", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with _compat.timeout(60):
            while True:
                event = json.loads(await proc.stdout.readline())
                if event.get("event") == "listening":
                    url = event["url"]
                if event.get("state") == "READY":
                    break
        async with aiohttp.ClientSession() as http, http.get(url + "/one/x") as reply:
            seen = json.loads(await reply.read())
        proc.kill()  # TerminateProcess: no chance to stop anything
        await proc.wait()
        # The proxy's job handles closed with it, and kill-on-close took the tree.
        assert await gone(seen["pid"]) and await gone(seen["grandchild"])
    finally:
        if proc.returncode is None:
            proc.kill()


async def test_the_raw_pipe_example_runs_on_windows(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    example = CHILDREN.parents[1] / "examples" / "children" / "echo_pipe.py"
    path = write_manifest(
        f"<process><id>echo</id><executable>{PYTHON}</executable><arg>{example}</arg>"
        "<route>/echo/*</route></process>"
    )
    async with running(path, socket_dir) as run:
        async with run.http.post(run.url + "/echo/x?y=1", data=b"hi") as reply:
            seen = json.loads(await reply.read())
    assert seen["uri"] == "/echo/x?y=1" and seen["body_text"] == "hi"


SQUATTER = r"""
import sys, threading, win32file, win32pipe
address, log = sys.argv[1], sys.argv[2]
def serve(pipe):
    try:
        data = win32file.ReadFile(pipe, 65536)[1]
    except Exception:
        data = b""
    with open(log, "ab") as seen:
        seen.write(data)
while True:
    pipe = win32pipe.CreateNamedPipe(address, win32pipe.PIPE_ACCESS_DUPLEX, 0,
                                     win32pipe.PIPE_UNLIMITED_INSTANCES, 65536, 65536, 0, None)
    print("listening", flush=True)
    win32pipe.ConnectNamedPipe(pipe, None)
    threading.Thread(target=serve, args=(pipe,)).start()
"""


@pytest.mark.parametrize("mode", ["pipe", "pipe-keepalive"])
async def test_a_pipe_another_program_serves_gets_no_request(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path, mode: str
) -> None:
    """With plain pipe names (--socket-dir, as the earlier tool named them) a program that is
    not the child can create the pipe first: the proxy connects, sees who serves it
    (GetNamedPipeServerProcessId), and closes before sending anything."""
    name = f"llt-squat-{tmp_path.name[-8:]}"
    seen = tmp_path / "seen"
    squatter = await asyncio.create_subprocess_exec(
        PYTHON, "-c", SQUATTER, "\\\\.\\pipe\\" + name, str(seen),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert squatter.stdout is not None
        assert await asyncio.wait_for(squatter.stdout.readline(), 15) == b"listening\r\n"
        path = write_manifest(
            f"<process><id>squat</id><pipe_name>{name}</pipe_name><executable>{PYTHON}"
            "</executable><arg>-c</arg><arg>import time; time.sleep(60)</arg>"
            f"<route>/s/*</route><communication_mode>{mode}</communication_mode></process>"
        )
        async with running(path, socket_dir, own_socket_dir=False) as run:
            async with run.http.post(run.url + "/s/x", data=b"secret body") as reply:
                assert reply.status == 502
                answer = await reply.text()
        assert f"served by pid {squatter.pid}" in answer, answer
        assert not seen.exists() or b"secret" not in seen.read_bytes()
    finally:
        squatter.kill()
        await squatter.wait()


async def test_an_exit_is_seen_though_a_grandchild_holds_the_output(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(
        f"<process><id>w</id><executable>{PYTHON}</executable>"
        f"<arg>{CHILDREN / 'win_wrapper.py'}</arg><route>/w/*</route>"
        "<communication_mode>pipe-keepalive</communication_mode></process>"
    )
    async with running(path, socket_dir) as run:
        child = run.child("w")
        first = child.pid
        assert first is not None

        def sleepers() -> list[int]:
            lines = child.output.lines
            return [int(line.split()[1]) for line in lines if line.startswith("sleeper")]

        assert await eventually(lambda: len(sleepers()) == 1)
        old_sleeper = sleepers()[0]
        assert alive(old_sleeper)
        os.kill(first, signal.SIGTERM)  # TerminateProcess: no chance to close anything
        # Seen from the process handle, though the sleeper holds stdout and stderr open.
        assert await run.pool("w").wait_for(
            lambda: child.generation == 2 and child.pid != first, 10
        )
        async with run.http.post(run.url + "/w/x", data=b"hi") as reply:
            assert reply.status == 201
        assert await gone(old_sleeper)  # the first start's job object took it


async def test_a_worker_runs_with_no_address_and_stops_with_the_proxy(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    said = tmp_path / "worker.json"
    path = write_manifest(
        worker_xml("queue", str(CHILDREN / "worker.py"), str(said)),
    )
    async with running(path, socket_dir) as run:
        assert await eventually(said.exists, 15)
        facts = json.loads(said.read_text())
        assert facts["env"]["PIPE_ADDRESS"] is facts["env"]["PORT"] is None, facts
        worker = facts["pid"]
        assert run.child("queue").pid == worker and alive(worker)
    assert await gone(worker)


async def test_a_child_that_stops_when_its_input_ends_serves_on(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """A Windows child's standard input is a pipe held open too (spawned.py): one held up by
    Console.ReadLine(), or input() here, serves on."""
    await serves_with_its_input_held(write_manifest, socket_dir, "pipe-keepalive")

"""The dev loop: env files in every order of precedence, ${NAME} variables (a server handed
its ${PORT}), and --no-timeouts for a child at a breakpoint."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from local_lambdas import _compat, manifest
from local_lambdas.errors import ManifestError
from local_lambdas.variables import child_environment
from tests.helpers import (
    CHILDREN,
    PYTHON,
    WAIT,
    Ran,
    Running,
    WriteManifest,
    cli,
    command,
    fixed_port,
    load,
    process_xml,
    run_command,
    run_main,
    running,
)


def env_child(pid: str, route: str, *args: str, extra: str = "") -> str:
    return process_xml(pid, route, script="env_child.py", args=args, mode="pipe-keepalive",
                       extra=extra)  # fmt: skip


async def seen(run: Running, route: str, *names: str) -> dict[str, Any]:
    async with run.http.get(f"{run.url}{route}?names={','.join(names)}") as reply:
        assert reply.status == 200
        return await reply.json()  # type: ignore[no-any-return]


async def test_env_files_in_order_of_precedence(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("LL_A=dotenv\nLL_B=dotenv\n")
    (tmp_path / "global.env").write_text("LL_B=global\nLL_C=global\n")
    (tmp_path / "later.env").write_text("LL_C=later\n")
    (tmp_path / "proc.env").write_text("LL_C=proc\nLL_D=proc\nLL_E=proc\n")
    extra = '<env_file>proc.env</env_file><env name="LL_E">env</env>'
    path = write_manifest(env_child("svc", "/s/*", extra=extra))
    names = ("LL_A", "LL_B", "LL_C", "LL_D", "LL_E")
    # The default: ./.env, under the process's env files, under its <env>.
    async with running(path, socket_dir, base=tmp_path) as run:
        got = (await seen(run, "/s/x", *names))["env"]
    assert got == {"LL_A": "dotenv", "LL_B": "dotenv", "LL_C": "proc", "LL_D": "proc",
                   "LL_E": "env"}  # fmt: skip
    # --env-file replaces the default; a later file wins over an earlier one.
    files = [Path("global.env"), Path("later.env")]
    async with running(path, socket_dir, base=tmp_path, env_files=files) as run:
        got = (await seen(run, "/s/x", *names))["env"]
    assert got == {"LL_A": None, "LL_B": "global", "LL_C": "proc", "LL_D": "proc",
                   "LL_E": "env"}  # fmt: skip
    # --no-env-file: only the process's own.
    async with running(path, socket_dir, base=tmp_path, env_files=[]) as run:
        got = (await seen(run, "/s/x", *names))["env"]
    assert got["LL_A"] is None and got["LL_B"] is None and got["LL_C"] == "proc"


@pytest.mark.skipif(sys.platform == "win32", reason="the tools are sh scripts")
async def test_a_bare_executable_is_looked_up_on_the_childs_path(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """`<env name="PATH">.venv/bin:${PATH}</env>` (or node_modules/.bin), or an env file's
    PATH: a bare <executable> is found where the child's own lookups would find it, relative
    entries from its working directory; not only on the proxy's PATH."""
    venv, tools = tmp_path / "app" / ".venv" / "bin", tmp_path / "tools"
    venv.mkdir(parents=True)
    tools.mkdir()
    for script, line in ((venv / "serve-it", f"exec {PYTHON} -S {CHILDREN / 'behave.py'}"),
                         (tools / "prep", "echo prepared > prepared.txt")):  # fmt: skip
        script.write_text(f"#!/bin/sh\n{line}\n")
        script.chmod(0o755)
    (tmp_path / "tools.env").write_text(f"PATH={tools}{os.pathsep}{os.environ['PATH']}\n")
    path = write_manifest(
        "<task><id>prep</id><executable>prep</executable><working_dir>app</working_dir>"
        "<env_file>tools.env</env_file></task>"
        "<process><id>svc</id><executable>serve-it</executable><working_dir>app</working_dir>"
        '<env name="PATH">.venv/bin:${PATH}</env><route>/s/*</route>'
        "<depends_on>prep</depends_on></process>"
    )
    async with running(path, socket_dir, base=tmp_path) as run:
        async with run.http.get(f"{run.url}/s/x") as reply:
            assert reply.status == 200
            assert (await reply.json())["uri"] == "/s/x"
    assert (tmp_path / "app" / "prepared.txt").read_text() == "prepared\n"


async def test_variables_in_arguments_and_env(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("LL_GREETING=hello\nLL_EMPTY=\n")
    port = fixed_port()
    args = ("${LL_GREETING}", "${LL_UNSET:-fallback}", "$$HOME", "$HOME",
            "${LOCAL_LAMBDAS_ID}#${LOCAL_LAMBDAS_INSTANCE}", "${PORT}",
            # As shells and compose files read them: `:-` also for an empty value, `-` not.
            "${LL_EMPTY:-instead}", "[${LL_EMPTY-unused}]", "${LL_UNSET-unset}")  # fmt: skip
    extra = (
        f'<env name="LL_URL">http://127.0.0.1:${{PORT}}/x</env><port>${{LL_FIXED:-{port}}}</port>'
    )
    path = write_manifest(
        process_xml("svc", "/s/*", script="env_child.py", mode="http", args=args, extra=extra)
    )
    async with running(path, socket_dir, base=tmp_path) as run:
        got = await seen(run, "/s/x", "LL_URL", "PORT")
    assert got["argv"] == ["hello", "fallback", "$HOME", "$HOME", "svc#1", str(port),
                           "instead", "[]", "unset"]  # fmt: skip
    assert got["env"] == {"LL_URL": f"http://127.0.0.1:{port}/x", "PORT": str(port)}


@pytest.mark.skipif(sys.platform == "win32", reason="the task is an sh script")
async def test_children_and_tasks_find_the_proxy_at_local_lambdas_url(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A child calls another's route at $LOCAL_LAMBDAS_URL, as a browser would, and may name
    it in an <arg>; a <task> has it too; one the proxy's environment has is not theirs. With
    --child-url (Settings.child_url), they are given that instead."""
    path = write_manifest(
        "<task><id>seed</id><executable>/bin/sh</executable><arg>-c</arg>"
        '<arg>echo "$LOCAL_LAMBDAS_URL" > url.txt</arg></task>',
        env_child("front", "/front/*", "${LOCAL_LAMBDAS_URL}/back",
                  extra="<depends_on>seed</depends_on>"),
        process_xml("back", "/back/*"),
    )  # fmt: skip
    monkeypatch.setenv("LOCAL_LAMBDAS_URL", "http://127.0.0.1:1")  # (an outer run's, say)
    async with running(path, socket_dir, base=tmp_path) as run:
        async with run.http.get(
            f"{run.url}/front/x", params={"call": "/back/y?q=1", "names": "LOCAL_LAMBDAS_URL"}
        ) as reply:
            assert reply.status == 200, await reply.text()
            got = await reply.json()
    assert got["env"] == {"LOCAL_LAMBDAS_URL": run.url} and got["argv"] == [f"{run.url}/back"]
    status, answer = got["called"]
    assert status == 200 and answer["uri"] == "/back/y?q=1"
    assert (tmp_path / "url.txt").read_text() == f"{run.url}\n"

    async with running(path, socket_dir, base=tmp_path, child_url="http://api.test") as run:
        other = await seen(run, "/front/x", "LOCAL_LAMBDAS_URL")
    assert (tmp_path / "url.txt").read_text() == "http://api.test\n"
    assert other["env"] == {"LOCAL_LAMBDAS_URL": "http://api.test"}
    assert other["argv"] == ["http://api.test/back"]


async def test_a_server_handed_its_port(
    write_manifest: WriteManifest, socket_dir: Path, tmp_path: Path
) -> None:
    """python -m http.server takes its port as an argument and ignores $PORT."""
    (tmp_path / "hello.txt").write_text("served\n")
    path = write_manifest(
        f"<process><id>files</id><executable>{PYTHON}</executable><arg>-m</arg>"
        "<arg>http.server</arg><arg>--bind</arg><arg>127.0.0.1</arg><arg>${PORT}</arg>"
        "<route>/*</route><communication_mode>passthrough</communication_mode></process>"
    )
    async with running(path, socket_dir, base=tmp_path) as run:
        async with run.http.get(run.url + "/hello.txt") as reply:
            assert reply.status == 200 and await reply.text() == "served\n"


@pytest.mark.parametrize(("element", "says"), [
    ("<arg>${PORTT}</arg>", "${PORTT} has no value: did you mean ${PORT}?"),
    ("<arg>${}</arg>", "${} is not read here: write ${NAME}, ${NAME:-default}"),
    ("<arg>${1A}</arg>", "${1A} is not read here"),
    ("<arg>${A:?say}</arg>", "${A:?say} is not read here"),  # a shell's form, not ours
    ('<env name="A">${NOPE_NOT_SET}</env>', "${NOPE_NOT_SET} has no value"),
    ("<env_file>missing.env</env_file>", "<env_file> "),
    ("<working_dir>${NOPE_NOT_SET}</working_dir>", "${NOPE_NOT_SET} has no value"),
])  # fmt: skip
def test_unknown_variables_and_missing_files_are_manifest_errors(
    tmp_path: Path, element: str, says: str
) -> None:
    path = tmp_path / "manifest.xml"
    path.write_text(
        "<manifest>\n<process>\n<id>svc</id>\n<executable>python3</executable>\n"
        f"<route>/s/*</route>\n<communication_mode>http</communication_mode>\n{element}\n"
        "</process>\n</manifest>\n"
    )
    with pytest.raises(ManifestError) as caught:
        manifest.load(path, socket_dir=Path("/tmp/ll-x"), base=tmp_path, env_files=[])
    found = [(p.line, p.message) for p in caught.value.problems]
    assert any(line == 7 and says in message for line, message in found), found


def test_a_malformed_env_file_line_names_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ".env").write_text("GOOD=1\nthis is not a setting\n")
    path = tmp_path / "manifest.xml"
    path.write_text(f"<manifest>{process_xml('svc', '/s/*')}</manifest>")
    with pytest.raises(ManifestError) as caught:
        manifest.load(path, socket_dir=Path("/tmp/ll-x"), base=tmp_path)
    assert str(caught.value.problems[0]).startswith(f"{tmp_path / '.env'}:2: not a NAME=value")
    assert not caplog.records  # said once, by us: not again by python-dotenv's own logger


@pytest.mark.parametrize(("encoding", "bom"), [
    ("utf-8", b"\xef\xbb\xbf"),  # as some Windows editors save it
    ("utf-16", b""),  # PowerShell 5's `"A=1" > .env`: UTF-16 with its own BOM
])  # fmt: skip
def test_an_env_file_with_a_bom_is_read(tmp_path: Path, encoding: str, bom: bytes) -> None:
    (tmp_path / ".env").write_bytes(bom + "A=1\r\nB=caf\u00e9\r\n".encode(encoding))
    path = tmp_path / "manifest.xml"
    env = '<env name="C">${A}</env>'
    path.write_text(f"<manifest>{process_xml('svc', '/s/*', extra=env)}</manifest>")
    loaded = manifest.load(path, socket_dir=Path("/tmp/ll-x"), base=tmp_path)
    given, _ = child_environment(loaded.processes[0], {})
    assert (given["A"], given["B"], given["C"]) == ("1", "caf\u00e9", "1")


@pytest.mark.parametrize(("data", "says"), [
    (b"A=1\nB=caf\xe9\n", "2: byte 0xe9 is not UTF-8 text; save the file as UTF-8"),  # Latin-1
    # UTF-16 without its BOM (`iconv -t UTF-16LE`): its NULs were read as UTF-8, the
    # variable's name garbled and never given.
    ("A=1\r\n".encode("utf-16-le"), "1: byte 0x00: the file is UTF-16 without a byte-order "
                                     "mark, or not text; save it as UTF-8"),
])  # fmt: skip
def test_an_env_file_not_in_utf8_names_its_line(tmp_path: Path, data: bytes, says: str) -> None:
    (tmp_path / ".env").write_bytes(data)
    path = tmp_path / "manifest.xml"
    path.write_text(f"<manifest>{process_xml('svc', '/s/*')}</manifest>")
    with pytest.raises(ManifestError) as caught:
        manifest.load(path, socket_dir=Path("/tmp/ll-x"), base=tmp_path)
    assert str(caught.value.problems[0]) == f"{tmp_path / '.env'}:{says}"


@pytest.mark.parametrize(("name", "says"), [
    ("missing.env", "No such file or directory; create it or fix the path"),
    ("a-folder", "Is a directory; give a file of NAME=value"),
    # `--env DEBUG=1`, which argparse reads as --env-file, as a user of docker run writes it.
    ("DEBUG=1", "No such file or directory; it names a file of NAME=value lines: to give "
                "every child DEBUG=1, write that line in one (.env), or an <env> per process"),
])  # fmt: skip
def test_an_env_file_that_cannot_be_read_says_why(tmp_path: Path, name: str, says: str) -> None:
    (tmp_path / "a-folder").mkdir()
    path = tmp_path / "manifest.xml"
    path.write_text(f"<manifest>{process_xml('svc', '/s/*')}</manifest>")
    with pytest.raises(ManifestError) as caught:
        manifest.load(path, socket_dir=Path("/tmp/ll-x"), env_files=[tmp_path / name])
    env_file = tmp_path / name
    assert str(caught.value.problems[0]) == f"{env_file}: --env-file {env_file}: {says}"


@pytest.mark.parametrize(("flags", "status"), [((), 1), (("--no-timeouts",), 0)])
def test_no_timeouts_lets_a_slow_child_answer(
    tmp_path: Path, flags: tuple[str, ...], status: int
) -> None:
    (tmp_path / "manifest.xml").write_text(
        f"<manifest>{process_xml('svc', '/api/*', extra='<timeout>0.5s</timeout>')}</manifest>"
    )
    smoke = (
        "import os, sys, urllib.request, urllib.error\n"
        "try:\n"
        "    urllib.request.urlopen(os.environ['LOCAL_LAMBDAS_URL'] + '/api/late')\n"
        "except urllib.error.HTTPError as exc:\n"
        "    sys.exit(f'got {exc.code}')\n"
    )
    done = run_command("run", *flags, "--", sys.executable, "-c", smoke, cwd=tmp_path)
    assert done.returncode == status, done.stdout + done.stderr
    if status:
        assert "got 504" in done.stderr
    else:
        assert "--no-timeouts" in done.stdout


async def test_only_starts_the_named_processes(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(process_xml("a", "/a/*"), process_xml("b", "/b/*"))
    async with running(path, socket_dir, only=("a",)) as run:
        assert run.pool("b").instances == []
        async with run.http.get(run.url + "/a/x") as reply:
            assert reply.status == 200
        async with run.http.get(run.url + "/b/x") as reply:
            assert reply.status == 503
            assert "not started: local-lambdas runs with --only a" in (await reply.json())["error"]
        async with run.http.get(run.url + "/_/ready") as reply:
            assert reply.status == 200  # what was left out is not waited for


async def test_restart_one_process_under_load(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    seed = f"<task><id>seed</id><executable>{PYTHON}</executable><arg>-c</arg><arg></arg></task>"
    path = write_manifest(process_xml("a", "/a/*"), process_xml("b", "/b/*"), seed)
    async with running(path, socket_dir) as run:
        a_pid, b_pid = run.child("a").pid, run.child("b").pid
        async with load(run, "/a/x", clients=8) as result:
            done = await command("restart", "a", "--url", run.url)
            assert done.returncode == 0, done
            assert "a: restarted, READY" in done.stderr
        assert result.failures == [] and result.total > 0
        assert run.child("a").pid != a_pid and run.child("b").pid == b_pid
        async with run.http.post(run.url + "/_/processes/bb/restart") as reply:
            assert reply.status == 404 and (await reply.json())["error"] == (
                "no process 'bb'; did you mean b? the processes are: a, b"
            )
        # The dashboard's address, as a browser shows it, is the proxy's too.
        done = await command("restart", "b", "--url", run.url + "/_/")
        assert done.returncode == 0 and "b: restarted, READY" in done.stderr, done
        async with run.http.post(run.url + "/_/processes/seed/restart") as reply:  # a task
            assert reply.status == 409 and (await reply.json())["error"] == (
                "'seed' is a <task>: it runs once, as the proxy starts, before what depends "
                "on it; restart local-lambdas to run it again"
            )
        # Asked under another prefix than the proxy's: the likely cause is said.
        elsewhere = await command("restart", "a", "--url", run.url, "--admin-prefix", "/admin/")
        assert elsewhere.returncode == 1 and elsewhere.stderr.strip() == (
            "local-lambdas restart: no route matches /admin/processes/a/restart; if the proxy "
            "runs with --admin-prefix, pass the same"
        )


async def test_a_stop_during_a_restart_answers_it_and_does_not_wait_for_it(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """Ctrl+C while `local-lambdas restart` waits for a replacement that is slow to start:
    the stop neither waits for it (nor for the restart's request, in flight) and the
    command says why it ended."""
    once = tmp_path / "started-once"
    script = (
        f"if [ -f {once} ]; then exec {PYTHON} -S {CHILDREN / 'slow_start.py'}; fi; "
        f"touch {once}; exec {PYTHON} -S {CHILDREN / 'behave.py'}"
    )
    path = write_manifest(
        "<process><id>svc</id><executable>sh</executable><arg>-c</arg>"
        f"<arg>{script}</arg><route>/api/*</route></process>"
    )
    # A shutdown timeout past WAIT: the old stop waited that long for the restart's request.
    args = (path.name, "--bind", "127.0.0.1:0", "--shutdown-timeout", "60")
    async with cli(*args, cwd=tmp_path) as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        await run.expect(r"svc: ready")
        restart = asyncio.ensure_future(command("restart", "svc", "--url", url, timeout=WAIT))
        await run.expect(r"svc +\| starting slowly")
        run.proc.send_signal(signal.SIGINT)
        assert await run.finish() == 0
        done = await restart
    assert done.returncode == 1 and "the proxy is stopping" in done.stderr, done


async def test_restart_of_a_process_only_left_out_says_so(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    """With --only a, `restart b` has nothing to restart: it said "b: restarted, STOPPED"
    and exited 0."""
    path = write_manifest(process_xml("a", "/a/*"), process_xml("b", "/b/*"))
    async with running(path, socket_dir, only=("a",)) as run:
        done = await command("restart", "b", "--url", run.url)
        assert done.returncode == 1
        assert done.stderr.strip() == (
            "local-lambdas restart: b was not started: local-lambdas runs with --only a"
        )
        assert run.pool("b").instances == []


@pytest.mark.skipif(sys.platform != "linux", reason="proxies are found in /proc: Linux")
async def test_restart_where_no_proxy_is_names_one_that_runs(
    write_manifest: WriteManifest,
) -> None:
    """A proxy on another port than 3000 (--port 8080, a `run`'s free port), restarted
    without --url: the error names where one runs, as --url wants it, with the
    --admin-prefix it runs with; asked there without that prefix, it names the prefix."""
    path = write_manifest(process_xml("a", "/a/*"))
    proxy = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "local_lambdas", path, "--bind", "127.0.0.1:0",
        "--admin-prefix", "/admin/",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proxy.stdout is not None
    try:
        async with _compat.timeout(20):
            while b"listening on " not in (line := await proxy.stdout.readline()):
                assert line, "the proxy ended"
        url = line.decode().split("listening on ")[1].split()[0]
        done = run_main("restart", "a", "--url", "http://127.0.0.1:9")
        assert done.returncode == 1 and done.stderr.startswith(
            "local-lambdas restart: no proxy at http://127.0.0.1:9 ("
        )
        # (Alone, or among the proxies other tests run meanwhile.)
        assert done.stderr.endswith(f"pass --url {url} --admin-prefix /admin/\n") or (
            f" {url} (--admin-prefix /admin/)" in done.stderr
        ), done.stderr
        there = run_main("restart", "a", "--url", url)
        assert there.returncode == 1 and there.stderr == (
            "local-lambdas restart: no route matches /_/processes/a/restart; it runs with "
            "--admin-prefix /admin/: pass the same\n"
        ), there.stderr
    finally:
        proxy.send_signal(signal.SIGINT)
        await proxy.wait()


def test_restart_without_a_proxy_says_so() -> None:
    def restart(url: str) -> Ran:
        return run_main("restart", "a", "--url", url)

    done = restart("http://127.0.0.1:9")
    assert done.returncode == 1 and "no proxy at http://127.0.0.1:9" in done.stderr
    done = restart("localhost:4000")  # no scheme: one line, no traceback, the fix
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "local-lambdas restart: --url 'localhost:4000' must be the proxy's address, e.g. "
        "http://localhost:4000"
    )
    # Another server there: said as such, whatever it answers.
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        answering = threading.Thread(target=_answer_once, args=(listening,), daemon=True)
        answering.start()
        done = restart(url)
    assert done.returncode == 1 and done.stderr.strip() == (
        f"local-lambdas restart: {url} answered, but not as local-lambdas does; pass the "
        "proxy's address with --url"
    )


def _answer_once(listening: socket.socket) -> None:
    """Another server: 200 with a page, not local-lambdas' JSON."""
    connection, _ = listening.accept()
    with connection:
        connection.recv(65536)
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        )

"""`local-lambdas export compose|kubernetes`: the output is valid for each engine (checked
offline: the Compose specification's schema, as check-jsonschema ships it, and the Kubernetes
API schemas of kubernetes-validate), deterministic, refuses what it cannot express, and the
layout it writes works: each container's command run here serves exactly its process, and
the front's route-only manifest reaches every one of them."""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.helpers import PYTHON, Ran, WriteManifest, cli, eventually, run_main, running

ROOT = Path(__file__).parents[1]
POLYGLOT = ROOT / "examples" / "polyglot"


def export(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Ran:
    return run_main("export", *args, cwd=cwd, env=env)


def exported(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> list[Any]:
    done = export(*args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    again = export(*args, cwd=cwd, env=env)
    assert again.stdout == done.stdout  # deterministic (across processes: the test below)
    return list(yaml.safe_load_all(done.stdout))


def test_the_same_export_from_two_processes_is_the_same_text() -> None:
    """The command as a process, each with its own string hashing (set and dict orders
    that would leak into the output differ between them)."""
    texts = set()
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-m", "local_lambdas", "export", "kubernetes", "manifest.xml",
             "--image", "everything:1", "--host", "demo.test"],
            capture_output=True, text=True, cwd=POLYGLOT, timeout=60,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        texts.add(done.stdout)
    assert len(texts) == 1


def valid_compose(document: dict[str, Any]) -> None:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(document)


def valid_kubernetes(documents: list[dict[str, Any]]) -> None:
    for document in documents:
        kubernetes_validate.validate(document, "1.30.0", strict=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A manifest with instances, env files, a task and dependencies between processes."""
    (tmp_path / "app.env").write_text("GREETING=hi there\nPRICE=$5\n")
    (tmp_path / "manifest.xml").write_text(f"""<manifest>
      <task><id>migrate</id><executable>{PYTHON}</executable><arg>-c</arg><arg>pass</arg></task>
      <process><id>db</id><executable>{PYTHON}</executable><arg>db.py</arg>
        <route>/db/*</route><communication_mode>http</communication_mode></process>
      <process><id>api</id><executable>{PYTHON}</executable><arg>api.py</arg>
        <arg>${{API_FLAG:-x}}</arg><route>/api/*</route><route>/health</route>
        <instances>3</instances><env_file>app.env</env_file>
        <depends_on>db</depends_on><depends_on>migrate</depends_on>
        <image>registry.example/api:1</image></process>
      <process><id>queue</id><executable>{PYTHON}</executable><arg>worker.py</arg>
        <communication_mode>none</communication_mode><image>worker:1</image></process>
    </manifest>""")
    return tmp_path


def test_compose_for_a_project_with_instances_env_files_and_dependencies(project: Path) -> None:
    [compose] = exported("compose", "manifest.xml", "--image", "db=db:2", "--bind", "0.0.0.0:8000",
                         cwd=project, env={"API_FLAG": "on"})  # fmt: skip
    valid_compose(compose)
    api, db, front = (compose["services"][n] for n in ("api", "db", "local-lambdas"))
    assert api["image"] == "registry.example/api:1" and db["image"] == "db:2"
    assert api["command"] == [
        "local-lambdas",
        "/app/manifest.xml",
        "--only",
        "api",
        "--no-deps",
        "--instances",
        "1",
        "--bind",
        "0.0.0.0:8080",
        "--no-env-file",
        "--child-url",
        "http://local-lambdas:8000",
    ]  # fmt: skip  (its children call the other routes at the front, as they do at home)
    assert api["deploy"] == {"replicas": 3} and "deploy" not in db
    # The env file's values, `$` kept literal for compose; the variable the manifest reads.
    assert api["environment"] == {"API_FLAG": "on", "GREETING": "hi there", "PRICE": "$$5"}
    assert api["depends_on"] == {"db": {"condition": "service_healthy"}}  # the task runs inside
    assert "/_/ready" in " ".join(api["healthcheck"]["test"])
    assert front["ports"] == ["8000:8000"]
    content = compose["configs"]["front-manifest"]["content"]
    assert "<upstream>http://api:8080</upstream>" in content and "<route>/health</route>" in content
    # A worker runs in a service of its own; nothing in front routes to it.
    assert compose["services"]["queue"]["command"][2:4] == ["--only", "queue"]
    assert "<id>queue</id>" not in content


def test_the_front_bounds_a_request_as_the_proxy_did_locally(tmp_path: Path) -> None:
    """The front took each process's routes and <methods> only: a 5m <timeout> was 30 s
    there, a 100 MiB <max_body_size> 16 MiB, three replicas' requests went 16 or 256 at a
    time, and a route-only process lost its <strip_prefix> and <cors>, which nothing
    behind the front applies. (A service applies its own; the front waits 5 s longer, so
    that the service's 504 says why.)"""
    (tmp_path / "manifest.xml").write_text(f"""<manifest>
      <process><id>api</id><executable>{PYTHON}</executable><route>/api/*</route>
        <communication_mode>http</communication_mode><timeout>5m</timeout>
        <max_body_size>100MiB</max_body_size><instances>3</instances><concurrency>4</concurrency>
        <queue_timeout>2.5s</queue_timeout><max_queue>7</max_queue>
        <cors>http://localhost:5173</cors></process>
      <process><id>ext</id><upstream>http://db.internal:9000</upstream><route>/ext/*</route>
        <strip_prefix>/ext</strip_prefix><cors>http://localhost:5173</cors></process>
    </manifest>""")
    [compose] = exported("compose", "manifest.xml", "--image", "api=py:1", cwd=tmp_path)
    content = compose["configs"]["front-manifest"]["content"]
    api, ext = content.split("</process>")[:2]
    for element in ("<timeout>305s</timeout>", "<max_body_size>104857600</max_body_size>",
                    "<concurrency>12</concurrency>", "<queue_timeout>2.5s</queue_timeout>",
                    "<max_queue>7</max_queue>"):  # fmt: skip
        assert element in api, api
    assert "<cors>" not in api and "<strip_prefix>" not in api  # (the service's own)
    assert "<timeout>30s</timeout>" in ext and "<concurrency>256</concurrency>" in ext, ext
    assert (
        "<strip_prefix>/ext</strip_prefix>" in ext and "<cors>http://localhost:5173</cors>" in ext
    )
    front = tmp_path / "front.xml"
    front.write_text(content)
    done = run_main("check", str(front))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("manifest", [ROOT / "manifest.xml", POLYGLOT / "manifest.xml"])
def test_the_bundled_manifests_export_valid_for_both(manifest: Path) -> None:
    """The polyglot manifest's C child is not built here: export needs no executable."""
    cwd = manifest.parent
    [compose] = exported("compose", manifest.name, "--image", "everything:1", cwd=cwd)
    valid_compose(compose)
    objects = exported(
        "kubernetes", manifest.name, "--image", "everything:1", "--namespace", "demo",
        "--ingress-class", "nginx", "--host", "demo.test", cwd=cwd,
    )  # fmt: skip
    valid_kubernetes(objects)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    [ingress] = [o for o in objects if o["kind"] == "Ingress"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "demo.test"
    for path in rule["http"]["paths"]:  # /c/* -> Prefix /c, to c's Service
        name = path["backend"]["service"]["name"]
        assert (path["path"], path["pathType"]) == (f"/{name}", "Prefix")
        assert ("Service", name) in kinds and ("Deployment", name) in kinds
    assert all(o["metadata"]["namespace"] == "demo" for o in objects)


def test_kubernetes_objects_carry_replicas_probes_and_exact_routes(project: Path) -> None:
    objects = exported("kubernetes", "manifest.xml", "--image", "db:2", cwd=project)
    valid_kubernetes(objects)
    deployment = next(o for o in objects if o["kind"] == "Deployment" and
                      o["metadata"]["name"] == "api")  # fmt: skip
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/_/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/_/health"
    assert {"name": "GREETING", "value": "hi there"} in container["env"]
    [ingress] = [o for o in objects if o["kind"] == "Ingress"]
    paths = {(p["path"], p["pathType"]) for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert paths == {("/db", "Prefix"), ("/api", "Prefix"), ("/health", "Exact")}
    # A worker: its Deployment, no Service (nothing is routed to it).
    named = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Deployment", "queue") in named and ("Service", "queue") not in named


def test_an_ingress_path_is_written_as_a_url_spells_it(tmp_path: Path) -> None:
    """Routes are read decoded (/caf%C3%A9/* is /café/*): an Ingress path is escaped again."""
    (tmp_path / "manifest.xml").write_text(
        "<manifest><process><id>a</id><executable>python3</executable>"
        "<route>/caf%C3%A9/*</route><route>/x%25y</route></process></manifest>"
    )
    objects = exported("kubernetes", "manifest.xml", "--image", "x", cwd=tmp_path)
    valid_kubernetes(objects)
    [ingress] = [o for o in objects if o["kind"] == "Ingress"]
    paths = {(p["path"], p["pathType"]) for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert paths == {("/caf%C3%A9", "Prefix"), ("/x%25y", "Exact")}


def test_an_argument_with_backslashes_is_not_taken_for_a_windows_path(tmp_path: Path) -> None:
    """Python's `-c` code, a regular expression, a protocol-relative URL: all exported (the
    backslash alone made an argument a Windows path, and the message named the executable);
    a Windows path among the arguments is refused by its own name."""
    args = ['print("a\\nb")', r"\d+\.json", "//cdn.example.com/lib", "--out=a.b"]
    (tmp_path / "manifest.xml").write_text(
        "<manifest><process><id>a</id><executable>python3</executable>"
        + "".join(f"<arg>{arg}</arg>" for arg in args)
        + "<route>/a/*</route></process></manifest>"
    )
    exported("compose", "manifest.xml", "--image", "x", cwd=tmp_path)
    (tmp_path / "manifest.xml").write_text(
        "<manifest><process><id>a</id><executable>python3</executable>"
        "<arg>-u</arg><arg>C:\\app\\serve.py</arg><route>/a/*</route></process></manifest>"
    )
    done = export("compose", "manifest.xml", "--image", "x", cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert "a: C:\\app\\serve.py is a Windows path" in done.stderr, done.stderr


@pytest.mark.parametrize(("engine", "process", "args", "says"), [
    ("compose", "<executable>python3</executable><route>/a/*</route>", (),
     "a: no image to run it in; add <image>IMAGE</image> to it or pass --image a=IMAGE"),
    ("kubernetes", "<executable>C:\\tools\\a.exe</executable><route>/a/*</route>",
     ("--image", "x"), "a: C:\\tools\\a.exe is a Windows path"),
    ("compose", "<upstream>http://127.0.0.1:9000</upstream><route>/a/*</route>",
     ("--front-image", "x"), "inside a container that is the container itself"),
    ("kubernetes", "<upstream>http://db.internal:9000</upstream><route>/a/*</route>", (),
     "an Ingress routes to Services in the cluster only"),
    ("kubernetes", "<executable>python3</executable><route>/a{x}/*</route>", ("--image", "x"),
     "a: route /a{x}/* has characters an Ingress path cannot hold"),
    ("kubernetes", "<executable>python3</executable><route>/a/*</route>",
     ("--image", "nope=x"), "--image nope=...: no such process"),
])  # fmt: skip
def test_what_cannot_be_expressed_is_refused_with_the_reason(
    tmp_path: Path, engine: str, process: str, args: tuple[str, ...], says: str
) -> None:
    (tmp_path / "manifest.xml").write_text(f"<manifest><process><id>a</id>{process}</process>"
                                           "</manifest>")  # fmt: skip
    done = export(engine, "manifest.xml", *args, cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert says in done.stderr, done.stderr
    assert "cannot be exported as it is" in done.stderr


def test_a_process_id_no_engine_can_name_is_refused_by_each(tmp_path: Path) -> None:
    """An id the manifest takes (any printable word) that a compose service or a Kubernetes
    object cannot be named: the engine would refuse the file, so export does, saying why."""
    (tmp_path / "manifest.xml").write_text(
        "<manifest><process><id>a&amp;b</id><executable>python3</executable>"
        "<route>/a/*</route></process></manifest>"
    )
    for engine, says in (("compose", "a&b: cannot be a compose service name"),
                         ("kubernetes", "a&b: cannot be a Kubernetes name")):  # fmt: skip
        done = export(engine, "manifest.xml", "--image", "a&b=x", cwd=tmp_path)
        assert done.returncode == 1 and says in done.stderr, done.stderr


@pytest.mark.parametrize(("args", "says"), [
    (("--namespace", "Demo_NS"), "argument --namespace: 'Demo_NS' is not a Kubernetes name"),
    (("--ingress-class", "Nginx"), "argument --ingress-class: 'Nginx' is not a Kubernetes name"),
    (("--host", "demo test"), "argument --host: 'demo test' is not a host name"),
    (("--image", "echo=My Image"), "--image 'echo=My Image': 'My Image' is not an image "
     "reference: write NAME[:TAG] in lower case"),
    (("compose", "--bind", "127.0.0.1:0"), "--bind/BIND_ADDRESS: the front needs a port to "
     "publish, not 0: write e.g. 127.0.0.1:3000"),  # (it wrote 127.0.0.1:0:0)
])  # fmt: skip
def test_a_name_kubernetes_or_docker_would_refuse_is_refused_here(
    args: tuple[str, ...], says: str
) -> None:
    """Said by export, with the spelling to use, not later by kubectl or docker."""
    engine, args = (args[0], args[1:]) if args[0] == "compose" else ("kubernetes", args)
    done = export(engine, "manifest.xml", "--image", "x:1", *args)
    assert done.returncode == 2 and done.stdout == ""
    assert says in done.stderr, done.stderr


@pytest.mark.parametrize(("where", "why"), [
    ("no/such/folder/out.yml", "No such file or directory"), (".", "Is a directory"),
])  # fmt: skip
def test_an_output_that_cannot_be_written_is_one_clear_line(
    tmp_path: Path, where: str, why: str
) -> None:
    out = tmp_path / where
    done = export("compose", "manifest.xml", "--image", "x:1", "-o", str(out))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot write {out}: {why}; give -o a file in a folder that exists" in done.stderr


def test_an_image_in_the_manifest_is_checked_at_load(tmp_path: Path) -> None:
    (tmp_path / "manifest.xml").write_text(
        "<manifest><process><id>a</id><executable>python3</executable><route>/a/*</route>"
        "<image>Python:3.12</image></process></manifest>"
    )
    done = export("compose", "manifest.xml", cwd=tmp_path)
    assert done.returncode == 1
    assert '<image> "Python:3.12" is not an image reference' in done.stderr, done.stderr


async def test_the_exported_layout_runs_here(tmp_path: Path, socket_dir: Path) -> None:
    """Each service's command, run here (its /app being this repository, its port a free
    one), serves exactly its process; the front's manifest, with each service's name made
    that address, takes every route to the right one."""
    [compose] = exported("compose", "manifest.xml", "--image", "everything:1")
    addresses = {}
    async with aiohttp.ClientSession() as http:
        containers = []
        try:
            for name, service in compose["services"].items():
                if name == "local-lambdas":
                    continue
                # Port 0, the port read from its output: a port found free and then given
                # to it may be taken meanwhile by another worker's child.
                command = [part.replace("/app/", f"{ROOT}/").replace("0.0.0.0:8080",
                                                                        "127.0.0.1:0")
                           for part in service["command"][1:]]  # fmt: skip
                container = cli(*command, cwd=ROOT)
                containers.append(container)
                proxy = await container.__aenter__()
                found = await proxy.expect(r"listening on (http://127\.0\.0\.1:\d+)")
                addresses[name] = found.group(1)

            async def ready(url: str) -> bool:
                try:
                    async with http.get(url + "/_/ready") as reply:
                        return reply.status == 200
                except aiohttp.ClientError:
                    return False

            for url in addresses.values():
                assert await eventually(functools.partial(ready, url), 20)
            for name, url in addresses.items():  # exactly its process, nothing else
                async with http.get(url + "/_/status") as reply:
                    status = await reply.json()
                started = {p for p, s in status["processes"].items() if s["instances"]}
                assert started == {name}
            content = compose["configs"]["front-manifest"]["content"]
            for name, url in addresses.items():
                content = content.replace(f"http://{name}:8080", url)
            front = tmp_path / "front.xml"
            front.write_text(content)
            async with running(front, socket_dir) as run:
                for name in addresses:
                    async with run.http.post(f"{run.url}/{name}/x?q=1", data=b"hi") as reply:
                        assert reply.status < 500, (name, await reply.text())

                async def served(name: str, url: str) -> bool:
                    # A relayed answer is counted once streamed out, just after the client
                    # has it: looked at until then.
                    async with http.get(url + "/_/status") as reply:
                        said = await reply.text()
                    assert reply.status == 200, (name, reply.status, said)
                    seen = json.loads(said)["processes"].get(name)
                    assert seen is not None, (name, said)
                    return seen["requests"] == 1  # type: ignore[no-any-return]

                for name, url in addresses.items():
                    assert await eventually(functools.partial(served, name, url), 5), name
        finally:
            for container in containers:
                await container.__aexit__(None, None, None)


async def test_no_deps_starts_the_process_and_its_tasks_not_the_processes_it_needs(
    write_manifest: WriteManifest, socket_dir: Path
) -> None:
    path = write_manifest(
        f"<task><id>t</id><executable>{PYTHON}</executable><arg>-c</arg><arg>pass</arg></task>",
        f"<process><id>b</id><executable>{PYTHON}</executable><arg>-m</arg><arg>http.server"
        "</arg><arg>${PORT}</arg><route>/b/*</route><communication_mode>passthrough"
        "</communication_mode></process>",
        f"<process><id>a</id><executable>{PYTHON}</executable><arg>-m</arg><arg>http.server"
        "</arg><arg>${PORT}</arg><route>/a/*</route><communication_mode>passthrough"
        "</communication_mode><depends_on>b</depends_on><depends_on>t</depends_on></process>",
    )
    async with running(path, socket_dir, only=("a",), no_deps=True, wait=False) as run:
        assert await run.pool("a").wait_ready(15)
        assert run.started.supervisor.tasks["t"].state == "DONE"
        assert run.pool("b").disabled is not None and not run.pool("b").instances
    async with running(path, socket_dir, only=("a",), wait=False) as run:  # without: b too
        assert await run.pool("a").wait_ready(15)
        assert run.pool("b").instances

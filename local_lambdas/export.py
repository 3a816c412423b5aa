"""`local-lambdas export compose|kubernetes`: the manifest handed over to a container engine.

The layout (README, "Beyond one machine"): each process runs in a container of its own, from
its <image> (or `--image ID=IMAGE`, which wins), where local-lambdas serves exactly that
process (`--only ID --no-deps --instances 1`) on port 8080, so that pipes stay inside the
container and any child protocol works. The image holds the child's runtime, local-lambdas,
and, at /app, the directory export runs in (the manifest's relative paths start there, as
they do on the laptop). <instances> become replicas; the engine orders containers by
<depends_on>. Compose adds a front service: local-lambdas with a manifest of route-only
processes (<upstream>) pointing at those services, on the port local-lambdas would bind.
Kubernetes has an Ingress take each route to its process's Service instead
(export_kubernetes.py).

Environment: a container gets its process's env-file values (--env-file, .env, <env_file>)
and the value, at export, of every `${NAME}` the manifest reads from the environment; it
runs with --no-env-file. What cannot be expressed (a Windows path, a process without an
image, a route an Ingress cannot hold) stops the export with every reason at once. The
output is the same for the same manifest, environment and options.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any
from xml.sax.saxutils import escape

import yaml

from local_lambdas.config import Manifest, Process
from local_lambdas.variables import INSTANCE_NAMES, references

APP = "/app"  # where the image holds the directory export ran in
PORT = 8080  # where each process's local-lambdas listens in its container
FRONT = "local-lambdas"  # the compose front service, and the Kubernetes objects' part-of
_FRONT_MANIFEST = "/etc/local-lambdas/front.xml"
READY = "/_/ready"


class ExportError(ValueError):
    """What stops an export; `problems` has one line each, with what to do."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Export:
    """What both engines are written from: the processes to run, each with its image and
    container environment, and the manifest's path inside the image."""

    manifest: Manifest
    manifest_path: str  # relative to the directory export runs in (APP in the image)
    images: dict[str, str]
    variables: dict[str, str]  # ${NAME}s the manifest reads from the environment
    problems: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        manifest: Manifest,
        path: Path,
        text: str,
        images: Mapping[str, str],
        base: Path,
    ) -> Export:
        """Check `manifest` (read from `path`, whose text is `text`) for export; `images`
        are the --image ones. Raises ExportError."""
        problems = []
        try:
            inside = path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            inside = path.name
            problems.append(
                f"{path} is not under {base}: run export from the directory the "
                "image holds at /app (the manifest's paths start there)"
            )
        ids = {p.id for p in manifest.processes}
        for name in images:
            if name and name not in ids:
                problems.append(
                    f"--image {name}=...: no such process; the processes are "
                    f"{', '.join(sorted(ids))}"
                )
        chosen = {}
        for process in spawned(manifest):
            image = images.get(process.id) or process.image or images.get("")
            if not image:
                problems.append(
                    f"{process.id}: no image to run it in; add <image>IMAGE</image> "
                    f"to it or pass --image {process.id}=IMAGE (an image with its "
                    "runtime and local-lambdas: see the README)"
                )
            else:
                chosen[process.id] = image
            windows = [process.executable] if _windows_only(process.executable) else []
            windows += [arg for arg in process.args if _windows_only(arg, argument=True)]
            if windows:
                problems.append(
                    f"{process.id}: {windows[0]} is a Windows path; the containers run Linux"
                )
        names = sorted({ref.name for ref in references(text)} - INSTANCE_NAMES)
        variables = {name: os.environ[name] for name in names if name in os.environ}
        return cls(manifest, inside, chosen, variables, problems)

    def container_command(self, process: Process) -> list[str]:
        """The command of `process`'s container: local-lambdas serving exactly it."""
        return [
            "local-lambdas",
            f"{APP}/{self.manifest_path}",
            "--only",
            process.id,
            "--no-deps",
            "--instances",
            "1",
            "--bind",
            f"0.0.0.0:{PORT}",
            "--no-env-file",
        ]

    def environment(self, process: Process) -> dict[str, str]:
        return {**self.variables, **dict(process.environment)}

    def needs(self, process: Process) -> list[str]:
        """The processes `process` depends on (tasks run in its own container)."""
        running = {p.id for p in spawned(self.manifest)}
        return [need for need in process.depends_on if need in running]

    def raise_problems(self) -> None:
        if self.problems:
            raise ExportError(self.problems)


def compose(export: Export, *, bind: tuple[str, int], front_image: str | None) -> str:
    """A compose file: a service per process, and the front service on `bind`."""
    services: dict[str, Any] = {}
    for process in spawned(export.manifest):
        if process.id == FRONT:
            export.problems.append(f"{FRONT}: the front service has this name; rename the process")
        service: dict[str, Any] = {
            "image": export.images.get(process.id, ""),
            "working_dir": APP,
            "command": export.container_command(process),
        }
        if environment := export.environment(process):
            service["environment"] = environment
        if needs := export.needs(process):
            service["depends_on"] = {need: {"condition": "service_healthy"} for need in needs}
        service["healthcheck"] = {
            "test": [
                "CMD",
                "python3",
                "-c",
                f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{PORT}{READY}')",
            ],
            "interval": "2s",
            "timeout": "2s",
            "retries": probe_tries(process),
        }
        if process.instances > 1:
            service["deploy"] = {"replicas": process.instances}
        services[process.id] = service
    for process in export.manifest.processes:
        if process.upstream is not None and _loopback(process.upstream):
            export.problems.append(
                f"{process.id}: <upstream> {process.upstream} is this "
                "machine; inside a container that is the container itself: "
                "use a name the containers can reach (host.docker.internal, "
                "a service)"
            )
    image = front_image or next(iter(export.images.values()), "")
    if not image and not export.problems:
        export.problems.append(
            "no image for the front service: pass --front-image IMAGE (any "
            "image with local-lambdas)"
        )
    export.raise_problems()
    host, port = bind
    services[FRONT] = {
        "image": image,
        "command": [
            "local-lambdas",
            _FRONT_MANIFEST,
            "--bind",
            f"0.0.0.0:{port}",
            "--no-env-file",
        ],
        "configs": [{"source": "front-manifest", "target": _FRONT_MANIFEST}],
        "ports": [f"{_host_part(host)}{port}:{port}"],
        "depends_on": {p.id: {"condition": "service_started"} for p in spawned(export.manifest)},
    }
    if not services[FRONT]["depends_on"]:
        del services[FRONT]["depends_on"]
    document = {
        "services": services,
        "configs": {"front-manifest": {"content": front_manifest(export.manifest)}},
    }
    return as_yaml([_literal_dollars(document)])


def _literal_dollars(value: Any) -> Any:
    """Compose reads `$NAME` in any value as its own variable: every `$` written is `$$`."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _literal_dollars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_dollars(v) for v in value]
    return value


# Seconds a front's <timeout> leaves past its service's, so that the service's own 504, which
# says why, comes first.
_FRONT_ROOM = 5.0


def front_manifest(manifest: Manifest) -> str:
    """The front's manifest: every process as a route-only one, at its service (or at its
    own <upstream>), with its routes and what bounds a request at the front as it did
    locally: <methods>, <max_body_size>, <timeout> (a service's with _FRONT_ROOM more),
    <concurrency> (every replica's slots), <queue_timeout>, <max_queue>; and a route-only
    process's own <cors> and <strip_prefix>, which no service applies behind it."""
    lines = ["<manifest>"]
    for process in manifest.processes:
        if not process.routes:
            continue  # <communication_mode> none: nothing to route to its service
        upstream = process.upstream or f"http://{process.id}:{PORT}"
        lines += [
            "  <process>",
            f"    <id>{escape(process.id)}</id>",
            f"    <upstream>{escape(upstream)}</upstream>",
        ]
        lines += [f"    <route>{escape(route)}</route>" for route in process.routes]
        if process.methods:
            lines.append(f"    <methods>{' '.join(process.methods)}</methods>")
        own = process.upstream is not None  # (else its service applies the rest itself)
        timeout = process.timeout + (0.0 if own else _FRONT_ROOM)
        lines += [
            f"    <timeout>{_seconds(timeout)}</timeout>",
            f"    <max_body_size>{process.max_body_size}</max_body_size>",
            f"    <concurrency>{process.slots * process.instances}</concurrency>",
            f"    <queue_timeout>{_seconds(process.queue_timeout)}</queue_timeout>",
            f"    <max_queue>{process.max_queue}</max_queue>",
        ]
        if own:
            lines += [f"    <cors>{escape(origin)}</cors>" for origin in process.cors]
            if process.strip_prefix is not None:
                lines.append(f"    <strip_prefix>{escape(process.strip_prefix)}</strip_prefix>")
        lines.append("  </process>")
    lines.append("</manifest>")
    return "\n".join(lines) + "\n"


def _seconds(value: float) -> str:
    """A duration as the manifest reads one, to the microsecond (never in e-notation)."""
    return f"{value:.6f}".rstrip("0").rstrip(".") + "s"


def probe_tries(process: Process) -> int:
    """Probes 2 s apart before a container counts as failed: as long as local-lambdas
    itself gives the child (<startup_timeout> for each of its start tries)."""
    return max(3, int(process.startup_timeout * (process.start_retries + 1) / 2))


def spawned(manifest: Manifest) -> list[Process]:
    """The processes that run in containers (not route-only ones)."""
    return [p for p in manifest.processes if p.upstream is None]


def _windows_only(value: str, *, argument: bool = False) -> bool:
    """A drive letter, a UNC path, a .exe/.cmd/.bat/.ps1 program, or, in the executable,
    backslashes. Not an argument's backslash alone: Python's `-c` code, a regular
    expression or JSON has them; nor a `//host/...` one (a protocol-relative URL)."""
    windows = PureWindowsPath(value)
    if argument:
        drive = (value[1:3] in (":\\", ":/") and value[:1].isalpha()) or value.startswith("\\\\")
    else:
        drive = bool(windows.drive) or "\\" in value
    return drive or (" " not in value and windows.suffix.lower() in _WINDOWS_PROGRAMS)


_WINDOWS_PROGRAMS = (".exe", ".cmd", ".bat", ".ps1")


def _loopback(upstream: str) -> bool:
    host = upstream.split("//", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _host_part(host: str) -> str:
    """The host of a compose port mapping ("" for every address)."""
    if host in ("0.0.0.0", "::", ""):
        return ""
    return f"[{host}]:" if ":" in host else f"{host}:"


class _Dumper(yaml.SafeDumper):
    """YAML with multi-line strings (the front manifest) as literal blocks, and no anchors:
    a value written twice is written out twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def as_yaml(documents: list[dict[str, Any]]) -> str:
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, width=100)

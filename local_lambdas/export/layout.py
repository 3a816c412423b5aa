"""`local-lambdas export compose|kubernetes`: the manifest handed over to a container engine.

The layout (README, "Beyond one machine"): each process runs in a container of its own, from
its <image> (or `--image ID=IMAGE`, which wins), where local-lambdas serves exactly that
process (`--only ID --no-deps --instances 1`) on port 8080, so that pipes stay inside the
container and any child protocol works. The image holds the child's runtime, local-lambdas,
and, at /app, the directory export runs in (the manifest's relative paths start there, as
they do on the laptop). <instances> become replicas; the engine orders containers by
<depends_on>. Compose adds a front service: local-lambdas with a manifest of route-only
processes (<upstream>) pointing at those services, on the port local-lambdas would bind
(compose.py). Kubernetes has an Ingress take each route to its process's Service instead
(kubernetes.py).

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

import yaml

from local_lambdas.config import Manifest, Process
from local_lambdas.variables import INSTANCE_NAMES, RUN_NAMES, references

APP = "/app"  # where the image holds the directory export ran in
PORT = 8080  # where each process's local-lambdas listens in its container
FRONT = "local-lambdas"  # the compose front service, and the Kubernetes objects' part-of
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
        names = sorted({ref.name for ref in references(text)} - INSTANCE_NAMES - RUN_NAMES)
        variables = {name: os.environ[name] for name in names if name in os.environ}
        return cls(manifest, inside, chosen, variables, problems)

    def container_command(self, process: Process, child_url: str | None = None) -> list[str]:
        """The command of `process`'s container: local-lambdas serving exactly it; its
        children's LOCAL_LAMBDAS_URL `child_url` (the front), else that container's own."""
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
            *(["--child-url", child_url] if child_url else []),
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

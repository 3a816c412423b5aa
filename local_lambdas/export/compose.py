"""`local-lambdas export compose`: a compose file of a service per process (layout.py says
the layout), and the front service, local-lambdas with a manifest of route-only processes
pointing at those services (front_manifest), on the port local-lambdas would bind."""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape

from local_lambdas.config import Manifest
from local_lambdas.export.layout import (
    APP,
    FRONT,
    PORT,
    READY,
    Export,
    as_yaml,
    probe_tries,
    spawned,
)

_FRONT_MANIFEST = "/etc/local-lambdas/front.xml"
_SERVICE_NAME = re.compile(r"[a-zA-Z0-9._-]+")  # the compose specification's


def compose(export: Export, *, bind: tuple[str, int], front_image: str | None) -> str:
    """A compose file: a service per process, and the front service on `bind`."""
    services: dict[str, Any] = {}
    for process in spawned(export.manifest):
        if process.id == FRONT:
            export.problems.append(f"{FRONT}: the front service has this name; rename the process")
        elif not _SERVICE_NAME.fullmatch(process.id):
            export.problems.append(
                f"{process.id}: cannot be a compose service name (letters, digits, '.', '_' "
                "and '-'); rename the process"
            )
        service: dict[str, Any] = {
            "image": export.images.get(process.id, ""),
            "working_dir": APP,
            # A child calls the other routes as on the laptop: at the front, by its name.
            "command": export.container_command(process, f"http://{FRONT}:{bind[1]}"),
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


def _loopback(upstream: str) -> bool:
    host = upstream.split("//", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _host_part(host: str) -> str:
    """The host of a compose port mapping ("" for every address)."""
    if host in ("0.0.0.0", "::", ""):
        return ""
    return f"[{host}]:" if ":" in host else f"{host}:"

"""`local-lambdas export kubernetes`: a Deployment and a Service per process (layout.py's
layout: local-lambdas serving that process alone on port 8080 in its container), with
readiness, liveness and startup probes on the proxy's /_/ endpoints and a memory request
from what the proxy may hold for it; one Ingress carries every route to its process's
Service (`/api/*` as the Prefix /api). A process id that cannot be a Kubernetes name, a
route-only process, or a route an Ingress path cannot hold stops the export.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from local_lambdas.config import DEFAULT_CONCURRENCY, Process
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

_HEALTH = "/_/health"
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_INGRESS_PATH = re.compile(r"/[A-Za-z0-9._~/@:!$&'()+,;=%-]*")
_PRINTABLE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) != "%")


def kubernetes(
    export: Export, *, namespace: str | None, ingress_class: str | None, host: str | None
) -> str:
    """A Deployment and a Service per process, and one Ingress carrying every route."""
    names: dict[str, str] = {}
    for process in export.manifest.processes:
        if process.upstream is not None:
            export.problems.append(
                f"{process.id}: route-only (<upstream>); an Ingress routes "
                "to Services in the cluster only: run it there as a process "
                "with an <image>, or leave it out"
            )
            continue
        name = process.id.lower().replace("_", "-").replace(".", "-")[:63]
        if not _K8S_NAME.fullmatch(name):
            export.problems.append(
                f"{process.id}: cannot be a Kubernetes name (lowercase "
                "letters, digits and '-'); rename the process"
            )
        elif name in names.values():
            export.problems.append(
                f"{process.id}: its Kubernetes name {name} is taken by another process; rename one"
            )
        names[process.id] = name
    paths = list(_ingress_paths(export, names))
    export.raise_problems()
    documents: list[dict[str, Any]] = []
    for process in spawned(export.manifest):
        documents += _workload(export, process, names[process.id], namespace)
    rule: dict[str, Any] = {"http": {"paths": paths}}
    if host:
        rule = {"host": host, **rule}
    spec: dict[str, Any] = {"rules": [rule]}
    if ingress_class:
        spec = {"ingressClassName": ingress_class, **spec}
    documents.append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": _metadata(FRONT, namespace),
            "spec": spec,
        }
    )
    return as_yaml(documents)


def _workload(
    export: Export, process: Process, name: str, namespace: str | None
) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": FRONT}
    concurrency = process.concurrency or DEFAULT_CONCURRENCY[process.communication_mode]
    # What the proxy may hold in memory for it: every request in flight with a body at
    # <max_body_size>, over a base for the proxy itself; the child's own needs come on top.
    memory = 64 + -(-concurrency * process.max_body_size // 1024**2)
    probe = {"httpGet": {"path": READY, "port": "http"}, "periodSeconds": 2}
    container: dict[str, Any] = {
        "name": name,
        "image": export.images[process.id],
        "workingDir": APP,
        "command": export.container_command(process),
        "ports": [{"name": "http", "containerPort": PORT}],
    }
    if environment := export.environment(process):
        container["env"] = [{"name": k, "value": v} for k, v in environment.items()]
    container |= {
        "readinessProbe": {**probe, "failureThreshold": 3},
        "livenessProbe": {
            "httpGet": {"path": _HEALTH, "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "startupProbe": {
            **probe,
            "failureThreshold": probe_tries(process),
        },
        "resources": {"requests": {"cpu": "100m", "memory": f"{memory}Mi"}},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, namespace, labels),
        "spec": {
            "replicas": process.instances,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, namespace, labels),
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
        },
    }
    return [deployment, service] if process.routes else [deployment]  # (mode none: no Service)


def _ingress_paths(export: Export, names: dict[str, str]) -> Iterator[dict[str, Any]]:
    """An Ingress path per route: `/api/*` as Prefix /api, an exact route as Exact."""
    for process in export.manifest.processes:
        if process.id not in names:
            continue
        for read in process.routes:
            # Routes are kept decoded (config_values.check_route); an Ingress path is written as a
            # URL spells it: /café/* as /caf%C3%A9/* (what else it cannot hold, refused).
            route = quote(read, safe=_PRINTABLE, errors="surrogateescape")
            if not _INGRESS_PATH.fullmatch(route.removesuffix("*")):
                export.problems.append(
                    f"{process.id}: route {route} has characters an Ingress path cannot hold"
                )
                continue
            prefix = route.endswith("*")
            path = (route.removesuffix("*").rstrip("/") or "/") if prefix else route
            backend = {"service": {"name": names[process.id], "port": {"number": PORT}}}
            kind = "Prefix" if prefix else "Exact"
            yield {"path": path, "pathType": kind, "backend": backend}


def _metadata(
    name: str, namespace: str | None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = labels
    return metadata

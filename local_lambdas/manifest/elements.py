"""The manifest's vocabulary: every element a <process> and a <task> may hold (manifest.xsd
describes the same for editors), the model field each fills, the ones a process must have,
the ones only a process that requests go to may hold (not a worker, in
<communication_mode>none</communication_mode>), and those only a process that is started may
hold (not a route-only one, with <upstream>). reader.py reads by it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Element:
    """How an element fills its model field; `example` shows it, for a missing one."""

    field: str
    repeatable: bool = False
    example: str = ""


# Every element a <process> may hold, in the order the README documents them.
ELEMENTS: dict[str, Element] = {
    "id": Element("id", example="<id>api-service</id>"),
    "executable": Element("executable", example="<executable>python3</executable>"),
    "arg": Element("args", repeatable=True),
    "route": Element("routes", repeatable=True, example="<route>/api/*</route>"),
    "pipe_name": Element("pipe_name"),
    "working_dir": Element("working_dir"),
    "communication_mode": Element("communication_mode"),
    "env": Element("env", repeatable=True),
    "env_file": Element("env_files", repeatable=True),
    "depends_on": Element("depends_on", repeatable=True),
    "build": Element("build"),
    "watch": Element("watch"),
    "cors": Element("cors", repeatable=True),
    "start": Element("start"),
    "upstream": Element("upstream"),
    "image": Element("image"),
    "idle_timeout": Element("idle_timeout"),
    "port": Element("port"),
    "methods": Element("methods"),
    "timeout": Element("timeout"),
    "startup_timeout": Element("startup_timeout"),
    "stop_timeout": Element("stop_timeout"),
    "max_body_size": Element("max_body_size"),
    "restart": Element("restart"),
    "start_retries": Element("start_retries"),
    "instances": Element("instances"),
    "concurrency": Element("concurrency"),
    "queue_timeout": Element("queue_timeout"),
    "max_queue": Element("max_queue"),
    "max_requests": Element("max_requests"),
    "cache": Element("cache"),
    "strip_prefix": Element("strip_prefix"),
    "ready_path": Element("ready_path"),
}
# What a <task> may hold: a program to run, and what it waits for.
TASK_ELEMENTS = {
    name: ELEMENTS[name]
    for name in ("id", "executable", "arg", "working_dir", "env", "env_file", "depends_on",
                 "timeout")
}  # fmt: skip
REQUIRED = ("id", "executable", "route")  # (a worker needs no route; route-only, no executable)
# What only a process that requests go to may hold: refused in <communication_mode> none.
FOR_REQUESTS = frozenset({
    "route", "pipe_name", "cors", "start", "upstream", "idle_timeout", "port", "methods",
    "timeout", "startup_timeout", "max_body_size", "concurrency", "queue_timeout", "max_queue",
    "max_requests", "cache", "strip_prefix", "ready_path",
})  # fmt: skip
# What only a process local-lambdas starts may hold: refused with <upstream> (a route-only
# process starts nothing). Its <depends_on> still holds its routes until what it names is there.
FOR_STARTED = frozenset({
    "arg", "pipe_name", "working_dir", "env", "env_file", "build", "watch", "start",
    "idle_timeout", "port", "startup_timeout", "stop_timeout", "restart", "start_retries",
    "instances", "max_requests", "ready_path",
})  # fmt: skip
FIELD_TO_ELEMENT = {spec.field: name for name, spec in ELEMENTS.items()}  # (for messages)

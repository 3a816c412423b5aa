"""The manifest's vocabulary: every element a <process> and a <task> may hold (manifest.xsd
describes the same for editors), the model field each fills, the ones a process must have,
the ones only a process that requests go to may hold (not a worker, in
<communication_mode>none</communication_mode>), and those only a process that is started may
hold (not a route-only one, with <upstream>). manifest_reader.py reads by it.
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
# What other process runners (docker compose, process-compose, supervisor, pm2) name what a
# <process> holds here: an unknown element of these names is told the element that does its
# job, not the one spelled most like it (<name> was told <pipe_name>, <cwd> every element).
OTHER_NAMES = {
    "command": "executable", "cmd": "executable", "program": "executable",
    "exec": "executable", "script": "executable",
    "args": "arg", "argument": "arg", "arguments": "arg",
    "cwd": "working_dir", "dir": "working_dir", "directory": "working_dir",
    "workdir": "working_dir", "working_directory": "working_dir",
    "environment": "env", "name": "id",
    "mode": "communication_mode", "protocol": "communication_mode",
    "healthcheck": "ready_path", "health_check": "ready_path", "readiness": "ready_path",
    "readiness_probe": "ready_path", "health": "ready_path",
    "path": "route", "url": "route", "location": "route",
    "depends": "depends_on", "needs": "depends_on",
    "replicas": "instances", "workers": "instances", "scale": "instances",
}  # fmt: skip
_WEB = "the child is any web server, WebSockets and streams included"
_PIPE = "the child listens on a named pipe (a Unix socket), PIPE_ADDRESS"
# Values from elsewhere, and ours that do what they mean: a <communication_mode> named for
# what the child serves (`https` was told "did you mean 'http'?", the JSON envelope, for a
# web server), and docker compose's <restart> policies.
_ALWAYS = ("always", "it starts again whenever it exits, until local-lambdas stops")
_NEVER = ("never", "it is not started again once it exits")
OTHER_VALUES: dict[str, dict[str, tuple[str, str]]] = {
    "communication_mode": {
        "https": ("passthrough", "children speak plain HTTP; the proxy serves HTTPS itself "
                  "(--tls)"),
        "web": ("passthrough", _WEB), "proxy": ("passthrough", _WEB),
        "reverse-proxy": ("passthrough", _WEB), "reverse_proxy": ("passthrough", _WEB),
        "server": ("passthrough", _WEB), "tcp": ("passthrough", _WEB),
        "websocket": ("passthrough", _WEB), "websockets": ("passthrough", _WEB),
        "ws": ("passthrough", _WEB), "sse": ("passthrough", _WEB),
        "socket": ("pipe", _PIPE), "unix": ("pipe", _PIPE), "uds": ("pipe", _PIPE),
        "named_pipe": ("pipe", _PIPE), "named-pipe": ("pipe", _PIPE),
        "worker": ("none", "nothing is routed to it"),
        "background": ("none", "nothing is routed to it"),
    },
    "restart": {
        "unless-stopped": _ALWAYS,
        "no": _NEVER, "false": _NEVER, "true": _ALWAYS, "yes": _ALWAYS,
    },
}  # fmt: skip

"""The words other tools' users bring (docker compose, honcho, foreman, pm2, process-compose,
uvicorn and other servers), each with what does its job here: command words and options,
said by the command line's parser (usage.py), and manifest elements and values, said by the
manifest's reader (manifest/reader.py). Without these, the closest of our words by spelling
was the advice, and often the wrong one (`start` was told `restart`, `<name>` `<pipe_name>`,
`--host` `--port`, `https` the `http` envelope). Plain data and one function; --help loads
it, so the function's imports wait for a mistake.
"""

from __future__ import annotations

_RUN = "a manifest runs with no command word: local-lambdas {args}"
_STOP = "Ctrl+C stops the proxy and its children (or SIGTERM to its pid)"
_STATUS = "a running proxy tells its processes' states at /_/status, and shows them at /_/"
# The command words of other process runners (honcho, foreman, docker compose, pm2,
# process-compose) a user may bring, and what does their job here: `start` and `status`
# were taken for mistyped `restart`s.
COMMANDS = {
    "start": _RUN, "up": _RUN, "serve": _RUN,
    "stop": _STOP, "down": _STOP, "kill": _STOP,
    "status": _STATUS, "ps": _STATUS, "list": _STATUS, "ls": _STATUS,
    "validate": "local-lambdas check MANIFEST validates a manifest",
    "version": "local-lambdas --version says which version this is",
    "logs": "the proxy prints its children's output, each line after its process's id",
}  # fmt: skip

_MANIFEST = "the manifest is named without an option: local-lambdas MANIFEST [options]"
_BIND = "--bind HOST:PORT, e.g. --bind 0.0.0.0:3000 (or --port PORT)"
_COLOR = "colour is for terminals only; NO_COLOR=1 turns it off, FORCE_COLOR=1 on"
_DEBUG = "-v (--verbose) adds the proxy's debug lines"
_FOREGROUND = "it runs in the foreground; start it with & or under a service manager"
# Other servers' options (uvicorn's --host and --reload, compose's -f, a daemon's -d) and
# what does their job here: `--host` was told "did you mean --port?", `--json` --version.
OPTIONS = {
    "--host": _BIND, "--listen": _BIND, "--addr": _BIND, "--address": _BIND,
    "-f": _MANIFEST, "-c": _MANIFEST, "--config": _MANIFEST, "--manifest": _MANIFEST,
    "--file": _MANIFEST,
    "--reload": "--watch restarts a process when its files change",
    "--workers": "--instances N, or <instances> in the manifest",
    "--json": "--log-format json",
    "--debug": _DEBUG, "--log-level": _DEBUG,
    "--no-color": _COLOR, "--color": _COLOR, "--colour": _COLOR,
    "-d": _FOREGROUND, "--daemon": _FOREGROUND, "--detach": _FOREGROUND,
}  # fmt: skip

# What other process runners (docker compose, process-compose, supervisor, pm2) name what a
# <process> holds here: an unknown element of these names is told the element that does its
# job, not the one spelled most like it (<name> was told <pipe_name>, <cwd> every element).
ELEMENTS = {
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
VALUES: dict[str, dict[str, tuple[str, str]]] = {
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


def spelled_out(element: str, text: str) -> str:
    """The fix for another runner's element holding a command line (`<command>python3
    app.py</command>`), a list (`<args>-m http.server</args>`) or variables
    (`<environment>DEBUG=1</environment>`), written out: the program in <executable>, each
    argument in an <arg> and each variable in an <env> of its own; "" for another."""
    import contextlib
    import shlex
    from xml.sax.saxutils import escape

    words = text.split()
    if element == "env" and words and all("=" in word[1:] for word in words):
        pairs = (word.partition("=") for word in words)
        return ": " + "".join(f'<env name="{escape(n)}">{escape(v)}</env>' for n, _, v in pairs)
    if element not in ("executable", "arg") or not words:
        return ""
    with contextlib.suppress(ValueError):  # (an unclosed quote: split on spaces)
        words = shlex.split(text)
    head = f"<executable>{escape(words.pop(0))}</executable>" if element == "executable" else ""
    return ": " + head + "".join(f"<arg>{escape(word)}</arg>" for word in words)

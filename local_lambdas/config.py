"""Validated configuration: what the manifest and the command line declare.

Models here are frozen and checked once, when built; code past the manifest loader trusts
them. Building them never touches the OS (no sockets, no directories, no processes). The
text values they take (durations, sizes, routes, origins) are read by config_values.py.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from local_lambdas.config_values import (
    check_image,
    check_origin,
    check_route,
    is_file_name,
    not_a_path,
    parse_duration,
    parse_size,
)

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# What a path element is given by a user who takes it for a switch (<strip_prefix>true).
_SWITCH_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0"})


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Wait = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]


NO_LIMIT = 365 * 24 * 3600.0  # a year stands for "as long as it takes" (never times out)


class Mode(str, Enum):
    """How the proxy talks to a child (docs/protocol.md, "Framing")."""

    PIPE = "pipe"  # one-shot: a connection per request
    PIPE_KEEPALIVE = "pipe-keepalive"  # one JSON line per message on persistent connections
    HTTP = "http"
    PASSTHROUGH = "passthrough"  # the child is an ordinary web server; requests go on as they came
    NONE = "none"  # nothing is routed to it (a worker, a watcher): started and kept running

    @property
    def uses_pipe(self) -> bool:
        return self in (Mode.PIPE, Mode.PIPE_KEEPALIVE)


class Fate(Enum):
    """What becomes of a request, known from its head (Proxy.plan)."""

    BAD_TARGET = "400"
    ADMIN = "admin"
    NO_ROUTE = "404"
    MOVED = "301"  # /dir for the route /dir/: to /dir/, as nginx redirects it
    PREFLIGHT = "preflight"
    NOT_ALLOWED = "405"
    TOO_LARGE = "413"
    RELAY = "relay"  # pass-through: the child's answer streams back
    ENVELOPE = "envelope"  # pipe, pipe-keepalive, http: one envelope each way


class Restart(str, Enum):
    """When an exited child is started again."""

    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


# In-flight requests per instance when the manifest does not say: one-shot pipes and HTTP
# open a connection per request, so a child can take several at once; its own accept queue
# (listen backlog, 128 by default in most runtimes) is the practical bound. Keep-alive pipes
# carry one request at a time per connection, so this is also how many connections the
# proxy keeps open to each instance.
# Pass-through requests may be long-lived (Server-Sent Events, WebSockets) and each holds its
# slot for as long as it lasts, so that mode allows many more.
DEFAULT_CONCURRENCY = {
    Mode.PIPE: 16, Mode.PIPE_KEEPALIVE: 16, Mode.HTTP: 16, Mode.PASSTHROUGH: 256, Mode.NONE: 1
}  # fmt: skip


# Each route checked on its own, so that a problem names the <route> it is in.
Route = Annotated[str, AfterValidator(check_route)]


# Each origin checked on its own, so that a problem names the <cors> it is in.
Origin = Annotated[str, AfterValidator(check_origin)]


class Process(BaseModel):
    """One `<process>` of the manifest, with every default filled in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    executable: str = ""  # empty only for a route-only process (<upstream>)
    args: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()  # none only in Mode.NONE (manifest/reader.py)
    pipe_name: str
    working_dir: Path
    communication_mode: Mode = Mode.PIPE
    env: tuple[tuple[str, str], ...] = ()  # <env>, as written: ${NAME}s expanded at start
    # From the env files (--env-file, .env, <env_file>), in order: under <env>, over the
    # proxy's own environment.
    environment: tuple[tuple[str, str], ...] = ()
    depends_on: tuple[str, ...] = ()  # processes to be READY and tasks done before it starts
    build: str | None = None  # a shell command run before each start of a new pool
    # off: --watch restarts it for no file (it reloads itself: Vite, nodemon, uvicorn --reload)
    watch: Literal["on", "off"] = "on"
    cors: tuple[Origin, ...] = ()  # origins allowed to call its routes from a browser (cors.py)
    start: Literal["at-launch", "on-request"] = "at-launch"  # on-request: at its first request
    # Route-only: requests pass through to this address; nothing is started or supervised.
    upstream: str | None = None
    image: Annotated[str, AfterValidator(check_image)] | None = None  # export/layout.py's container
    idle_timeout: Duration | None = None  # stopped after this long without a request
    port: int | None = Field(default=None, ge=1, le=65535)
    methods: tuple[str, ...] | None = None
    timeout: Duration = 30.0
    startup_timeout: Duration = 10.0
    stop_timeout: Duration = 5.0
    max_body_size: Size = 16 * 1024**2
    restart: Restart = Restart.ALWAYS
    start_retries: int = Field(default=5, ge=0)
    instances: int = Field(default=1, ge=1, le=256)
    concurrency: int | None = Field(default=None, ge=1)
    queue_timeout: Wait = 10.0
    max_queue: int = Field(default=1024, ge=0)
    max_requests: int | None = Field(default=None, ge=1)
    cache: Size | None = None  # bytes of GET answers to keep; see cache.py
    strip_prefix: str | None = None  # passthrough: removed from the path before it goes on
    ready_path: str | None = None  # passthrough: must answer 2xx or 3xx before the child is READY
    line: int = 0  # where the <process> element starts, for messages

    @field_validator("id")
    @classmethod
    def _id_is_printable(cls, value: str) -> str:
        if not value.strip() or any(ch.isspace() or not ch.isprintable() for ch in value):
            raise ValueError("must be a name without spaces, e.g. api-service")
        return value

    @field_validator("pipe_name")
    @classmethod
    def _pipe_name_is_a_file_name(cls, value: str) -> str:
        if not is_file_name(value):
            raise ValueError("must be a plain name, not . or .., without / or \\, e.g. api_pipe")
        return value

    @field_validator("upstream")
    @classmethod
    def _upstream_is_an_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.partition("://")
        if "/" in rest.rstrip("/"):
            raise ValueError("must be http://HOST:PORT with no path; requests keep theirs")
        try:  # (an IPv6 address in brackets, closed; a port from 1 to 65535; no user@)
            parts = urlsplit(f"http://{rest.rstrip('/')}")
            ok = (
                bool(parts.hostname and parts.port)
                and "@" not in rest
                and not (parts.query or parts.fragment or "#" in rest)
            )
        except ValueError:
            ok = False
        if scheme != "http" or not sep or not ok:
            raise ValueError("must be http://HOST:PORT, e.g. http://127.0.0.1:8080")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _runs_something_or_routes_elsewhere(self) -> Process:
        if self.upstream is not None and self.executable:
            raise ValueError("has both <executable> and <upstream>; a route-only process runs "
                             "nothing: remove one")  # fmt: skip
        if self.upstream is not None and self.communication_mode is not Mode.PASSTHROUGH:
            raise ValueError("with <upstream> is passed through: leave <communication_mode> out")
        return self

    @property
    def upstream_address(self) -> str:
        """<upstream>'s HOST:PORT."""
        return (self.upstream or "").partition("://")[2]

    @field_validator("strip_prefix", "ready_path")
    @classmethod
    def _is_a_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        stripping = info.field_name == "strip_prefix"
        if value == "":
            raise ValueError(f"is empty: remove it, or write a path such as "
                             f"{'/api' if stripping else '/health'}")  # fmt: skip
        if value is not None and value.lower() in _SWITCH_WORDS:
            raise ValueError("is not a switch: write " + (
                "the prefix to take off the path, such as /api for the route /api/*"
                if stripping else "the path to ask, such as /health"))  # fmt: skip
        if value is not None and not value.startswith("/"):
            raise ValueError(not_a_path(value))
        return value

    @field_validator("methods")
    @classmethod
    def _methods_are_tokens(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("lists no method; write e.g. GET POST, or leave it out")
        for method in value:
            if not _TOKEN.match(method):
                raise ValueError(f"has {method!r}, which is not an HTTP method name")
        methods = tuple(m.upper() for m in value)
        if "GET" in methods and "HEAD" not in methods:
            # A HEAD is a GET without its body (RFC 9110 9.3.2): nginx's `limit_except GET`
            # lets it in too, and `curl -I` and link checkers send one.
            at = methods.index("GET") + 1
            methods = (*methods[:at], "HEAD", *methods[at:])
        return methods

    @property
    def label(self) -> str:
        return f'<process id="{self.id}">'

    @property
    def slots(self) -> int:
        """How many requests one instance may have in flight."""
        return self.concurrency or DEFAULT_CONCURRENCY[self.communication_mode]

    def same_as(self, other: Process) -> bool:
        """Whether `other` runs the same way: where it stands in the file does not count, nor
        what the running process never reads (<watch>, read from the manifest at each change;
        <image>, export's)."""
        return not self.differences(other)

    def differences(self, other: Process) -> set[str]:
        """The fields `other` sets otherwise, but those `same_as` does not count."""
        ignored = {"line", "watch", "image"}
        mine, theirs = self.model_dump(exclude=ignored), other.model_dump(exclude=ignored)
        return {name for name, value in mine.items() if theirs[name] != value}


# What a reload changes in a running process's pool without restarting its process
# (Pool.retarget): how the proxy routes, bounds and answers its requests, which the
# process never reads. (Not <strip_prefix>: a request waiting for the process as it changes
# has its target cut already; a new pool takes it, and the reload's reroute tells it so.)
ROUTING_ONLY = frozenset({"routes", "timeout", "methods", "max_body_size", "cors"})


class Task(BaseModel):
    """One `<task>`: a program run to completion before the processes that depend on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    executable: str
    args: tuple[str, ...] = ()
    working_dir: Path
    env: tuple[tuple[str, str], ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    depends_on: tuple[str, ...] = ()
    timeout: Duration = 300.0  # a task still running then has failed
    line: int = 0

    @property
    def label(self) -> str:
        return f'<task id="{self.id}">'


class Manifest(BaseModel):
    """A whole manifest file: its processes and tasks in file order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    processes: tuple[Process, ...]
    tasks: tuple[Task, ...] = ()
    warnings: tuple[str, ...] = ()  # what `check` points out without refusing the manifest


class Settings(BaseModel):
    """What the command line decides for one run of the proxy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)
    # The host not chosen (127.0.0.1 by default): [::1] at the same port too, where it can
    # be, so that `localhost` reaches the proxy whichever address a client takes it for.
    also_ipv6: bool = False
    socket_dir: Path
    own_socket_dir: bool = True  # made (mode 0700) for this run and removed at exit
    shutdown_timeout: Duration = 10.0
    client_header_timeout: Duration = 60.0  # nginx's client_header_timeout
    client_body_timeout: Duration = 60.0  # nginx's client_body_timeout: each wait for bytes
    send_timeout: Duration = 60.0  # nginx's send_timeout: each wait for a client to read on
    keepalive_timeout: Duration = 75.0  # nginx's keepalive_timeout: an idle client connection
    log_format: Literal["text", "json"] = "text"
    default_cache: int | None = None  # ENABLE_CACHE: bytes of cache for each process without one
    default_cache_entries: int | None = None  # ENABLE_CACHE=N: at most N answers in each
    admin_prefix: str = "/_/"
    admin_public: bool = False  # admin endpoints beyond health and ready for non-loopback clients
    fast_lane: bool = True  # envelope-mode requests answered outside aiohttp (lane/fastlane.py)
    inspector: bool | None = None  # record requests for /_/ (None: while bound to loopback)
    child_url: str | None = None  # --child-url: the children's LOCAL_LAMBDAS_URL (None: ours)
    inspect_secrets: bool = False  # show and replay Authorization, Cookie, Set-Cookie values
    verbosity: Literal["quiet", "normal", "verbose"] = "normal"
    only: tuple[str, ...] = ()  # --only: the processes to start (empty: all)
    no_deps: bool = False  # --no-deps: --only starts none of the processes they depend on
    cors: tuple[str, ...] = ()  # --cors: origins for every process without its own <cors>
    tls_cert: Path | None = None  # --tls-cert / --tls-key: serve HTTPS
    tls_key: Path | None = None
    tls_self_signed: bool = False  # --tls self-signed
    watch: bool = False
    watch_ignore: tuple[str, ...] = ()
    watch_include: tuple[str, ...] = ()  # --watch-include: only these files restart anything

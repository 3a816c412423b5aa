"""The manifest's checks across processes: what no single <process> shows (an id, route, port
or pipe name claimed twice; a socket path too long; <depends_on> naming nothing or going round
in a circle; a route inside the admin prefix; <cache>, <port>, <ready_path> or <strip_prefix>
where they would do nothing). They read each process's raw values (`Claims`), so that a
process with problems of its own still takes part, and report through the reader's
`problem(line, text)`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from local_lambdas._compat import IS_WINDOWS, MAX_UNIX_PATH
from local_lambdas.config import Mode
from local_lambdas.config_values import check_route
from local_lambdas.errors import did_you_mean
from local_lambdas.router import as_read

# Room left in a socket path for the "-N" that tells apart two live sockets of one pipe_name
# (instances, or a replacement starting beside the instance it replaces).
SOCKET_SUFFIX_ROOM = 4
Report = Callable[[int | None, str], None]  # problem(line, text)
_FIELDS = {"route": "routes"}  # an element's field, where the two names differ


@dataclass(frozen=True)
class Claims:
    """What one <process> claims that no other may: read from the raw values, so that a
    process with other problems still takes part in the duplicate checks."""

    label: str
    values: dict[str, object]
    lines: dict[str, list[int]]
    kind: str = "process"  # or "task"

    def line(self, field_name: str, index: int = 0) -> int:
        found = self.lines.get(field_name) or [int(str(self.values["line"]))]
        return found[min(index, len(found) - 1)]


def across_processes(
    everyone: Sequence[Claims], problem: Report, *, socket_dir: Path, admin_prefix: str
) -> None:
    """Report every problem found across the manifest's processes and tasks."""
    _check_across(everyone, problem, socket_dir)
    _check_dependencies(everyone, problem)
    _check_admin_prefix(everyone, problem, admin_prefix)
    _check_idle_elements(everyone, problem)
    _check_strip_prefix(everyone, problem)


def _check_across(everyone: Sequence[Claims], problem: Report, socket_dir: Path) -> None:
    """Problems no single <process> shows: duplicates, and socket paths too long."""
    firsts: dict[tuple[str, str], tuple[Claims, int]] = {}

    def claim(element: str, value: object, claims: Claims, index: int, fix: str) -> None:
        if not isinstance(value, str) or not value:
            return
        line = claims.line(_FIELDS.get(element, element), index)
        first, first_line = firsts.setdefault((element, value), (claims, line))
        if first is claims and first_line == line:  # (is: two processes may be alike)
            return
        if element == "pipe_name" and "pipe_name" not in first.lines | claims.lines:
            return  # two pipes named by their ids: the id's problem says it
        owner = "this process" if first is claims else first.label
        problem(
            line,
            f'{claims.label}: <{element}> "{value}" is already used by {owner}'
            f" (line {first_line}); {fix}",
        )

    for claims in everyone:
        values = claims.values
        claim("id", values.get("id"), claims, 0, "give each process and task its own <id>")
        if claims.kind == "task":
            continue
        routes = values.get("routes", ())
        for index, route in enumerate(routes if isinstance(routes, tuple) else ()):
            read = _route_as_read(route) if isinstance(route, str) else route
            claim("route", read, claims, index, "a route belongs to one process; remove one")
        if _a_port(values.get("port")):  # (one out of range has its own problem)
            claim("port", values["port"], claims, 0, "give each process its own <port>")
        mode = values.get("communication_mode", Mode.PIPE.value)
        if mode not in (Mode.PIPE.value, Mode.PIPE_KEEPALIVE.value):
            continue
        pipe_name = values.get("pipe_name", values.get("id"))
        if "pipe_name" in values:
            claim("pipe_name", pipe_name, claims, 0, "give each process its own <pipe_name>")
        if isinstance(pipe_name, str) and not IS_WINDOWS:
            path = os.fsencode(socket_dir / pipe_name)
            if len(path) + SOCKET_SUFFIX_ROOM > MAX_UNIX_PATH:
                problem(
                    claims.line("pipe_name"),
                    f"{claims.label}: socket path "
                    f'"{os.fsdecode(path)}" is {len(path)} bytes, over this '
                    f"platform's {MAX_UNIX_PATH} (less {SOCKET_SUFFIX_ROOM} kept for instance "
                    "suffixes); use a shorter <pipe_name>, or a shorter --socket-dir",
                )


def _a_port(value: object) -> bool:
    return isinstance(value, str) and value.strip().isdigit() and 0 < int(value) < 65536


def _route_as_read(route: str) -> str:
    """A route as the router reads it (config_values.check_route), so that two spellings of one
    path (`/caf%C3%A9/*`, `/café/*`) are one route; as written where it cannot be read
    (its own problem says why)."""
    try:
        return check_route(route)
    except ValueError:
        return route


def _check_dependencies(everyone: Sequence[Claims], problem: Report) -> None:
    """Every <depends_on> names a process or task of the manifest, and none waits, however
    indirectly, for itself."""
    graph: dict[str, list[str]] = {}
    for claims in everyone:
        own = claims.values.get("id")
        needs = claims.values.get("depends_on", ())
        if not isinstance(own, str) or not isinstance(needs, tuple):
            continue
        graph[own] = [str(n) for n in needs]
    for claims in everyone:  # (each its own <depends_on>: two may share an id by mistake)
        needs = claims.values.get("depends_on", ())
        for index, need in enumerate(map(str, needs if isinstance(needs, tuple) else ())):
            if need not in graph:
                hint = did_you_mean(need, graph)
                problem(
                    claims.line("depends_on", index),
                    f'{claims.label}: <depends_on> "{need}" is no process or task of this '
                    f"manifest; {hint}the ids are {', '.join(graph)}",
                )
    reported: set[frozenset[str]] = set()
    for start in graph:
        cycle = _cycle_from(start, graph)
        if cycle and frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            claims = next(c for c in everyone if c.values.get("id") == start)
            problem(
                claims.line("depends_on"),
                f"{claims.label}: <depends_on> goes round in a circle: "
                f"{' -> '.join([*cycle, cycle[0]])}; one of them must not wait for another",
            )


def _cycle_from(start: str, graph: dict[str, list[str]]) -> list[str]:
    """The ids of a cycle through `start`, in order, or [] when there is none."""
    path: list[str] = []

    def visit(node: str) -> bool:
        if node == start and path:
            return True
        if node in path or node not in graph:
            return False
        path.append(node)
        if any(visit(need) for need in graph[node]):
            return True
        path.pop()
        return False

    return path if visit(start) else []


_PIPES = frozenset({Mode.PIPE.value, Mode.PIPE_KEEPALIVE.value})
_FOR_HTTP = ("is for the HTTP modes (http, passthrough): a pipe child listens on its socket "
             "($PIPE_ADDRESS) and is ready once it does")  # fmt: skip
# Elements that would do nothing in some modes: those modes, and why (with the fix).
_IDLE_IN: dict[str, tuple[frozenset[str], str]] = {
    "cache": (frozenset({Mode.PASSTHROUGH.value}),
              "works for the envelope modes only; a passthrough answer streams to the client "
              "and is not kept (let the web server or a CDN cache it), so remove <cache>"),
    "port": (_PIPES, f"{_FOR_HTTP}; remove <port>, or choose the mode it serves by"),
    "ready_path": (_PIPES, f"{_FOR_HTTP}; remove <ready_path>, or choose the mode it serves by"),
}  # fmt: skip


def _check_idle_elements(everyone: Sequence[Claims], problem: Report) -> None:
    """Elements that would do nothing in the process's mode (_IDLE_IN)."""
    for claims in everyone:
        mode = claims.values.get("communication_mode", Mode.PIPE.value)
        for name, (modes, why) in _IDLE_IN.items():
            if name in claims.values and mode in modes:
                problem(claims.line(name), f"{claims.label}: <{name}> {why}")


def _check_strip_prefix(everyone: Sequence[Claims], problem: Report) -> None:
    """<strip_prefix> that would do nothing: in an envelope mode (the child gets the whole
    uri), or beginning none of the process's routes."""
    for claims in everyone:
        prefix = claims.values.get("strip_prefix")
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            continue  # absent, or refused already
        listed = claims.values.get("routes", ())
        # (A route that cannot be read has a problem of its own, and is no example to give.)
        routes = [r for r in listed if _readable(r)] if isinstance(listed, tuple) else []
        if claims.values.get("communication_mode", Mode.PIPE.value) != Mode.PASSTHROUGH.value:
            why = ("works for passthrough only: an envelope child gets the request's whole "
                   "uri, to read as it likes; remove <strip_prefix>")  # fmt: skip
        elif routes and not any(_strips(prefix, route) for route in routes):
            base = routes[0].removesuffix("*").rstrip("/") or "/"
            why = (f'"{prefix}" begins none of its routes ({", ".join(routes)}), so nothing '
                   f'would be taken off; write e.g. "{base}"')  # fmt: skip
        else:
            continue
        problem(claims.line("strip_prefix"), f"{claims.label}: <strip_prefix> {why}")


def _readable(route: object) -> bool:
    try:
        return isinstance(route, str) and bool(check_route(route))
    except ValueError:
        return False


def _strips(prefix: str, written: str) -> bool:
    """Whether `prefix` begins some of the paths route `written` matches, both read as
    request paths are (forwarding.strip_prefix)."""
    stripped = as_read(prefix.rstrip("/"))
    route = _route_as_read(written)
    wildcard = route.endswith(("/*", "/"))
    base = route.removesuffix("*").rstrip("/")
    return (
        not stripped
        or base == stripped
        or base.startswith(stripped + "/")
        or (wildcard and stripped.startswith(base + "/"))
    )


def _check_admin_prefix(everyone: Sequence[Claims], problem: Report, prefix: str) -> None:
    for claims in everyone:
        routes = claims.values.get("routes", ())
        for index, written in enumerate(routes if isinstance(routes, tuple) else ()):
            if isinstance(written, str) and (_route_as_read(written) + "/").startswith(prefix):
                problem(
                    claims.line("routes", index),
                    f'{claims.label}: <route> "{written}" '
                    f"is inside {prefix}, where the proxy's own endpoints are (health, "
                    "ready, status, metrics); use another path, or move those with "
                    "--admin-prefix",
                )

"""What a child's environment and arguments are made of: env files and `${NAME}` variables.

Env files (`.env`, --env-file, <env_file>) are read with python-dotenv; the proxy's own
environment is never changed. In <executable>, <arg>, <env>, <working_dir>, <env_file> and
<port>, `${NAME}` is NAME's value, `${NAME:-default}` the default when NAME is unset or
empty and `${NAME-default}` when it is unset; `$$` is a `$`; any other `$` is itself
(`$HOME` reaches the child as written; the loader warns of such a `$NAME` where NAME has a
value, see bare_names).

Some names have a value per instance or run, known only when it starts (INSTANCE_NAMES,
RUN_NAMES): the loader checks the references in <arg> and <env> and leaves them as written;
the instance expands them as it starts. <executable>, <working_dir>, <env_file> and <port>
are expanded at load.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from local_lambdas.errors import did_you_mean

_REFERENCE = re.compile(r"\$\$|\$\{([^}]*)\}")
# What a `${...}` may hold: NAME, NAME:-default (unset or empty) or NAME-default (unset).
_PARTS = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)(.*))?", re.DOTALL)
# A shell's `$NAME`, which is left as written (after the `$$` and `${...}` it is not part of).
_BARE = re.compile(r"\$\$|\$\{[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)")

# Each instance's own values, by the modes that have them.
PIPE_NAMES = frozenset({"PIPE_ADDRESS"})
HTTP_NAMES = frozenset({"PORT", "HTTP_ADDRESS"})
INSTANCE_NAMES = PIPE_NAMES | HTTP_NAMES | {"LOCAL_LAMBDAS_ID", "LOCAL_LAMBDAS_INSTANCE"}
# The run's values that every child and task has (Supervisor.run_env), known once the proxy
# listens; its token is not among them: a secret is not for command lines.
RUN_NAMES = frozenset({"LOCAL_LAMBDAS_URL"})


def before_start(env: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """A process's <env> as its <build> gets it, run before any instance: less the values
    that name an instance's own (${PORT}...), which none has yet, or such a value."""
    unknown = set(INSTANCE_NAMES)
    kept = []
    for name, value in env:
        if any(ref.name in unknown for ref in references(value)):
            unknown.add(name)
        else:
            kept.append((name, value))
    return tuple(kept)


class UnknownVariable(ValueError):
    """A `${NAME}` with no value and no default; the message has a fix."""


@dataclass(frozen=True)
class Reference:
    name: str
    default: str | None  # None: no default
    if_empty: bool = True  # `:-`: the default stands in for an empty value too; `-`: unset only


def references(text: str) -> Iterator[Reference]:
    """The `${...}` references in `text`, `$$` left out. A malformed one (`${}`, `${1A}`,
    a shell form not read here, `${A:?}`) raises UnknownVariable."""
    for match in _REFERENCE.finditer(text):
        if match.group(0) != "$$":
            yield _reference(match.group(1))


def _reference(inside: str) -> Reference:
    parts = _PARTS.fullmatch(inside)
    if parts is None:
        raise UnknownVariable(
            f"${{{inside}}} is not read here: write ${{NAME}}, ${{NAME:-default}} (unset or "
            "empty) or ${NAME-default} (unset), NAME a variable's name as in ${PORT}"
        )
    name, operator, default = parts.groups()
    return Reference(name, default, if_empty=operator != "-")


def bare_names(text: str) -> list[str]:
    """The NAMEs of the shell-style `$NAME`s in `text`, which reach the child as written."""
    return [match.group(1) for match in _BARE.finditer(text) if match.group(1)]


def unexpanded(path: str) -> str:
    """For a path that was not found: the shell-style `$NAME` in it, which nothing expands
    in a path (no shell reads <working_dir>, <executable> or <env_file>), and what to write
    instead; "" when it has none."""
    names = bare_names(path)
    return f"; ${names[0]} is not expanded here: write ${{{names[0]}}}" if names else ""


def expand(text: str, values: Mapping[str, str]) -> str:
    """`text` with its references replaced from `values`. Raises UnknownVariable."""
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        ref = _reference(match.group(1))
        value = values.get(ref.name)
        if value or (value is not None and not ref.if_empty):
            return value
        if ref.default is not None:
            return ref.default
        if value is not None:
            return value  # set, and empty
        raise UnknownVariable(unknown(ref.name, values))

    for _ in references(text):  # checks every reference first
        pass
    return _REFERENCE.sub(replace, text)


def unknown(
    name: str, known: Mapping[str, str] | frozenset[str], *, mode: str | None = None
) -> str:
    """Why `${name}` has no value where `known` are known: as a <process>'s in a
    communication `mode` (as the manifest says it) that does not give it, as a <task>'s,
    or as a name nothing sets."""
    if mode is not None and name in PIPE_NAMES | HTTP_NAMES:
        given = (
            "${PIPE_ADDRESS}, the socket it listens on" if mode.startswith("pipe")
            else "neither: nothing is routed to it" if mode.startswith("none")
            else "${PORT} and ${HTTP_ADDRESS}, where it listens"
        )  # fmt: skip
        modes = "pipe modes" if name in PIPE_NAMES else "http and passthrough modes"
        return (
            f"${{{name}}} is given in the {modes} only; this process's <communication_mode>, "
            f"{mode}, gives {given}"
        )
    if name in INSTANCE_NAMES | RUN_NAMES:  # (where none is known: a <task>, a <port>...)
        return (
            f"${{{name}}} is each process's own value, given as it starts: only a "
            "<process>'s <arg> and <env> can name it"
        )
    hint = did_you_mean(name, known, "${{{}}}", cutoff=0.75)
    return (
        f"${{{name}}} has no value: {hint}set {name} in the environment or an env file, "
        f"or give a default, ${{{name}:-...}}"
    )


class Launchable(Protocol):
    """What a child is started from: a <process> or a <task> (config.py)."""

    @property
    def args(self) -> tuple[str, ...]: ...
    @property
    def env(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def environment(self) -> tuple[tuple[str, str], ...]: ...


def child_environment(spec: Launchable, own: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """A child's environment and arguments: the proxy's environment, under the env files'
    values, under <env>, under the proxy's `own` values for it; `${NAME}`s expanded from
    the same (the loader has checked every name)."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")  # a Python child's output, line by line
    env.update(spec.environment)
    values = {**env, **own}
    for name, value in spec.env:
        env[name] = values[name] = expand(value, values)
    env.update(own)  # the proxy's own values win over <env>
    values.update(own)
    return env, [expand(arg, values) for arg in spec.args]


def search_path(
    environment: Iterable[tuple[str, str]], env: Iterable[tuple[str, str]]
) -> str | None:
    """The PATH a child will have, as far as the manifest tells before it starts: its <env>
    over its env files over the proxy's (child_environment's layers, without an instance's
    own values, which a PATH does not name). None: none at all."""
    values = {**os.environ, **dict(environment)}
    for name, value in env:
        with contextlib.suppress(UnknownVariable):  # (said by the loader)
            values[name] = expand(value, values)
    return values.get("PATH")


class Early(NamedTuple):
    """A line of an env file naming an instance's or the run's own value (${PORT}...),
    which python-dotenv's interpolation, done as the file is read, takes from the proxy's
    environment (so, most often, empty)."""

    line: int
    name: str  # the variable the line sets
    named: str  # the one it names
    raw: str  # its value as written


@dataclass(frozen=True)
class EnvFile:
    """One env file's values, in file order, its lines that could not be read, and its
    lines that name a value no process has while the file is read (`too_early`)."""

    path: Path
    values: dict[str, str]
    bad_lines: list[int]
    too_early: list[Early]


def read_env_file(path: Path) -> EnvFile:
    """Read `path`: UTF-8, or UTF-16 with its BOM, as Windows PowerShell 5 writes
    `"A=1" > .env` (raises OSError when it cannot be read, UnicodeDecodeError when it is
    neither, or holds a NUL)."""
    data = path.read_bytes()
    utf16 = data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    text = data.decode("utf-16" if utf16 else "utf-8-sig")  # (a UTF-8 BOM skipped too)
    nul = -1 if utf16 else data.find(b"\0")
    if nul != -1:  # UTF-16 without its byte-order mark (NULs between ASCII), or no text
        raise UnicodeDecodeError("utf-8", data, nul, nul + 1, "a NUL is no text")
    bad: list[int] = []
    early: list[Early] = []
    seen: set[str] = set()  # the names set above, which dotenv reads a ${NAME} from first
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            bad.append(binding.original.line)
        elif binding.key is not None:
            raw = binding.value or ""
            for ref in _references_or_none(raw):
                if ref.default is None and ref.name in (INSTANCE_NAMES | RUN_NAMES) - seen:
                    early.append(Early(binding.original.line, binding.key, ref.name, raw))
            seen.add(binding.key)
    with _quiet_dotenv():  # a line it cannot read is said once, by the loader, with its fix
        values = {k: v or "" for k, v in dotenv_values(stream=io.StringIO(text)).items()}
    return EnvFile(path, values, bad, early)


def _references_or_none(text: str) -> list[Reference]:
    """The `${...}` in `text`, none where one is malformed (python-dotenv reads it its way)."""
    try:
        return list(references(text))
    except UnknownVariable:
        return []


@contextlib.contextmanager
def _quiet_dotenv() -> Iterator[None]:
    logger = logging.getLogger("dotenv.main")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)

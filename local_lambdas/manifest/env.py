"""A manifest's environment, read for reader.py: the env files (--env-file or `.env`
for every child, <env_file> for one), and each process's ${NAME}s, checked against what its
environment will hold (an instance's own values, such as $PORT, included) and expanded where
nothing but the manifest decides them; a bare $NAME that no shell will expand is warned of.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from xml.sax.saxutils import escape

from local_lambdas.config import Mode
from local_lambdas.config_values import at_home
from local_lambdas.errors import Problem
from local_lambdas.variables import (
    HTTP_NAMES,
    PIPE_NAMES,
    RUN_NAMES,
    UnknownVariable,
    bare_names,
    expand,
    read_env_file,
    references,
    unexpanded,
    unknown,
)

_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "fish", "busybox"})
_MODES = frozenset(mode.value for mode in Mode)


@dataclass
class Environment:
    """The env files and ${NAME}s of one manifest (`shown`, its relative paths from
    `folder`); problems and warnings go to the reader's lists."""

    shown: str
    folder: Path
    problems: list[Problem]
    warnings: list[str]
    global_env: dict[str, str] = field(default_factory=dict)  # from --env-file or .env

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.shown, line, message))

    def read_global(self, paths: Sequence[Path]) -> None:
        for path in paths:
            self.global_env.update(self.env_file(self.folder / path, None, "--env-file"))

    def env_file(self, path: Path, line: int | None, named_by: str) -> dict[str, str]:
        """The values of one env file; its problems reported (against the manifest line
        that names it, or against the file itself)."""
        try:
            read = read_env_file(path)
        except OSError as exc:
            fix = "create it or fix the path"
            if os.path.isdir(path):
                fix = "give a file of NAME=value"
            elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", path.name):  # `--env DEBUG=1`
                fix = (
                    f"it names a file of NAME=value lines: to give every child "
                    f"{path.name}, write that line in one (.env), or an <env> per process"
                )
            problem = f"{named_by} {path}: {exc.strerror or exc}; {fix}{unexpanded(str(path))}"
            if line is None:
                self.problems.append(Problem(str(path), None, problem))
            else:
                self.problem(line, problem)
            return {}
        except UnicodeDecodeError as exc:
            at = exc.object[: exc.start].count(b"\n") + 1
            problem = f"byte {exc.object[exc.start]:#04x} is not UTF-8 text; save the file as UTF-8"
            if exc.object[exc.start] == 0:
                problem = ("byte 0x00: the file is UTF-16 without a byte-order mark, or not "
                           "text; save it as UTF-8")  # fmt: skip
            self.problems.append(Problem(str(path), at, problem))
            return {}
        for bad in read.bad_lines:
            self.problems.append(Problem(str(path), bad, "not a NAME=value line; fix or remove it"))
        for early in read.too_early:
            self.warnings.append(
                f"{path}:{early.line}: {early.name}: ${{{early.named}}} is read with the file, "
                "before local-lambdas gives each process its own; to have it, write "
                f'<env name="{early.name}">{escape(early.raw)}</env> in its <process>'
            )
        return read.values

    def of_process(
        self, kwargs: dict[str, object], lines: dict[str, list[int]], label: str,
        *, task: bool = False,
    ) -> None:  # fmt: skip
        """Read the process's (or `task`'s) env files and check or expand its ${NAME}s, in
        place: those of <arg> and <env> may name an instance's own values (a task's: its id
        and the run's) and are expanded as it starts (launch.py); the others are expanded
        now."""
        environment = dict(self.global_env)
        merged = {**os.environ, **environment}
        files = kwargs.pop("env_files", ())
        for index, raw in enumerate(files if isinstance(files, tuple) else ()):
            line = lines["env_files"][index]
            try:
                named = expand(str(raw), merged)
            except UnknownVariable as exc:
                self.problem(line, f'{label}: <env_file> "{raw}": {exc}')
                continue
            environment.update(self.env_file(self.folder / at_home(named), line, "<env_file>"))
            merged.update(environment)
        kwargs["environment"] = tuple(environment.items())
        env = kwargs.get("env", ())
        names = set(merged) | ({k for k, _ in env} if isinstance(env, tuple) else set())
        mode = str(kwargs.get("communication_mode", Mode.PIPE.value))
        # How the mode is named where a variable it does not give is refused.
        said = mode if "communication_mode" in kwargs else f"{mode} (the default)"
        own = {"LOCAL_LAMBDAS_ID"} | RUN_NAMES
        if not task:  # (a task has no instance, and listens nowhere)
            own |= {"LOCAL_LAMBDAS_INSTANCE"} | (
                PIPE_NAMES if mode in (Mode.PIPE.value, Mode.PIPE_KEEPALIVE.value)
                else frozenset() if mode == Mode.NONE.value
                else HTTP_NAMES if mode in _MODES
                else PIPE_NAMES | HTTP_NAMES  # (no such mode: that alone is said)
            )  # fmt: skip
        checks: list[tuple[str, int, str]] = []  # (element, line, text)
        args = kwargs.get("args", ())
        if isinstance(args, tuple):
            checks += [("arg", lines["args"][i], str(arg)) for i, arg in enumerate(args)]
        if isinstance(env, tuple):
            checks += [("env", lines["env"][i], str(value)) for i, (_, value) in enumerate(env)]
            for index, (name, value) in enumerate(env):
                if name in own | {"LOCAL_LAMBDAS_TOKEN"} or (
                    name == "PIPE_FRAMING" and "PIPE_ADDRESS" in own
                ):
                    fix = (
                        f"; to fix the port, write <port>{value}</port>" if name == "PORT"
                        else "; to give the children another, start local-lambdas with "
                        f"--child-url {value}" if name in RUN_NAMES
                        else ""
                    )  # fmt: skip
                    self.warnings.append(
                        f'{self.shown}:{lines["env"][index]}: {label}: <env name="{name}"> is '
                        f"replaced by the value local-lambdas gives each instance{fix}"
                    )
        # A shell (`sh -c '... $PORT'`) expands its $NAMEs from the environment itself.
        shell = PurePath(str(kwargs.get("executable", ""))).stem in _SHELLS
        for element, line, text in checks:
            try:
                for ref in references(text):
                    if ref.default is None and ref.name not in names | own:
                        raise UnknownVariable(
                            unknown(ref.name, frozenset(names | own), mode=None if task else said)
                        )
            except UnknownVariable as exc:
                self.problem(line, f'{label}: <{element}> "{text}": {exc}')
            for name in bare_names(text) if element == "env" or not shell else ():
                if name in names | own:
                    self.warnings.append(
                        f'{self.shown}:{line}: {label}: <{element}> "{text}" passes "${name}" '
                        f"as written (no shell expands it here); write ${{{name}}} for its value"
                    )
        for field_name in ("executable", "working_dir", "port"):
            raw = kwargs.get(field_name)
            if not isinstance(raw, str) or "$" not in raw:
                continue
            try:
                kwargs[field_name] = expand(raw, merged)
            except UnknownVariable as exc:
                self.problem(lines[field_name][0], f'{label}: <{field_name}> "{raw}": {exc}')
                del kwargs[field_name]  # said once: not judged again as it stands

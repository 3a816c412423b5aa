"""The manifest's <process> and <task> elements read into models: each element's text as
its model field takes it (the elements a process may hold: elements.py), and every
problem found, with its line, in words that say the fix (a pydantic error read back to the
element that caused it, an unknown element with the name it was probably meant as).
loading.py parses the file and calls it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from pydantic import ValidationError

from local_lambdas.config import Mode, Process, Task
from local_lambdas.config_values import at_home, is_file_name
from local_lambdas.errors import Problem, closest
from local_lambdas.executables import too_large
from local_lambdas.manifest.checks import Claims
from local_lambdas.manifest.elements import (
    ELEMENTS,
    FIELD_TO_ELEMENT,
    FOR_REQUESTS,
    FOR_STARTED,
    REQUIRED,
    TASK_ELEMENTS,
)
from local_lambdas.manifest.env import Environment
from local_lambdas.manifest.paths import missing_files, path_problems
from local_lambdas.options import other_tools
from local_lambdas.variables import search_path

_WORKER_HINT = " (or, if nothing is routed to it, <communication_mode>none</communication_mode>)"
_ENV_NAME = re.compile(r"^[^=\0]+$")
_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"


@dataclass
class Reader:
    """Collects problems while turning <process> elements into Process models."""

    shown: str
    folder: Path
    here: bool  # the children run on this machine: their executables must be here
    beside: Path  # the manifest's folder, where a missing relative file may be
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    claims: list[Claims] = field(default_factory=list)
    # The <task> ids: a task one depends on may make a missing executable (as a <build> may).
    tasks: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.env = Environment(self.shown, self.folder, self.problems, self.warnings)

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.shown, line, message))

    def read(self, root: etree._Element) -> tuple[list[Process], list[Task]]:
        self._no_attributes(root, "<manifest>")
        processes: list[Process] = []
        tasks: list[Task] = []
        self.tasks = {(task.findtext("id") or "").strip() for task in root.iter("task")}
        for element in root:
            if element.tag in ("process", "task"):
                made = self._process(element, kind=str(element.tag))
                if isinstance(made, Process):
                    processes.append(made)
                elif isinstance(made, Task):
                    tasks.append(made)
            else:
                self._unknown(element, "<manifest>", ["process", "task"])
        return processes, tasks

    def _maker(self, kwargs: dict[str, object]) -> str:
        """What runs before a process or task and may make the files it names (a fresh
        checkout's `./server`, `dist/server.js`): "its <build>", "a <task> it depends on",
        or ""."""
        if kwargs.get("build"):
            return "its <build>"
        needs = kwargs.get("depends_on")
        if isinstance(needs, tuple) and not self.tasks.isdisjoint(needs):
            return "a <task> it depends on"
        return ""

    def _process(self, element: etree._Element, kind: str = "process") -> Process | Task | None:
        """A <process> (or, with `kind`, a <task>) as its model, or None and its problems."""
        table = ELEMENTS if kind == "process" else TASK_ELEMENTS
        required = REQUIRED if kind == "process" else ("id", "executable")
        values: dict[str, list[tuple[str, int, etree._Element]]] = {}
        for child in element:
            text = (child.text or "").strip()
            values.setdefault(str(child.tag), []).append((text, child.sourceline or 0, child))
        route_only = kind == "process" and "upstream" in values  # nothing to run
        modes = values.get("communication_mode", [])
        worker = kind == "process" and bool(modes) and modes[0][0] == Mode.NONE.value
        if route_only or worker:  # nothing to run, or nothing is routed to it
            required = ("id", "executable") if worker else ("id", "route")
        ids = values.get("id", [])
        label = f'<{kind} id="{ids[0][0]}">' if ids and ids[0][0] else f"<{kind}>"
        self._no_attributes(element, label)
        count = len(self.problems)
        kwargs: dict[str, object] = {"line": element.sourceline or 0}
        lines: dict[str, list[int]] = {}
        meant: set[str] = set()  # required elements an unknown one was probably meant as
        # Required elements written with nothing in them (`<executable></executable>`, an
        # editor's `<executable/>`): missing, said so, and not judged as values.
        empty = {name for name in required if values.get(name) and not any(
            text for text, _, _ in values[name])}  # fmt: skip
        for name, occurrences in values.items():
            spec = table.get(name)
            if spec is None:
                for _, _, child in occurrences:
                    meant.update(self._unknown(child, label, list(table)))
                continue
            if name in empty:
                self.problem(occurrences[0][1], f"{label}: <{name}> is empty; write e.g. "
                             f"{table[name].example}")  # fmt: skip
                continue
            if route_only and name in FOR_STARTED:
                self.problem(
                    occurrences[0][1],
                    f"{label}: <{name}> is for a process local-lambdas starts, and a route-only "
                    "one (<upstream>) starts nothing: remove it",
                )
                continue
            if worker and name in FOR_REQUESTS:
                self.problem(
                    occurrences[0][1],
                    f"{label}: <{name}> is for a process requests go to, and none go to one "
                    "whose <communication_mode> is none; remove it, or choose the mode its "
                    "requests come by",
                )
                continue
            if not spec.repeatable and len(occurrences) > 1:
                self.problem(
                    occurrences[1][1],
                    f"{label}: <{name}> appears again (first on "
                    f"line {occurrences[0][1]}); keep one",
                )
            for _, line, child in occurrences:
                if len(child):
                    self.problem(
                        line, f"{label}: <{name}> must hold text only, not <{child[0].tag}>"
                    )
                if name != "env":
                    self._no_attributes(child, f"{label}: <{name}>")
            lines[spec.field] = [line for _, line, _ in occurrences]
            kwargs[spec.field] = self._value(name, occurrences, label)
        if route_only:
            kwargs.setdefault("communication_mode", "passthrough")
        missing = [name for name in required if not values.get(name) or name in empty]
        for name in missing:
            if name in meant or name in empty:
                continue  # "did you mean <name>?" said it already: one message per cause
            self.problem(
                element.sourceline,
                f"{label}: missing <{name}>; add one, e.g. {ELEMENTS[name].example}"
                + (_WORKER_HINT if name == "route" and not route_only else ""),
            )
        self.claims.append(Claims(label, kwargs, lines, kind))
        self.env.of_process(kwargs, lines, label, task=kind == "task")
        working_dir = kwargs["working_dir"] = self.folder / at_home(
            str(kwargs.get("working_dir", "."))
        )
        if isinstance(kwargs.get("executable"), str):
            kwargs["executable"] = at_home(str(kwargs["executable"]))
        # The paths are checked whatever else is wrong, so that one pass reports it all.
        if self.here:
            env, environment = kwargs.get("env", ()), kwargs.get("environment", ())
            path = search_path(
                environment if isinstance(environment, tuple) else (),
                env if isinstance(env, tuple) else (),
            )
            executable = str(kwargs.get("executable", ""))
            for name, message in path_problems(
                executable, working_dir, path, self.folder, self.beside,
                built=bool(self._maker(kwargs)),
            ):  # fmt: skip
                self.problem(lines.get(name, [element.sourceline or 0])[0], f"{label}: {message}")
            self._check_sizes(kwargs, lines, label, element.sourceline or 0)
        if "id" in kwargs and kind == "process" and "pipe_name" not in kwargs:
            kwargs["pipe_name"] = self._pipe_named_by_id(kwargs, lines, label)
        try:
            process = (Process if kind == "process" else Task).model_validate(kwargs)
        except ValidationError as exc:
            self._pydantic(exc, kwargs, lines, label, element.sourceline)
            return None
        if missing:
            return None
        maker = self._maker(kwargs)
        unless = f", unless {maker} makes it" if maker else ""
        for warning in missing_files(process.args, process.working_dir, self.beside):
            self.warnings.append(f"{self.shown}: {process.label}: {warning}{unless}")
        if (
            isinstance(process, Process)
            and "pipe_name" in lines
            and process.communication_mode in (Mode.HTTP, Mode.PASSTHROUGH)
        ):  # (a warning: the earlier tool's manifests may name one for any mode)
            self.warnings.append(
                f"{self.shown}:{lines['pipe_name'][0]}: {process.label}: <pipe_name> names a "
                f"pipe mode's socket; in mode {process.communication_mode.value} the child "
                "listens on TCP ($PORT) and no pipe is made: remove it, or choose a pipe mode"
            )
        if self.here and isinstance(process, Process) and process.port and process.instances > 1:
            # (In containers, export's, each instance has a port of its own: no problem.)
            self.problem(
                lines["instances"][0],
                f"{label}: <instances> {process.instances} with <port> {process.port}: every "
                "instance would listen on that one port, and all but the first fail (address "
                "in use); remove <port> (each instance gets its own $PORT), or keep one",
            )
        return process if len(self.problems) == count else None

    def _check_sizes(
        self, kwargs: dict[str, object], lines: dict[str, list[int]], label: str, line: int
    ) -> None:
        """Arguments and an environment the system would refuse to start the program with
        (executables.too_large), its environment as it will get it here: the proxy's, then
        the env files', then its <env>s."""
        args, env = kwargs.get("args", ()), kwargs.get("env", ())
        environment = kwargs.get("environment", ())
        if not (isinstance(args, tuple) and isinstance(env, tuple)):
            return
        given = dict(env)
        merged = {**os.environ, **dict(environment if isinstance(environment, tuple) else ()),
                  **given}  # fmt: skip
        names = list(merged)
        executable = str(kwargs.get("executable", ""))
        for element, n, why in too_large([str(arg) for arg in args], merged.items(), executable):
            at = line
            if element == "arg":
                at = lines["args"][n]
            elif element == "env" and names[n] in given:
                at = lines["env"][[key for key, _ in env].index(names[n])]
            self.problem(at, f"{label}: {why}")

    def _value(
        self, name: str, occurrences: list[tuple[str, int, etree._Element]], label: str
    ) -> object:
        if name == "env":
            pairs = []
            for text, line, child in occurrences:
                extra = sorted(set(child.attrib) - {"name"})
                if extra:
                    self.problem(line, f'{label}: <env> takes only a name="..." attribute, '
                                 f'not {", ".join(extra)}')  # fmt: skip
                key = child.get("name", "")
                if not _ENV_NAME.match(key):
                    what = f'name "{key}" cannot hold "=" or a NUL' if key else "needs a name"
                    # <env>DEBUG=1</env>, as compose files write it: shown in this form.
                    named, eq, value = text.partition("=")
                    if key or not eq or not _ENV_NAME.match(named):
                        named, value = "DEBUG", "1"
                    self.problem(line, f'{label}: <env> {what}, as in <env name="{named}">'
                                 f"{value}</env>")  # fmt: skip
                pairs.append((key, text))
            return tuple(pairs)
        if name == "methods":
            return tuple(occurrences[0][0].replace(",", " ").split())
        if ELEMENTS[name].repeatable:
            return tuple(text for text, _, _ in occurrences)
        return occurrences[0][0]

    def _pipe_named_by_id(
        self, kwargs: dict[str, object], lines: dict[str, list[int]], label: str
    ) -> str:
        """The pipe's name a process without <pipe_name> gets: its id, which in a pipe mode
        must then be a file's name (said as the id's problem); in the others no pipe is
        made, and any id goes, as in the earlier tool."""
        ident = str(kwargs["id"])
        if is_file_name(ident):
            return ident
        if str(kwargs.get("communication_mode", "pipe")).strip() in ("pipe", "pipe-keepalive"):
            self.problem(
                lines.get("id", [0])[0],
                f'{label}: <id> "{ident}" names its pipe, which cannot be . or .. nor hold / '
                "or \\: add a <pipe_name>, e.g. api_pipe",
            )
        return "_"  # (never made)

    def _pydantic(
        self,
        exc: ValidationError,
        kwargs: dict[str, object],
        lines: dict[str, list[int]],
        label: str,
        process_line: int | None,
    ) -> None:
        errors = exc.errors()
        with_items = {e["loc"][0] for e in errors if len(e["loc"]) > 1}
        for error in errors:
            if error["type"] == "missing":
                continue  # said already, with an example of the element to add
            if error["type"] == "too_short" and error["loc"][0] in with_items:
                continue  # its items were refused: said for each
            loc = error["loc"]
            message = str(error["msg"]).removeprefix("Value error, ")
            if not loc:  # the process's as a whole (config.Process's model validators)
                self.problem(process_line or 0, f"{label}: {message}")
                continue
            name = str(loc[0])
            index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
            element = FIELD_TO_ELEMENT.get(name, name)
            field_lines = lines.get(name) or [process_line or 0]
            line = field_lines[min(index, len(field_lines) - 1)]
            value = kwargs.get(name)
            if isinstance(value, tuple) and name != "methods":
                value = value[index] if index < len(value) else ""
            shown = " ".join(value) if isinstance(value, tuple) else value
            message = message.replace("Input should be", "should be")
            if error["type"] == "enum":  # the choices, and the one it was probably meant as
                choices = re.findall(r"'([^']*)'", message)
                message = "must be one of: " + ", ".join(f"'{c}'" for c in choices)
                other = other_tools.VALUES.get(name, {}).get(str(shown).lower())
                close = closest(str(shown), choices)
                if other is not None:
                    message += f"; for that, '{other[0]}': {other[1]}"
                elif close:
                    message += f"; did you mean '{close}'?"
            if error["type"] == "int_parsing":  # (pydantic's "unable to parse string as...")
                message = "should be a whole number"
            self.problem(line, f'{label}: <{element}> "{shown}" {message}')

    def _unknown(self, element: etree._Element, label: str, known: list[str]) -> list[str]:
        """Report an unknown element; the known one it was probably meant as, if any."""
        name = etree.QName(element)
        if name.namespace is not None:  # (the manifest's own was read away: manifest._parse)
            shown = f"{element.prefix or ''}:{name.localname}".lstrip(":")
            self.problem(element.sourceline, f'{label}: <{shown}> is of namespace '
                         f'"{name.namespace}", not the manifest\'s; remove it, or write it '
                         "without a namespace")  # fmt: skip
            return []
        tag = str(element.tag)
        close = other_tools.ELEMENTS.get(tag.lower())
        if close in known:
            hint = f"here that is <{close}>" + other_tools.spelled_out(close, element.text or "")
        else:
            close = closest(tag, known)
            hint = f"did you mean <{close}>?" if close else f"known: {', '.join(known)}"
        self.problem(element.sourceline, f"{label}: unknown element <{tag}>; {hint}")
        return [close] if close else []

    def _no_attributes(self, element: etree._Element, label: str) -> None:
        for name in element.attrib:
            if str(name).startswith(_XSI):
                continue  # xsi:noNamespaceSchemaLocation and the like, the editors' hints
            self.problem(
                element.sourceline,
                f'{label}: unknown attribute {name}="..."; '
                "settings are written as elements, e.g. <timeout>30s</timeout>",
            )

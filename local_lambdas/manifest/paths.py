"""What the manifest's reader says about the files a process names on this machine, at
load, before anything starts: its <working_dir>, its <executable> (looked up as a start
looks it up, executables.find_executable) and the <arg>s that look like files, each with
the fix (a path beside the manifest, one spelled as Windows spells it, a command line
written in <executable>).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from xml.sax.saxutils import escape

from local_lambdas._compat import IS_WINDOWS
from local_lambdas.executables import (
    VENV_PROGRAMS,
    VENVS,
    find_executable,
    interpreter_problem,
    not_runnable,
    unusable,
)
from local_lambdas.variables import unexpanded


def path_problems(
    executable: str,
    working_dir: Path,
    path: str | None,
    started_in: Path,
    beside: Path,
    *,
    built: bool = False,
) -> list[tuple[str, str]]:
    """What is wrong on this machine with a process's <working_dir> and <executable> (found
    on `path`, its PATH), as (element, message) pairs; `started_in`, where relative working
    directories start; `beside`, the manifest's folder, where a missing file may be. `built`:
    its <build>, or a <task> it depends on, runs first and may be what makes its executable
    (`go build -o server` on a fresh checkout): a path not there yet is left to it."""
    found_problems = []
    bare = os.sep not in executable and "/" not in executable
    if (said := _working_dir_problem(working_dir, started_in, beside)) is not None:
        found_problems.append(("working_dir", said))
        if not bare:
            return found_problems  # a path relative to it cannot be judged
    found = find_executable(executable, working_dir, path) if executable else ""
    if found is None and built and not bare and not os.path.exists(working_dir / executable):
        return found_problems  # the build's to make; if it does not, the start says so
    if found is None and (split := _with_arguments(executable, working_dir, path)):
        found_problems.append(("executable", split))
    elif found is None:
        where = (
            "not found on PATH; "
            + (_project_tool(executable, working_dir) or "install it or give its full path")
            if bare
            else not_runnable(working_dir / executable) + _beside(executable, working_dir, beside)
        )
        found_problems.append((
            "executable",
            f'<executable> "{executable}" {where}{unexpanded(executable)}'
            f"{_windows_spelled(executable)}",
        ))  # fmt: skip
    elif found and (
        wrong := interpreter_problem(found, lambda name: find_executable(name, working_dir, path))
    ):
        found_problems.append(("executable", f'<executable> "{executable}" {wrong}'))
    return found_problems


# Where a project keeps the programs it installs for itself: its virtual environment's
# scripts, npm's node_modules/.bin.
_TOOLS = (*(f"{venv}/{VENV_PROGRAMS}" for venv in VENVS), "node_modules/.bin")


def _project_tool(executable: str, working_dir: Path) -> str:
    """The fix for a bare <executable> PATH lacks that its project installed for itself (in
    its working directory or above: `uvicorn` in .venv/bin, `vite` in node_modules/.bin),
    the shell it works in having that folder on PATH; "" when it did not."""
    for at in (working_dir, *working_dir.parents):
        for tools in _TOOLS:
            found = find_executable(executable, working_dir, str(at / tools))
            if found:
                folder = os.path.dirname(found)
                on_path = (
                    os.path.relpath(folder, working_dir)
                    if Path(folder).is_relative_to(working_dir)
                    else folder
                )
                return (
                    f"its project has one, {found}: give <executable>{escape(found)}"
                    f'</executable>, or <env name="PATH">{escape(on_path)}{os.pathsep}${{PATH}}'
                    "</env>"
                )
    return ""


def _working_dir_problem(working_dir: Path, started_in: Path, beside: Path) -> str | None:
    """What is wrong with a <working_dir> on this machine (see path_problems); None when it
    is a directory."""
    if why := unusable(working_dir):
        return f'<working_dir> "{working_dir}" cannot be used: {why}'
    if working_dir.is_dir():
        return None
    there = (
        beside / working_dir.relative_to(started_in)
        if beside != started_in and working_dir.is_relative_to(started_in)
        else None
    )
    return (
        f'<working_dir> "{working_dir}" is not a directory; create it or fix the path '
        f"(relative paths start at the directory local-lambdas was started in, {started_in})"
        + (f"; it is beside the manifest, at {there}: start local-lambdas in {beside}"
           if there is not None and os.path.isdir(there) else "")
        + unexpanded(str(working_dir)) + _windows_spelled(str(working_dir))
    )  # fmt: skip


_DRIVE = re.compile(r"(?:^|/)[A-Za-z]:[\\/]")  # (a relative <working_dir> is joined to a folder)


def _windows_spelled(path: str) -> str:
    """For a path not found on POSIX: that it is written as Windows writes paths (a
    manifest from a Windows machine), and how to write it for both; "" for another."""
    if IS_WINDOWS:
        return ""
    if _DRIVE.search(path):
        return "; that is a Windows path (a drive letter): give one of this system"
    if "\\" in path:
        slashed = path.replace("\\", "/")
        return f'; "\\" divides folders on Windows only: write "/", read there too ({slashed})'
    return ""


def _with_arguments(executable: str, working_dir: Path, path: str | None) -> str | None:
    """The problem of an <executable> that is a command line (`python3 app.py`, `npm run
    dev`) whose first word is a program: the fix, spelled out; None for another."""
    try:
        words = shlex.split(executable, posix=not IS_WINDOWS)
    except ValueError:  # (an unclosed quote)
        words = executable.split()
    if len(words) < 2 or find_executable(words[0], working_dir, path) is None:
        return None
    args = "".join(f"<arg>{escape(word)}</arg>" for word in words[1:])
    return (
        f'<executable> "{executable}" is a command line: <executable> names the program '
        f"alone, and each argument goes in an <arg> of its own: "
        f"<executable>{escape(words[0])}</executable>{args}"
    )


def missing_files(args: Iterable[str], working_dir: Path, beside: Path) -> list[str]:
    """A warning for each <arg> that names a relative file that is not there: the child would
    most likely fail to open it (relative to its working directory, see the README)."""
    args = tuple(args)
    return [
        f'<arg> "{arg}" looks like a file, but there is none at {working_dir / arg}; relative '
        f"paths start at the child's working directory{_beside(arg, working_dir, beside)}"
        for before, arg in zip(("", *args), args, strict=False)
        # After `sh -c` or `node -e`: code, not a file name.
        if before not in _CODE_FLAGS and _looks_like_a_file(arg)
        and not os.path.exists(working_dir / arg)
    ]  # fmt: skip


def _beside(relative: str, working_dir: Path, beside: Path) -> str:
    """Where a relative path that is not in the child's working directory is, when it is
    beside the manifest (local-lambdas started elsewhere), and the two ways to fix it."""
    found = beside / relative
    if beside == working_dir or not os.path.exists(found):
        return ""
    return (
        f"; it is beside the manifest, at {found}: start local-lambdas in {beside}, "
        f"or give the process <working_dir>{beside}</working_dir>"
    )


_SOURCE_SUFFIX = re.compile(r"\.(py|js|mjs|cjs|ts|rb|pl|php|sh|jar|lua|R)$")
_CODE_FLAGS = frozenset({"-c", "-e", "--eval", "-Command", "/c", "/C"})
_SHELL_SYNTAX = frozenset(";&|<>`'\"*?$\n")


def _looks_like_a_file(arg: str) -> bool:
    """A relative path with a folder or a source file's suffix: app/main.py, ./run.sh."""
    if arg.startswith(("-", "/")) or "=" in arg or ":" in arg or "${" in arg:
        return False  # an option, a URL, host:port/path, socat's EXEC:./run.sh
    if any(c in _SHELL_SYNTAX for c in arg):
        return False  # a command line, a glob, a quoted string
    return "/" in arg or bool(_SOURCE_SUFFIX.search(arg))

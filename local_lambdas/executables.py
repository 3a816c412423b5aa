"""Which program a child or task runs: an <executable> looked for as the manifest says (a bare
name on PATH, a path under the working directory), and why one cannot be run, in words
(a path that is no program, a `#!` line that names no interpreter). The manifest's reader
reports these at load; instances and tasks use the same lookup to spawn.
"""

from __future__ import annotations

import os
from pathlib import Path

from local_lambdas._compat import IS_WINDOWS, which
from local_lambdas.config import Process


def resolve_executable(process: Process, path: str | None = None) -> str | None:
    """The absolute path the child will run, or None when there is nothing runnable there;
    `path`, the child's PATH (see find_executable)."""
    return find_executable(process.executable, process.working_dir, path)


def find_executable(exe: str, working_dir: Path, path: str | None = None) -> str | None:
    """`exe` when it is a bare name, on `path`, the child's PATH (its <env> or env files may
    put `.venv/bin` or `node_modules/.bin` first; None: the proxy's), its relative entries
    read from `working_dir`, as the child's own lookups will; else `exe` under `working_dir`.
    None: not runnable."""
    if os.sep not in exe and "/" not in exe:
        if path is not None:
            path = os.pathsep.join(str(working_dir / entry) for entry in path.split(os.pathsep))
        return which(exe, path)
    candidate = working_dir / exe
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return None


def not_runnable(path: Path) -> str:
    """Why a path given as <executable> cannot be run (find_executable found nothing)."""
    if path.is_dir():
        return "is a directory; name the program inside it"
    if not path.exists():
        return f"does not exist: there is no {path}; check the path"
    if IS_WINDOWS:
        return f"cannot be run: {path} is not a program"
    return (
        f"is not executable; chmod +x {path}, or name its interpreter in <executable> "
        "and the script in <arg>"
    )


def interpreter_problem(path: str) -> str | None:
    """Why a script's `#!` line cannot run it (POSIX), the kernel's bare ENOENT said in
    words: a line ending in CR (the file saved with Windows line endings), or an
    interpreter that is not there. None: no such problem seen."""
    if IS_WINDOWS:
        return None
    try:
        with open(path, "rb") as script:
            first = script.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    line = first.rstrip(b"\n")
    shown = line.decode("utf-8", "replace").replace("\r", "\\r")
    if line.endswith(b"\r"):
        return (f'has Windows line endings: its first line, "{shown}", names an '
                "interpreter whose name ends in a CR; convert the file to LF endings "
                f"(dos2unix {path})")  # fmt: skip
    interpreter = line[2:].split()[0] if line[2:].split() else b""
    if interpreter.startswith(b"/") and not os.path.exists(interpreter):
        return (f'starts with "{shown}", and {interpreter.decode(errors="replace")} is not '
                "there; fix that line (#!/usr/bin/env python3, say)")  # fmt: skip
    return None

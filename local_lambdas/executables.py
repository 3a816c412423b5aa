"""Which program a child or task runs: an <executable> looked for as the manifest says (a bare
name on PATH, a path under the working directory), and why one cannot be run, in words
(a path that is no program, a `#!` line that names no interpreter, a program for another
processor, arguments too large for the system). Instances and tasks use the lookup to
spawn; the manifest's reader asks the same at load (manifest/paths.py).
"""

from __future__ import annotations

import errno
import functools
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from local_lambdas._compat import IS_WINDOWS, limits, which
from local_lambdas.config import Process

# Where a project keeps its virtual environment, by custom (`python -m venv .venv`, uv's,
# Poetry's in-project one), and the folder of its programs in it.
VENVS = (".venv", "venv", "env")
VENV_PROGRAMS = "Scripts" if IS_WINDOWS else "bin"


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
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return str(candidate)
    return None


def unusable(path: Path) -> str | None:
    """Why `path` cannot be looked at, in the system's words (a folder above it this user may
    not enter: "Permission denied"; a name too long; a loop of links); None when it can be,
    there or not. (pathlib's is_dir() and exists() raise for these.)"""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def not_runnable(path: Path) -> str:
    """Why a path given as <executable> cannot be run (find_executable found nothing)."""
    if why := unusable(path):
        return f"cannot be used: {why}"
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


# The interpreter a script without a "#!" line was meant for, by its suffix.
_BY_SUFFIX = {".py": "python3", ".js": "node", ".mjs": "node", ".cjs": "node", ".rb": "ruby",
              ".pl": "perl", ".php": "php", ".lua": "lua"}  # fmt: skip


def not_started(
    working_dir: Path,
    program: str | None,
    error: OSError,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> str:
    """Why a process or task could not be started in `working_dir` (`program`: its
    executable as found, `args` and `env` what it was given): that directory gone since the
    manifest was read, a script's `#!` line, arguments and environment too large for the
    system, the proxy out of open files, the system's limit on processes, else the error."""
    if not os.path.isdir(working_dir):
        return (f'its <working_dir> "{working_dir}" is not a directory (any more); create it '
                "or fix the path")  # fmt: skip
    if error.errno == errno.E2BIG and (large := too_large(args, (env or {}).items())):
        return f"{error.strerror}: {large[0][2]}"
    if files := limits.out_of_files(error):
        return files
    if error.errno == errno.EAGAIN:  # (a fork refused)
        return limits.out_of_processes()
    return (program and interpreter_problem(program)) or error.strerror or str(error)


# Linux's MAX_ARG_STRLEN: the most one argument or NAME=value may hold, its NUL included.
_ONE_STRING = 32 * 4096
_TOO_LARGE_FIX = "write it to a file and pass the file's name"
_WINDOWS_LINE = 32_766  # CreateProcess's command line, its NUL apart


def too_large(
    args: Sequence[str],
    env: Iterable[tuple[str, str]],
    executable: str = "",
    *,
    windows: bool = IS_WINDOWS,
) -> list[tuple[str, int, str]]:
    """Why the system would refuse to start `executable` given `args` and `env` for their
    size (E2BIG, "Argument list too long"), each as (element, its index among that
    element's, why): Linux takes at most 128 KiB in one argument or NAME=value ("arg",
    "env"), POSIX systems at most ARG_MAX in all ("", 0), and Windows a command line of at
    most 32,766 characters ("", 0: "The filename or extension is too long"). Empty when
    they fit."""
    if windows:
        line = len(subprocess.list2cmdline([executable, *args]))
        return [] if line <= _WINDOWS_LINE else [("", 0, (
            f"the command line comes to {line:,} characters, and Windows takes at most "
            f"{_WINDOWS_LINE:,}; write the largest <arg> to a file and pass its name"
        ))]  # fmt: skip
    sizes = [("arg", n, len(os.fsencode(arg)) + 1, f"<arg> {n + 1}")
             for n, arg in enumerate(args)]  # fmt: skip
    sizes += [("env", n, len(os.fsencode(f"{name}={value}")) + 1, f"the variable {name}")
              for n, (name, value) in enumerate(env)]  # fmt: skip
    found = [
        (element, n, f"{what} is {size - 1:,} bytes, and Linux takes at most "
         f"{_ONE_STRING - 1:,} in one; {_TOO_LARGE_FIX}")
        for element, n, size, what in sizes
        if size > _ONE_STRING and sys.platform.startswith("linux")
    ]  # fmt: skip
    limit = os.sysconf("SC_ARG_MAX") if hasattr(os, "sysconf") else -1
    total = sum(size + 8 for _, _, size, _ in sizes)  # each string with its pointer
    if not found and 0 < limit < total:
        found.append(("", 0, f"the arguments and environment come to {total:,} bytes, and "
                      f"the system takes at most {limit:,} in all (getconf ARG_MAX); write "
                      "the largest to files and pass their names"))  # fmt: skip
    return found


def interpreter_problem(path: str, find: Callable[[str], str | None] | None = None) -> str | None:
    """Why a script's `#!` line cannot run it (POSIX), the kernel's bare ENOENT said in
    words: a line ending in CR (the file saved with Windows line endings), or an
    interpreter that is not there; a line after a byte order mark, which the kernel does not
    see; or a script of another language with no such line,
    which would run as a shell script. With `find` (the child's lookup of a program by
    name), also a program `#!/usr/bin/env` would not find, which env says only once the
    child runs, exiting 127. None: no such problem seen."""
    if IS_WINDOWS:
        return None
    try:
        with open(path, "rb") as script:
            head = script.read(256)
    except OSError:
        return None
    if foreign := foreign_program(head):
        return foreign
    first = head.partition(b"\n")[0]
    if first.startswith(b"\xef\xbb\xbf#!"):
        return ('begins with a byte order mark before its "#!" line (saved as UTF-8 with '
                "BOM), so the system does not read that line and would run it as a shell "
                "script; save it as UTF-8 without the BOM "
                f"(sed -i '1s/^\\xEF\\xBB\\xBF//' {path})")  # fmt: skip
    if not first.startswith(b"#!"):
        meant = _BY_SUFFIX.get(Path(path).suffix.lower())
        if meant is None or first.startswith(b"\x7fELF"):
            return None
        return (f'has no "#!" line, so it would run as a shell script; make its first line '
                f'"#!/usr/bin/env {meant}", or name {meant} in <executable> and the script '
                "in <arg>")  # fmt: skip
    line = first.rstrip(b"\n")
    shown = line.decode("utf-8", "replace").replace("\r", "\\r")
    if line.endswith(b"\r"):
        return (f'has Windows line endings: its first line, "{shown}", names an '
                "interpreter whose name ends in a CR; convert the file to LF endings "
                f"(dos2unix {path})")  # fmt: skip
    words = line[2:].split()
    interpreter = words[0] if words else b""
    if interpreter.startswith(b"/") and not os.path.exists(interpreter):
        return (f'starts with "{shown}", and {interpreter.decode(errors="replace")} is not '
                "there; fix that line (#!/usr/bin/env python3, say)")  # fmt: skip
    program = _env_program(words) if find is not None else None
    if program is not None and find is not None and find(program) is None:
        return (f'starts with "{shown}", and {program} is not found on its PATH; install it, '
                "put its folder on PATH (<env>), or fix that line")  # fmt: skip
    return None


# ELF's e_machine numbers, as people name the processors.
_MACHINES = {3: "x86 (32-bit)", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "IBM Z",
             40: "ARM (32-bit)", 62: "x86-64", 183: "ARM64 (aarch64)", 243: "RISC-V"}  # fmt: skip
_MACH_O = (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


def foreign_program(head: bytes) -> str | None:
    """Why a file that begins with `head` (its first 20 bytes or more) is a program for
    another system or processor, which this one cannot run (a shell that an exec falls back
    to would read it as a script: "ELF: not found", exit 127); None for any other file, and
    on Windows (whose own error says it)."""
    if IS_WINDOWS:
        return None
    here = "macOS" if sys.platform == "darwin" else "Linux" if sys.platform == "linux" else ""
    if head.startswith(b"\x7fELF") and len(head) >= 20:
        if sys.platform == "darwin":
            return "is a Linux program (ELF); build or download it for macOS"
        theirs, ours = _elf_machine(head), _this_machine()
        if ours is None or theirs == ours or (theirs, ours) == (3, 62):
            return None  # (x86's 32-bit programs run on x86-64)
        name = _MACHINES.get(ours, f"machine {ours}")
        return (f"is a program for {_MACHINES.get(theirs, f'machine {theirs}')} processors, "
                f"and this machine's are {name}; build or download it for {name}")  # fmt: skip
    if head.startswith(_MACH_O) and sys.platform != "darwin":
        return f"is a macOS program (Mach-O); build or download it for {here or sys.platform}"
    if head.startswith(b"MZ"):
        return (f"is a Windows program; build or download it for {here or sys.platform}, "
                "or run it with Wine (<executable>wine</executable>, it in an <arg>)")  # fmt: skip
    return None


def foreign_file(path: str) -> str | None:
    """foreign_program of the file at `path`; None when it cannot be read."""
    try:
        with open(path, "rb") as program:
            return foreign_program(program.read(20))
    except OSError:
        return None


def as_shell_script(refused: OSError, command: Sequence[str]) -> list[str] | None:
    """`command` run through /bin/sh when its exec was `refused` as no program (ENOEXEC): a
    file with no #! line is a shell script, as execvp, the shells and uvloop's exec take it
    (asyncio's exec refuses it). None for another refusal, and on Windows."""
    if refused.errno != errno.ENOEXEC or IS_WINDOWS:
        return None
    return ["/bin/sh", which(command[0]) or command[0], *command[1:]]


def _elf_machine(head: bytes) -> int:
    """An ELF header's e_machine, in the byte order its EI_DATA gives."""
    return int.from_bytes(head[18:20], "big" if head[5] == 2 else "little")


@functools.cache
def _this_machine() -> int | None:
    """This machine's e_machine, read from the running Python; None if it cannot be."""
    try:
        with open(sys.executable, "rb") as program:
            head = program.read(20)
    except OSError:
        return None
    return _elf_machine(head) if head.startswith(b"\x7fELF") and len(head) == 20 else None


def _env_program(words: list[bytes]) -> str | None:
    """The program a `#!/usr/bin/env [-S] [NAME=VALUE...] PROGRAM` line runs; None for
    another line, or env options other than -S (not judged)."""
    if not words or not words[0].endswith(b"/env"):
        return None
    rest = words[2:] if words[1:2] == [b"-S"] else words[1:]
    while rest and b"=" in rest[0] and not rest[0].startswith(b"-"):
        rest = rest[1:]  # variables set for the program
    if not rest or rest[0].startswith(b"-"):
        return None
    return rest[0].decode("utf-8", "replace")

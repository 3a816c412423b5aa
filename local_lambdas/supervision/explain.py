"""What a person is told about a child that is not serving: why it is not ready, how it
ended, where it listens. Pure functions of what was seen, so that the wording lives in one
place and table tests can hold it (tests/units/test_explain.py)."""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from local_lambdas.config import Process
from local_lambdas.executables import VENV_PROGRAMS, VENVS

# Addresses a dev server prints when it ignores $PORT: "Running on http://127.0.0.1:5000",
# "Uvicorn running on http://0.0.0.0:8000", "listening on port 8080".
_PRINTED_PORT = re.compile(r"https?://[^\s/]*:(\d{2,5})\b|\bport\s+(\d{2,5})\b", re.IGNORECASE)


def where(process: Process, address: str) -> str:
    """An address as people read it: a socket path, or an http:// URL."""
    return address if process.communication_mode.uses_pipe else f"http://{address}"


def not_ready_in_time(
    process: Process, address: str, *, foreign: bool, last_lines: Iterable[str],
    refused: str = "", elsewhere: Sequence[str] = (), late: str = "",
) -> str:  # fmt: skip
    """Why a child that runs is not ready after <startup_timeout>, with the likely fix.
    `elsewhere`: where it listens instead, as the kernel tells (TCP host:port, socket paths);
    `late`: how long it was waited for, when longer (readiness.Busy.worked)."""
    shown = where(process, address)
    late = late or f"not ready within {process.startup_timeout:g}s (<startup_timeout>)"
    if foreign:
        return f"{late}: another program listens on {shown}; stop it, or use another address"
    if refused:
        wanted = "a 2xx or 3xx is wanted"
        return f"{late}: it listens on {shown}, but its <ready_path>: {refused} ({wanted})"
    message = f"{late}: nothing listened on {shown}"
    port = address.rpartition(":")[2]
    printed = set() if process.communication_mode.uses_pipe else printed_ports(last_lines)
    printed -= {port}
    listened = {at.rpartition(":")[2] for at in elsewhere if not at.startswith("/")}
    if elsewhere and not printed & listened:  # (where it listens, when it did not say so)
        return f"{message}; {_listens_instead(process, address, elsewhere)}"
    if printed:
        message += f"; {_printed_port(sorted(printed & listened or printed)[-1], port)}"
    return message


def _printed_port(other: str, port: str) -> str:
    """The fix for a server listening at the port it printed, not at its $PORT."""
    return (f"it printed port {other}, which is not its $PORT ({port}): "
            f"set <port>{other}</port>, or pass it ${{PORT}}")  # fmt: skip


def surely_elsewhere(
    process: Process, address: str, *, last_lines: Iterable[str], elsewhere: Sequence[str]
) -> str | None:
    """Where a child still starting listens instead of `address`, and the fix, when that
    cannot be a step on its way to `address`: a pipe child at another folder's socket of its
    pipe's name (the earlier tool's /tmp/<pipe_name>, written into it), a server at the port
    it printed (a dev server's default, $PORT ignored). None otherwise: a server may open
    another port (an inspector's, gRPC's) before its own."""
    if process.communication_mode.uses_pipe:
        name = PurePosixPath(address).name
        if any(at.startswith("/") and PurePosixPath(at).name == name for at in elsewhere):
            return _listens_instead(process, address, elsewhere)
        return None
    port = address.rpartition(":")[2]
    listened = {at.rpartition(":")[2] for at in elsewhere if not at.startswith("/")}
    both = (printed_ports(last_lines) - {port}) & listened
    return _printed_port(sorted(both)[-1], port) if both else None


def _listens_instead(process: Process, address: str, elsewhere: Sequence[str]) -> str:
    """What to do about a child listening at `elsewhere` rather than at `address`."""
    there = ", ".join(elsewhere[:3]) + (" ..." if len(elsewhere) > 3 else "")
    ports = [at for at in elsewhere if not at.startswith("/")]
    if process.communication_mode.uses_pipe:
        if ports:
            return (
                f"it listens on {there} instead: a server on a port goes under "
                "<communication_mode>passthrough</communication_mode> (or http, if it "
                "answers the JSON envelope); a pipe child listens at $PIPE_ADDRESS"
            )
        said = f"it listens on {there} instead: a pipe child listens at $PIPE_ADDRESS"
        name = PurePosixPath(address).name
        fixed = [PurePosixPath(at).parent for at in elsewhere if PurePosixPath(at).name == name]
        if fixed:  # a path written into the child, as children of the earlier tool may have
            said += f", or run the proxy with --socket-dir {fixed[0]} to put it there"
        return said
    if not ports:
        return (
            f"it listens on {there} instead: a child on a socket file goes under "
            "<communication_mode>pipe</communication_mode> and listens at $PIPE_ADDRESS"
        )
    port = address.rpartition(":")[2]
    if any(at.rpartition(":")[2] == port for at in ports):
        return (
            f"it listens on {there}, where 127.0.0.1 does not reach it: have it "
            "listen on 127.0.0.1 or on every address (0.0.0.0)"
        )
    others = sorted({at.rpartition(":")[2] for at in ports}, key=int)
    fix = f"set <port>{others[0]}</port>" if len(others) == 1 else "set <port> to its HTTP port"
    return f"it listens on {there} instead: {fix}, or have it listen on $PORT ({port})"


def printed_ports(lines: Iterable[str]) -> set[str]:
    """The ports a child's output names."""
    return {m.group(1) or m.group(2) for line in lines for m in _PRINTED_PORT.finditer(line)}


def ended(code: int | None) -> str:
    """How a process ended, in words fit for a client: never its output, which may hold
    secrets (the log has it)."""
    if code is None:
        return "could not be started"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:  # a number this platform has no name for
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


# The lock file that says which package manager installs a folder's node_modules.
_INSTALLERS = (("pnpm-lock.yaml", "pnpm"), ("yarn.lock", "yarn"), ("bun.lockb", "bun"),
               ("bun.lock", "bun"))  # fmt: skip


def uninstalled(folder: Path) -> str:
    """Why a child in `folder` may have failed before it listened: its package.json names
    dependencies, and no node_modules is installed there or above (a fresh clone before
    `npm install`: "sh: 1: vite: not found", "Cannot find package 'express'"); "" when
    that is not so (Yarn's Plug'n'Play installs none: its .pnp.cjs counts)."""
    try:
        named = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(named, dict) or not (
        named.get("dependencies") or named.get("devDependencies")
    ):
        return ""
    if any((at / "node_modules").is_dir() or (at / ".pnp.cjs").is_file()
           for at in (folder, *folder.parents)):  # fmt: skip
        return ""
    tool = next((tool for lock, tool in _INSTALLERS if (folder / lock).is_file()), "npm")
    return (
        f"its package.json names dependencies that are not installed (no node_modules): run "
        f"{tool} install in {folder}, or give it <build>{tool} install</build>"
    )


# A Python child's account of a package it cannot import.
_NO_MODULE = re.compile(r"\b(?:ModuleNotFoundError|ImportError): No module named ")


def outside_venv(folder: Path, program: str, said: str) -> str:
    """Why a Python child in `folder` may have failed before it listened: it said it cannot
    import a module (`said`, its telling line), and `program`, as PATH found it (`python3`,
    `uvicorn`), is not that of the project's virtual environment, in `folder` or above (a
    local-lambdas from pipx, or a shell or CI step where it was not activated); "" when
    that is not so. Named without the child's output, which a client may be shown."""
    if not _NO_MODULE.search(said):
        return ""
    venv = next((at / name for at in (folder, *folder.parents) for name in VENVS
                 if (at / name / "pyvenv.cfg").is_file()), None)  # fmt: skip
    if venv is None or Path(program).is_relative_to(venv):
        return ""
    own = venv / VENV_PROGRAMS / Path(program).name
    if not own.exists():
        return f"it does not run in the virtual environment {venv}: start it from there"
    return (
        f"it does not run in the virtual environment {venv}, which may hold what it imports: "
        f"give <executable>{own}</executable>, or start local-lambdas with it activated"
    )


def killed_at(grace: float) -> str:
    """A child still running at the end of its <stop_timeout>, killed (a stop that took the
    whole grace, said rather than left a mystery)."""
    if sys.platform == "win32":
        return f"still running {grace:g}s after its Ctrl+Break (<stop_timeout>); terminated"
    return f"still running {grace:g}s after its SIGTERM (<stop_timeout>); killed with SIGKILL"


# A worker (mode none) given up on after quick exits with code 0: the fix.
ENDS_BY_ITSELF = (
    "a program that ends by itself (a migration, a build) is a <task>, run once before "
    "what depends on it; a worker that may finish takes <restart>on-failure</restart>"
)


def left_running(commands: dict[int, str], code: int | None) -> str:
    """What a child that exited with `code` left running (stopped since, with it). After an
    exit with 0, the fix too: a wrapper that starts its server in the background (`&`,
    setsid, a daemon mode) and exits looks to a supervisor like a server that ended. (After
    a crash, what is left is the crashed server's own, its workers say.)"""
    shown = ", ".join(f"pid {pid}" + (f" ({cmd[:120]})" if cmd else "")
                      for pid, cmd in list(commands.items())[:3])  # fmt: skip
    more = f" and {len(commands) - 3} more" if len(commands) > 3 else ""
    told = f"it left {shown}{more} running, stopped with it"
    if code != 0:
        return told
    return (f"{told}: keep the server in the foreground (no '&', setsid or daemon mode; "
            "'exec' it from a wrapper script)")  # fmt: skip


def serves_tls(process: Process, address: str) -> str:
    """Why a child closes every connection unanswered: it serves HTTPS (readiness.speaks_tls)."""
    return (
        f"{process.id}: it serves HTTPS (TLS) at {address}, but local-lambdas speaks plain HTTP "
        "to its children: have it serve plain HTTP there (the proxy serves HTTPS itself with "
        "--tls-cert and --tls-key, or --tls self-signed)"
    )

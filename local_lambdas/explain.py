"""What a person is told about a child that is not serving: why it is not ready, how it
ended, where it listens. Pure functions of what was seen, so that the wording lives in one
place and table tests can hold it (tests/test_units.py)."""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from local_lambdas.config import Process

# Addresses a dev server prints when it ignores $PORT: "Running on http://127.0.0.1:5000",
# "Uvicorn running on http://0.0.0.0:8000", "listening on port 8080".
_PRINTED_PORT = re.compile(r"https?://[^\s/]*:(\d{2,5})\b|\bport\s+(\d{2,5})\b", re.IGNORECASE)

# A line that says what went wrong, as runtimes and servers print it: "Error: listen
# EADDRINUSE" and "Error [ERR_MODULE_NOT_FOUND]: Cannot find package" (Node.js, its code in
# brackets), "OSError: [Errno 98]" (Python), "java.net.BindException: ...",
# "Exception in thread", "thread 'main' panicked at" (Rust), "panic:" (Go), "fatal:",
# "error[E0425]:", a log's ERROR or FATAL (uvicorn, gunicorn), "... (RuntimeError)" (Ruby),
# "[UnhandledPromiseRejection: ...]" (Node.js). A Python traceback's last line tells too,
# whatever its exception is called ("ImproperlyConfigured: ..."): see telling().
_TELLING = re.compile(
    r"^\s*(?:[\w.$]*(?:Error|Exception)(?: \[\w+\])?:|Exception in thread\b|"
    r"thread '.*panicked at\b|"
    r"(?:[Pp]anic|[Ff]atal(?: error)?|[Ee]rror(?:\[\w+\])?)\s*:)"
    r"|\b(?:ERROR|FATAL|CRITICAL)\b|\(\w*(?:Error|Exception)\)$"
    r"|^\[\w*(?:Error|Exception|Rejection): "  # what Node.js prints of a non-Error thrown
)
# The tag a runner that starts several programs puts before each of their lines:
# concurrently's "[api] ", nodemon's "[nodemon] ", "api-1  | " (docker compose), "12:00:00
# web.1  | " (honcho, foreman, overmind). A line is judged without it, and quoted with it.
_TAG = re.compile(r"^(?:\[[^\]\s]{1,40}\] |(?:\d\d:\d\d:\d\d )?[\w.@/-]{1,40} *\| )")
# The gutter of an exception group's traceback (Python 3.11+: asyncio.TaskGroup, anyio,
# trio): its nested lines start "    | ", its first "  + "; judged and quoted without it.
_GUTTER = re.compile(r"^\s*[|+] ")
# What follows the telling line and tells nothing: a stack frame, a runtime's sign-off, a
# wrapper's or runtime's own account of the exit (npm's, yarn's, make's, `go run`'s,
# cargo's, gunicorn's, Perl's).
_NOISE = re.compile(
    r"^\s+(?:at|from)\s|^\s*File \"|^\t|^\s*[~^]+\s*$|^Node\.js v\d|^note: |^exit status \d+$"
    r"|^npm (?:ERR!|error)(?:\s|$)"
    r"|^error Command failed with exit code \d+\.$|^info Visit https://yarnpkg\.com/"  # yarn 1's
    r"|^make(?:\[\d+\])?: \*\*\* \[.*\] (?:Error \d+|Interrupt)"  # make's
    r"|^BEGIN failed--compilation aborted at |^Execution of .* aborted due to compilation "
    r"errors\.$"  # Perl's, after the error that aborted it
    r"|^\s*\}\s*$|^\s*[*=#-]{3,}\s*$"  # the end of Node's dump of an error; a banner's rule
    r"|^error: (?:could not compile|aborting due to)"  # cargo's count after rustc's error
    r"|^\s*\+[-+ \d.]*$"  # an exception group's rules ("+-+------ 1 ------")
    r"|^ERROR:\s+Application startup failed\. Exiting\.$"  # uvicorn's account of its lifespan
    # gunicorn's account of a worker that failed (its traceback came before)
    r"|\] (?:Reason: (?:Worker|App) failed to (?:boot|load)\.|Shutting down: Master"
    r"|Worker \(pid:\d+\) exited with code \d+)",
)
# Node.js's account of a promise rejected with what is not an Error: a long preamble, then
# the reason, which a quote cut at 200 characters would lose.
_REJECTED = re.compile(
    r"\[UnhandledPromiseRejection: .*(The promise rejected with the reason .*?)\]"
)
# Spring Boot's account of a failed start: the line after "Description:" says why
# (_described).
_SPRING_FAILED = "APPLICATION FAILED TO START"
# npm's own failure (no such script, no package.json), as against its account of a script
# that failed ("Lifecycle script `start` failed", "command failed", "code 1"): its first line
# that says something, past the fields (code, syscall, path, errno...).
_NPM_OWN = re.compile(
    r"^npm (?:ERR!|error) (?!(?:code|syscall|path|errno|workspace|location|command|signal|"
    r"Lifecycle script|A complete log|\s*$)\b)\S"
)
_NPM_SCRIPT_FAILED = re.compile(r"^npm (?:ERR!|error) (?:Lifecycle script|command failed)")


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


def telling(lines: Iterable[str]) -> str:
    """The line of a child's last output that says why it ended: the last one that names an
    error (or a Python traceback's exception), with the line it introduces ("panicked at
    m.rs:1:2:" and the message); else the last line that is not a stack frame or a sign-off;
    npm's own error when npm could not start the script at all; Spring Boot's description
    of a failed start; "" when it printed nothing. A runner's tag on a line (_TAG) is kept
    in the quote but not judged."""
    lines = list(lines)
    npm = [line.strip() for line in lines if _NPM_OWN.search(line)]
    if npm and not any(_NPM_SCRIPT_FAILED.search(line) for line in lines):
        return npm[0]  # npm could not start the script: no output of its is to be had
    lines = [_GUTTER.sub("", line, count=1) for line in lines]
    untagged = [(line, _TAG.sub("", line, count=1)) for line in lines]
    shown = [(line.strip(), bare) for line, bare in untagged
             if bare.strip() and not _NOISE.search(bare)]  # fmt: skip
    described = _described([bare.strip() for _, bare in shown])
    if described is not None:
        return shown[described][0]
    raised = _raised(bare for _, bare in shown)
    for at in range(len(shown) - 1, -1, -1):
        line, bare = shown[at]
        if at in raised or _TELLING.search(bare) or _TELLING.search(line):  # ([ERROR]: no tag)
            rejected = _REJECTED.search(line)
            if rejected:
                return f"{line[: rejected.start()]}UnhandledPromiseRejection: {rejected[1]}"
            if line.endswith(":") and at + 1 < len(shown):
                return f"{line} {shown[at + 1][0]}"
            return line
    return shown[-1][0] if shown else ""


def _described(lines: list[str]) -> int | None:
    """Where Spring Boot's account of a failed start says why: the line after the
    "Description:" that follows its "APPLICATION FAILED TO START"; None without one."""
    if _SPRING_FAILED not in lines:
        return None
    after = lines.index(_SPRING_FAILED)
    if "Description:" not in lines[after:-1]:
        return None
    return lines.index("Description:", after) + 1


def _raised(lines: Iterable[str]) -> set[int]:
    """Where the exception of each Python traceback among `lines` is: the first line after
    "Traceback (most recent call last):" that its frames do not indent."""
    found: set[int] = set()
    in_traceback = False
    for at, line in enumerate(lines):
        if line.strip().endswith("Traceback (most recent call last):"):  # ("Exception Group")
            in_traceback = True
        elif in_traceback and not line[:1].isspace():
            found.add(at)
            in_traceback = False
    return found


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

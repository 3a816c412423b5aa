"""Which line of a child's output says why it failed, for "its last output: ..." in a
reason (OutputTail.telling): the error line as each runtime prints it, past the stack frames,
sign-offs and wrappers' accounts of the exit that follow it. Pure functions over the lines;
each rule's real program is a case in tests/units/test_failure_line.py."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A line that says what went wrong, as runtimes and servers print it: "Error: listen
# EADDRINUSE" and "Error [ERR_MODULE_NOT_FOUND]: Cannot find package" (Node.js, its code in
# brackets), "OSError: [Errno 98]" (Python), "java.net.BindException: ...",
# "Exception in thread", "thread 'main' panicked at" (Rust), "panic:" (Go), "fatal:",
# "error[E0425]:", a log's ERROR or FATAL (uvicorn, gunicorn), "... (RuntimeError)" (Ruby),
# "[UnhandledPromiseRejection: ...]" (Node.js), "Unhandled exception. System.X: ..." (.NET).
# A Python traceback's last line tells too, whatever its exception is called
# ("ImproperlyConfigured: ..."): see telling().
_TELLING = re.compile(
    r"^\s*(?:[\w.$]*(?:Error|Exception)(?: \[\w+\])?:|Exception in thread\b|"
    r"Unhandled exception\. |"
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
# cargo's, gunicorn's, Perl's, Maven's, Gradle's, .NET's).
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
    r"|Worker \(pid:\d+\) exited with code \d+)"
    r"|^\s*--- End of inner exception stack trace ---$"  # .NET's, between two traces
    # Maven's account of a program it ran that failed (`mvn spring-boot:run`, `exec:java`),
    # and its advice; not its own failures ("Failed to execute goal ...: Compilation failure")
    r"|^\[INFO\] (?:-{3,}$|BUILD FAILURE$|Total time: |Finished at: )|^\[ERROR\] ?$"
    r"|^\[ERROR\] (?:To see the full stack trace|Re-run Maven|For more information about the "
    r"errors|\[Help \d+\] )|^\[ERROR\] Failed to execute goal .*: Process terminated with "
    r"exit code: \d+ -> \[Help \d+\]$"
    # Gradle's account of a program it ran that failed (`gradle bootRun`, `run`), and its advice
    r"|^> Task :\S+ FAILED$|^FAILURE: Build failed with an exception\.$"
    r"|^\* (?:What went wrong|Try):$|^Execution failed for task '[^']*'\.$"
    r"|^> Process '.*' finished with non-zero exit value \d+$"
    r"|^> (?:Run with --|Get more help at )|^BUILD FAILED in |^\d+ actionable tasks?: ",
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
    # Noise is looked for with the tag too: Maven's "[ERROR] " reads as a runner's tag.
    shown = [(line.strip(), bare) for line, bare in untagged
             if bare.strip() and not (_NOISE.search(bare) or _NOISE.search(line))]  # fmt: skip
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

"""The command line: argv -> Settings -> a command; exit statuses are decided here and only here.

local-lambdas [MANIFEST] [--bind HOST:PORT]      run the proxy (default manifest.xml)
local-lambdas check [--boot] MANIFEST            validate (and with --boot, try) a manifest
local-lambdas run MANIFEST -- COMMAND [ARGS...]  bring it up, run COMMAND, tear it down
local-lambdas restart ID [--url URL]             restart one process of a running proxy
local-lambdas export compose|kubernetes MANIFEST the manifest for a container engine
local-lambdas completion bash|zsh|tcsh           a shell completion script (shtab)
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_lambdas import inherited
from local_lambdas.loading_signals import while_loading
from local_lambdas.options import values as option_values
from local_lambdas.options import words

if TYPE_CHECKING:
    from local_lambdas.config import Manifest
    from local_lambdas.output import Printer

# Only argparse, this module, options/words.py (with options/common.py), options/values.py,
# inherited.py and loading_signals.py load before the arguments are read: --help, --version
# and a usage error answer without loading pydantic, rich, lxml and asyncio (a third of a
# second here; a mistyped word loads errors.py, and asyncio with it, for its suggestion).
# What a command needs is imported where it runs.

# (EXIT_INTERRUPTED, 130, is the package's: its console script says a Ctrl+C too.)
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_READY = 0, 1, 2, 3
_VERBOSITY = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}


def print_line(text: str, *, as_json: bool = False, level: str = "error") -> None:
    """notices.print_line, loaded when a line is said."""
    from local_lambdas import notices

    notices.print_line(text, as_json=as_json, level=level)


def _socket_dir(args: argparse.Namespace) -> tuple[Path, bool]:
    if args.socket_dir is not None:
        return args.socket_dir.resolve(), False
    from local_lambdas import _compat

    # The name is chosen now (its length is checked against the platform's socket path
    # limit when the manifest loads) and made, mode 0700, when the children start.
    return _compat.socket_base_dir() / f"local-lambdas-{secrets.token_hex(4)}", True


_COMMANDS = ("check", "run", "restart")  # and export, which has its own parser
# Every command word; `run` alone of them serves (restart_command.running_proxies).
ALL_COMMANDS = (*_COMMANDS, "export", "completion")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    inherited.put_right()
    with while_loading() as loading:  # Ctrl+C and SIGHUP until the run's loop takes them
        try:
            return _main(argv)
        except BaseException as exc:
            # Ctrl+C or SIGTERM before the loop took it (while loading, or before `run` and
            # `check` take it): what was started is stopped on the way out; one line, not a
            # traceback, whatever error an import it cut short raised for it. (Python
            # itself may end with SIGINT after one that passed through an extension's
            # import, whatever is returned: 130 is what the shell sees either way.)
            if not (isinstance(exc, KeyboardInterrupt) or loading.stopped_by is not None):
                raise
            from local_lambdas.errors import Stopped

            stopped = Stopped(loading.stopped_by or signal.SIGINT)
            sys.stderr.write(f"local-lambdas: {stopped}\n")
            return stopped.status


def _main(argv: list[str]) -> int:
    if argv and argv[0] == "help" and not os.path.isfile("help"):
        # `local-lambdas help [COMMAND]`, as git, pip and npm take it (not a manifest).
        argv = [*argv[1:2], "--help"]
    if argv and argv[0] == "completion":
        from local_lambdas.commands.completion import completion

        return completion(argv[1:])
    if argv and argv[0] == "export":
        from local_lambdas.export.command import export_command

        return export_command(argv[1:])
    command = argv[0] if argv and argv[0] in _COMMANDS else "serve"
    if command != "serve":
        argv = argv[1:]
    to_run: list[str] = []
    if command == "run":
        split = _command_to_run(argv)
        if split is None:
            return EXIT_USAGE
        argv, to_run = split
    parser = words.parsers()[command]
    args, extra = parser.parse_known_args(argv)
    if extra and command == "serve" and extra[0] in (*_COMMANDS, "export"):
        # `local-lambdas manifest.xml run -- pytest`: the command word goes first.
        print_line(f"local-lambdas: {extra[0]} comes first: local-lambdas {extra[0]} [options] ...")
        return EXIT_USAGE
    command_words = ALL_COMMANDS if command == "serve" else ()
    parser.refuse_strays(extra, getattr(args, "manifest", ""), command_words)
    if command == "restart":
        from local_lambdas.commands.restart import restart

        return restart(args.url, args.admin_prefix, args.process)
    try:
        usage = option_values.checked(args, command)
    except ValueError as exc:
        print_line(f"local-lambdas: {exc}")
        return EXIT_USAGE
    prefix, cache_bytes, cache_entries = usage.admin_prefix, usage.cache_bytes, usage.cache_entries
    from local_lambdas import manifest
    from local_lambdas._compat import limits
    from local_lambdas.errors import (
        CommandNotRun,
        ManifestError,
        NotAllReady,
        StartupError,
        Stopped,
    )
    from local_lambdas.manifest import flags as manifest_flags
    from local_lambdas.notices import print_problems, print_warnings
    from local_lambdas.output import Printer

    socket_dir, own = _socket_dir(args)
    path = Path(args.manifest)

    env_files = [] if args.no_env_file else args.env_file

    def load() -> Manifest:
        loaded = manifest.load(
            path, socket_dir=socket_dir, admin_prefix=prefix, env_files=env_files
        )
        if args.instances is not None:
            loaded = manifest_flags.with_instances(loaded, args.instances)
        return manifest_flags.without_timeouts(loaded) if args.no_timeouts else loaded

    as_json = args.log_format == "json"  # the lines before and after the run's, too
    try:
        loaded = load()
    except ManifestError as exc:
        print_problems([str(p) for p in exc.problems], as_json=as_json)
        print_line(
            f"local-lambdas: {path} has {len(exc.problems)} problem(s)"
            + ("" if command == "check" else "; nothing was started"),
            as_json=as_json,
        )
        return EXIT_FAILURE
    print_warnings(loaded.warnings, as_json=as_json)
    if command == "check" and not args.boot:
        print_line(f"{path}: OK, {len(loaded.processes)} process(es)", as_json=as_json,
                   level="info")  # fmt: skip
        return EXIT_OK
    try:
        option_values.port_clash(usage, {p.id: p.port for p in loaded.processes})
        only = option_values.only_ids(args.only, [p.id for p in loaded.processes])
    except ValueError as exc:
        print_line(f"local-lambdas: {exc}", as_json=as_json)
        return EXIT_USAGE
    settings = option_values.settings(args, usage, socket_dir, own, only)
    # Before the printer's thread may start: uvloop is imported with its cheaper table of
    # transports only while no other thread runs (uvloop_import.py).
    try:
        run = _event_loop(args.event_loop)
    except ImportError:
        print_line(
            "local-lambdas: --event-loop uvloop: uvloop is not installed; "
            "pip install 'local-lambdas[fast]' (not on Windows)"
        )
        return EXIT_USAGE
    printer = Printer(log_format=settings.log_format)
    _configure_logging(printer, _VERBOSITY[settings.verbosity])
    _said_before_the_run(args.no_timeouts, cache_bytes, cache_entries)
    # Each request makes a few dozen short-lived containers: collecting the youngest
    # generation every 700 of them (the default) cost 4% of the proxy's instructions.
    gc.set_threshold(10_000, 10, 10)
    # Only now: aiohttp and the rest load for a run, not for --help, --version or a check.
    from local_lambdas.commands.run import run_command
    from local_lambdas.commands.serve import boot_check, serve

    limits.raise_open_files_limit()

    try:
        if command == "run":
            return run(run_command(loaded, settings, printer, to_run, args.ready_timeout))
        if command == "check":
            return run(boot_check(loaded, settings, printer, args.ready_timeout))
        return run(serve(loaded, settings, printer, load=load))
    except NotAllReady as exc:
        printer.flush()
        print_line(f"local-lambdas: {exc}", as_json=as_json)
        return EXIT_NOT_READY
    except CommandNotRun as exc:
        printer.flush()
        print_line(f"local-lambdas run: {exc}", as_json=as_json)
        return exc.status
    except StartupError as exc:
        printer.flush()
        print_line(f"local-lambdas: {exc}", as_json=as_json)
        return EXIT_FAILURE
    except Stopped as exc:
        printer.flush()
        print_line(f"local-lambdas: {exc}", as_json=as_json)
        return exc.status
    finally:
        printer.flush()


def _command_to_run(argv: list[str]) -> tuple[list[str], list[str]] | None:
    """`run`'s arguments and the command after `--`; None, said, when there is none (and
    its arguments as they are for --help)."""
    if {"-h", "--help"} & set(argv[: argv.index("--")] if "--" in argv else argv):
        return argv, []
    if "--" not in argv:
        print_line(
            "local-lambdas run: give the command after --, e.g. "
            "local-lambdas run manifest.xml -- pytest tests/smoke"
        )
        return None
    at = argv.index("--")
    if not argv[at + 1 :]:
        print_line("local-lambdas run: no command after --")
        return None
    return argv[:at], argv[at + 1 :]


def _said_before_the_run(
    no_timeouts: bool, cache_bytes: int | None, cache_entries: int | None
) -> None:
    """What the run's flags change that its log should say first."""
    if no_timeouts:
        logging.getLogger("local_lambdas.cli").warning(
            "--no-timeouts: <timeout>, <startup_timeout> and <queue_timeout> are off; a "
            "request waits for its child as long as it takes",
            extra={"fields": {"event": "no_timeouts"}},
        )
    if cache_bytes is not None:
        kept = f"up to {cache_entries} answers and " if cache_entries else ""
        logging.getLogger("local_lambdas.cli").info(
            "cache on (ENABLE_CACHE=%s): %s%d MiB for each process without <cache>; "
            "hits and misses in /_/status and /_/metrics",
            os.environ["ENABLE_CACHE"], kept, cache_bytes // 1024**2,
            extra={"fields": {"event": "cache", "bytes": cache_bytes, "entries": cache_entries}},
        )  # fmt: skip


def _event_loop(choice: str) -> Callable[[Coroutine[Any, Any, int]], int]:
    """How to run the proxy: asyncio.run, or uvloop.run (20% fewer instructions per request,
    PERFORMANCE.md). Raises ImportError when uvloop is asked for and missing."""
    from local_lambdas import _compat
    from local_lambdas.uvloop_import import import_uvloop

    if choice == "asyncio" or (choice == "auto" and _compat.IS_WINDOWS):
        return _asyncio_run
    try:
        import_uvloop()
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return _asyncio_run
    return uvloop.run


def _asyncio_run(main: Coroutine[Any, Any, int]) -> int:
    """asyncio.run, its children's exits told by a pidfd each where Linux has them, as
    Python 3.12 does by itself: 3.10 and 3.11 wait for each in a thread of its own, which
    a manifest of 150 children makes 150 threads, and which a limit on processes (ulimit
    -u, a container's pids.max: threads count too) refuses once it is reached, after the
    child has started, so that it ran unwatched."""
    import asyncio

    if sys.version_info < (3, 12) and hasattr(os, "pidfd_open"):
        try:
            os.close(os.pidfd_open(os.getpid()))
        except OSError:
            pass  # a kernel older than 5.3: the threads
        else:
            asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    return asyncio.run(main)


def _configure_logging(printer: Printer, level: int) -> None:
    """Every logger that can print, ours and the libraries', through the printer: one line
    per record, JSON ones with --log-format json."""
    handler = printer.handler(level)
    for name, at in (("local_lambdas", level), ("aiohttp", max(level, logging.WARNING)),
                     ("asyncio", max(level, logging.WARNING))):  # fmt: skip
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(at)
        logger.propagate = False
    logging.getLogger("asyncio").addFilter(_unaccepted_said_once)


def _unaccepted_said_once(record: logging.LogRecord) -> bool:
    """asyncio's "socket.accept() out of system resource", which its loop logs for each
    refused accept (thousands a second while the proxy is out of descriptors), as one line
    that says what it means, once a minute at most."""
    if not str(record.msg).startswith("socket.accept() out of system resource"):
        return True
    from local_lambdas._compat import limits

    said = limits.unaccepted_clients()
    if said is None:
        return False
    record.msg, record.args, record.exc_info, record.exc_text = said, (), None, None
    record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True

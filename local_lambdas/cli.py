"""The command line: argv -> Settings -> a run; exit codes are decided here and only here.

local-lambdas [MANIFEST] [--bind HOST:PORT]    run the proxy (default manifest.xml)
local-lambdas check MANIFEST                   validate only; exit 1 listing every error
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from local_lambdas import __version__, _compat, manifest
from local_lambdas.app import serve
from local_lambdas.config import Settings
from local_lambdas.errors import LocalLambdasError, ManifestError, StartupError
from local_lambdas.output import Printer, print_line, print_problems

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_BIND = "127.0.0.1:3000"
DEFAULT_CACHE = 64 * 1024**2  # ENABLE_CACHE=1: per process, for those without <cache>

_DESCRIPTION = """\
Run the child programs listed in a manifest and serve them all behind one HTTP port.
Each request goes to the child whose <route> matches its path, over a named pipe (Unix
socket) or HTTP; the child's answer goes back to the client. Ctrl+C stops everything.
"""
_EPILOG = """\
commands:
  local-lambdas [MANIFEST]        run the proxy (MANIFEST defaults to manifest.xml)
  local-lambdas check MANIFEST    only validate MANIFEST; list every problem, exit 1 if any

examples:
  local-lambdas                          run ./manifest.xml on http://127.0.0.1:3000
  local-lambdas services.xml --bind 0.0.0.0:8080
  BIND_ADDRESS=127.0.0.1:4000 local-lambdas
  ENABLE_CACHE=1 local-lambdas           cache GET answers the children mark cacheable
  local-lambdas --watch                  restart children when their files change
  local-lambdas check manifest.xml

exit status: 0 after a clean stop or a valid check, 1 on any error, 2 on a usage error.
"""


def _parser(prog: str, *, check: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=_DESCRIPTION if not check else "Validate a manifest without starting it.",
        epilog=_EPILOG if not check else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "manifest",
        nargs="?" if not check else None,
        default="manifest.xml",
        metavar="MANIFEST",
        help="the manifest file (default: manifest.xml)",
    )
    parser.add_argument(
        "--socket-dir",
        metavar="DIR",
        type=Path,
        help="put pipe sockets in DIR as DIR/<pipe_name> (default: a private "
        "directory made for this run; --socket-dir /tmp is the earlier "
        "tool's layout)",
    )
    if check:
        return parser
    parser.add_argument("--version", action="version", version=f"local-lambdas {__version__}")
    parser.add_argument(
        "--bind",
        metavar="HOST:PORT",
        help=f"address to listen on (default: $BIND_ADDRESS, else {DEFAULT_BIND})",
    )
    parser.add_argument(
        "--shutdown-timeout",
        metavar="SECONDS",
        type=float,
        default=10.0,
        help="on stop, how long requests in flight may take (default: 10)",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="reload when the manifest changes; restart a process when a file in its "
        "working_dir changes (SIGHUP always reloads)",
    )
    parser.add_argument(
        "--watch-ignore",
        metavar="GLOB",
        action="append",
        default=[],
        help="with --watch, ignore files matching GLOB (repeatable), e.g. '*.log'",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text for people (default), json for one object per line",
    )
    return parser


def _split_bind(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--bind/BIND_ADDRESS {value!r} must be HOST:PORT, e.g. {DEFAULT_BIND}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _socket_dir(args: argparse.Namespace) -> tuple[Path, bool]:
    if args.socket_dir is not None:
        return args.socket_dir.resolve(), False
    # The name is chosen now (its length is checked against the platform's socket path
    # limit when the manifest loads) and made, mode 0700, when the children start.
    return _compat.socket_base_dir() / f"local-lambdas-{secrets.token_hex(4)}", True


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    check = bool(argv) and argv[0] == "check"
    args = _parser("local-lambdas check" if check else "local-lambdas", check=check).parse_args(
        argv[1:] if check else argv
    )
    socket_dir, own = _socket_dir(args)
    path = Path(args.manifest)
    try:
        loaded = manifest.load(path, socket_dir=socket_dir)
    except ManifestError as exc:
        print_problems([str(p) for p in exc.problems])
        if not check:
            print_line(
                f"local-lambdas: {path} has {len(exc.problems)} problem(s); nothing was started"
            )
        return EXIT_FAILURE
    if check:
        print_line(f"{path}: OK, {len(loaded.processes)} process(es)")
        return EXIT_OK
    try:
        host, port = _split_bind(args.bind or os.environ.get("BIND_ADDRESS") or DEFAULT_BIND)
    except ValueError as exc:
        print_line(f"local-lambdas: {exc}")
        return EXIT_USAGE
    cache = os.environ.get("ENABLE_CACHE", "").lower() in ("1", "true", "yes", "on")
    settings = Settings(
        host=host,
        port=port,
        socket_dir=socket_dir,
        own_socket_dir=own,
        shutdown_timeout=args.shutdown_timeout,
        log_format=args.log_format,
        watch=args.watch,
        watch_ignore=tuple(args.watch_ignore),
        default_cache=DEFAULT_CACHE if cache else None,
    )
    printer = Printer(log_format=settings.log_format)
    _configure_logging(printer)
    try:
        return asyncio.run(
            serve(
                loaded, settings, printer, load=lambda: manifest.load(path, socket_dir=socket_dir)
            )
        )
    except StartupError as exc:
        print_line(f"local-lambdas: {exc}")
        return EXIT_FAILURE
    except LocalLambdasError as exc:  # pragma: no cover - every such error is handled above
        print_line(f"local-lambdas: {exc}")
        return EXIT_FAILURE


def _configure_logging(printer: Printer) -> None:
    root = logging.getLogger("local_lambdas")
    root.handlers[:] = [printer.handler()]
    root.setLevel(logging.INFO)
    root.propagate = False


def entry_point() -> None:
    """The `local-lambdas` console script."""
    sys.exit(main())

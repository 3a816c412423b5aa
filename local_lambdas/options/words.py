"""The command line's words: each command's argparse parser with its help (what each value
may be is values.py's). cli.py decides what a command line does; this module only
reads it. Nothing here loads more than argparse until a value is read (--help and --version
stay quick).
"""

from __future__ import annotations

import argparse
import os

from local_lambdas import __version__, compiled
from local_lambdas.options.common import add_common
from local_lambdas.options.usage import Parser
from local_lambdas.options.values import DEFAULT_BIND, port_number, seconds
from local_lambdas.watch.ignored import WATCH_IGNORE

_DESCRIPTION = """\
Run the child programs listed in a manifest and serve them all behind one HTTP port.
Each request goes to the child whose <route> matches its path, over a named pipe (Unix
socket) or HTTP; the child's answer goes back to the client. Ctrl+C stops everything.
"""
_EPILOG = """\
commands:
  local-lambdas [MANIFEST]                  run the proxy (MANIFEST defaults to manifest.xml)
  local-lambdas check MANIFEST              only validate MANIFEST; list every problem
  local-lambdas check --boot MANIFEST       also start each child, probe it once, stop
  local-lambdas run MANIFEST -- CMD [ARG..] start everything on a free port, wait until
                                            ready, run CMD with $LOCAL_LAMBDAS_URL set,
                                            stop everything, exit with CMD's status
  local-lambdas restart ID                  restart process ID of the proxy running at
                                            $LOCAL_LAMBDAS_URL (else 127.0.0.1:3000)
  local-lambdas export compose MANIFEST     a compose file running each process in a
                                            container (or: export kubernetes)
  local-lambdas completion bash             a completion script: eval "$(local-lambdas
                                            completion bash)" in ~/.bashrc (or zsh)
  (each command has its own --help: local-lambdas help COMMAND)

examples:
  local-lambdas                          run ./manifest.xml on http://127.0.0.1:3000
  local-lambdas services.xml --bind 0.0.0.0:8080 --watch
  BIND_ADDRESS=127.0.0.1:4000 local-lambdas
  ENABLE_CACHE=1 local-lambdas           cache GET answers the children mark cacheable
  ENABLE_CACHE=5000 local-lambdas        the same, at most 5000 answers per process
  local-lambdas run manifest.xml -- pytest tests/smoke

the proxy's own endpoints: /_/health, /_/ready, /_/status, /_/metrics (see --admin-prefix)
exit status: 0 after a clean stop or a valid check; 1 on any error; 2 on a usage error;
3 when `run` gave up waiting for the children; for `run`, otherwise COMMAND's own status.
"""


def parsers() -> dict[str, Parser]:
    fmt = argparse.RawDescriptionHelpFormatter
    serve_p = Parser(
        prog="local-lambdas", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=fmt
    )
    _manifest_argument(serve_p)
    version = f"local-lambdas {__version__} ({compiled.STATE})"
    serve_p.add_argument("--version", action="version", version=version)
    serve_p.add_argument(
        "--bind",
        metavar="HOST:PORT",
        help=f"where to listen (default: $BIND_ADDRESS, else {DEFAULT_BIND}, and [::1] at "
        "that port too, so that localhost reaches it as IPv6; port 0 picks a free one)",
    )
    _port_argument(serve_p)
    serve_p.add_argument(
        "--shutdown-timeout",
        metavar="SECONDS",
        type=seconds,
        default=10.0,
        help="on stop, how long requests in flight may take (default: 10)",
    )
    serve_p.add_argument(
        "--watch",
        action="store_true",
        help="reload when the manifest changes; restart a process when a "
        "file in its working_dir changes (SIGHUP always reloads)",
    )
    serve_p.add_argument(
        "--watch-include",
        metavar="GLOB",
        action="append",
        default=[],
        help="with --watch, only files matching GLOB (repeatable), e.g. '*.go', restart a "
        "process (the manifest and env files are always followed)",
    )
    serve_p.add_argument(
        "--watch-ignore",
        metavar="GLOB",
        action="append",
        default=[],
        help="with --watch, also ignore files matching GLOB (repeatable). Always ignored: "
        ".git, __pycache__, node_modules, virtualenvs (any name), hidden folders (.next, .vscode), "
        "files git ignores, the proxy's own output files, temporary files renamed over "
        "others, files written again with the bytes they held, what a process's build and "
        "start write while --watch restarts it, and " + " ".join(WATCH_IGNORE),
    )
    add_common(serve_p)

    check_p = Parser(
        prog="local-lambdas check",
        description="Validate a manifest and list every problem (exit 1 if there is any). "
        "With --boot, also start each child, send it one GET on its first route, report what "
        "happened, and stop everything (exit 1 unless every child became ready and answered "
        "without a 5xx).",
    )
    _manifest_argument(check_p)
    check_p.add_argument("--boot", action="store_true", help="also start and probe each child")
    _ready_timeout_argument(check_p, 30.0, "with --boot, how long the children may take")
    add_common(check_p)

    run_p = Parser(
        prog="local-lambdas run",
        usage="local-lambdas run [options] [MANIFEST] -- COMMAND [ARGS...]",
        description="For CI: start every child on a free port, wait until all are ready, "
        "run COMMAND with LOCAL_LAMBDAS_URL=http://HOST:PORT in its environment, stop "
        "everything, and exit with COMMAND's status. If the children do not become ready, "
        "say which and why, and exit 3 without running COMMAND.",
    )
    _manifest_argument(run_p)
    run_p.add_argument(
        "--bind",
        metavar="HOST:PORT",
        default="127.0.0.1:0",
        help="where to listen (default: a free port on 127.0.0.1)",
    )
    _port_argument(run_p)
    _ready_timeout_argument(run_p, 60.0, "how long the children may take to be ready")
    add_common(run_p)
    restart_p = Parser(
        prog="local-lambdas restart",
        description="Restart one process of a running proxy, as a reload would: its "
        "replacement starts beside it and takes over once ready, so requests are not "
        "failed (one with a fixed <port>, or a worker, stops first, once its <build> has "
        "run; requests wait for its replacement). "
        "Exits 0 once it is ready, 1 if it is not.",
    )
    restart_p.add_argument("process", metavar="ID", help="the process's <id>")
    restart_p.add_argument(
        "--url",
        default=os.environ.get("LOCAL_LAMBDAS_URL", "http://127.0.0.1:3000"),
        help="the running proxy (default: $LOCAL_LAMBDAS_URL, else http://127.0.0.1:3000)",
    )
    restart_p.add_argument("--admin-prefix", metavar="PATH", default="/_/")
    return {"serve": serve_p, "check": check_p, "run": run_p, "restart": restart_p}


def _manifest_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "manifest", nargs="?", default="manifest.xml", metavar="MANIFEST",
        help="the manifest file (default: manifest.xml)",
    )  # fmt: skip


def _ready_timeout_argument(parser: argparse.ArgumentParser, default: float, what: str) -> None:
    parser.add_argument(
        "--ready-timeout", metavar="SECONDS", type=seconds, default=default,
        help=f"{what} (default: {default:g})",
    )  # fmt: skip


def _port_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p", "--port", type=port_number, metavar="PORT",
        help="listen on this port (on the host of --bind or $BIND_ADDRESS, else 127.0.0.1)",
    )  # fmt: skip

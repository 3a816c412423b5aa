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
import contextlib
import difflib
import gc
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_lambdas import __version__, compiled
from local_lambdas.ignored import WATCH_IGNORE

if TYPE_CHECKING:
    from local_lambdas.config import Manifest
    from local_lambdas.output import Printer

# Only argparse and this module load before the arguments are read: --help, --version and a
# usage error answer without loading pydantic, rich, lxml and asyncio (a third of a second
# here). What a command needs is imported where it runs.

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_READY = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl+C while loading, or a second one cutting a stop short
DEFAULT_BIND = "127.0.0.1:3000"
DEFAULT_CACHE = 64 * 1024**2  # ENABLE_CACHE=1: per process, for those without <cache>
_VERBOSITY = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}

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
  (each command has its own --help)

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


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--socket-dir",
        metavar="DIR",
        type=Path,
        help="put pipe sockets in DIR as DIR/<pipe_name> (default: a private "
        "directory made for this run; --socket-dir /tmp is the earlier "
        "tool's layout)",
    )
    parser.add_argument(
        "--admin-prefix",
        metavar="PATH",
        default="/_/",
        help="where the proxy's own endpoints live (default: /_/)",
    )
    parser.add_argument(
        "--env-file",
        metavar="FILE",
        action="append",
        type=Path,
        help="read environment variables for every child from FILE (repeatable; a later "
        "file wins); without it, ./.env is read when there is one",
    )
    parser.add_argument(
        "--no-env-file", action="store_true", help="read no env file, not even ./.env"
    )
    parser.add_argument(
        "--tls-cert",
        metavar="FILE",
        type=Path,
        help="serve HTTPS with this certificate (PEM; with --tls-key); children still speak "
        "HTTP or pipes",
    )
    parser.add_argument("--tls-key", metavar="FILE", type=Path, help="the key of --tls-cert")
    parser.add_argument(
        "--tls",
        choices=("self-signed",),
        help="self-signed: serve HTTPS with a throwaway certificate for localhost, 127.0.0.1 "
        "and ::1, made at start-up (its SHA-256 fingerprint is logged; browsers will warn)",
    )
    parser.add_argument(
        "--cors",
        metavar="ORIGIN",
        type=_origin,
        action="append",
        default=[],
        help="let a browser page from ORIGIN (repeatable; * for any) call every route whose "
        "process has no <cors> of its own: the proxy answers preflights and adds the headers",
    )
    parser.add_argument(
        "--only",
        metavar="ID[,ID...]",
        help="start only these processes (and what they depend on); the routes of the "
        "others answer 503 saying so",
    )
    parser.add_argument(
        "--no-deps",
        action="store_true",
        help="with --only, start none of the processes they depend on (tasks they need still "
        "run): they run elsewhere, as in a container per process (see export)",
    )
    parser.add_argument(
        "--instances",
        metavar="N",
        type=int,
        help="run N instances of every process, whatever its <instances> says (a container "
        "runs 1: the engine runs the replicas)",
    )
    parser.add_argument(
        "--no-timeouts",
        action="store_true",
        help="turn off <timeout>, <startup_timeout> kills and <queue_timeout>, so that a "
        "child can sit at a breakpoint (for debugging)",
    )
    parser.add_argument(
        "--admin-public",
        action="store_true",
        help="answer every client on the admin endpoints; by default only loopback clients "
        "get /_/status and /_/metrics (pids, addresses), while /_/health and /_/ready answer all",
    )
    parser.add_argument(
        "--client-header-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=60.0,
        help="a request head must arrive whole within this time (default: 60, as nginx); "
        "else 408 and the connection closes",
    )
    parser.add_argument(
        "--client-body-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=60.0,
        help="longest wait for the next bytes of a request body (default: 60, as nginx); else 408",
    )
    parser.add_argument(
        "--send-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=60.0,
        help="longest wait for a client to take more of its answer (default: 60, as nginx); "
        "else the connection closes",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text for people (default), json for one object per line",
    )
    parser.add_argument(
        "--event-loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="auto (default): uvloop when installed (pip install 'local-lambdas[fast]'; "
        "not on Windows), else asyncio's own",
    )
    parser.add_argument(
        "--no-fast-lane",
        dest="fast_lane",
        action="store_false",
        help="serve every request through aiohttp's server, not only pass-through and the "
        "admin endpoints (slower: see PERFORMANCE.md)",
    )
    parser.add_argument(
        "--inspector",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the last 200 requests and answers for the dashboard at /_/ (default: on "
        "while bound to loopback); --no-inspector records nothing",
    )
    parser.add_argument(
        "--inspect-secrets",
        action="store_true",
        help="show and replay the values of Authorization, Cookie and Set-Cookie in the "
        "inspector (hidden by default)",
    )
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q",
        "--quiet",
        action="store_const",
        dest="verbosity",
        const="quiet",
        default="normal",
        help="only warnings and errors from the proxy, no access log "
        "(children's output is still shown)",
    )
    loudness.add_argument(
        "-v",
        "--verbose",
        action="store_const",
        dest="verbosity",
        const="verbose",
        help="also debug lines",
    )


def _parsers() -> dict[str, argparse.ArgumentParser]:
    fmt = argparse.RawDescriptionHelpFormatter
    serve_p = argparse.ArgumentParser(
        prog="local-lambdas", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=fmt
    )
    serve_p.add_argument(
        "manifest",
        nargs="?",
        default="manifest.xml",
        metavar="MANIFEST",
        help="the manifest file (default: manifest.xml)",
    )
    version = f"local-lambdas {__version__} ({compiled.STATE})"
    serve_p.add_argument("--version", action="version", version=version)
    serve_p.add_argument(
        "--bind",
        metavar="HOST:PORT",
        help=f"where to listen (default: $BIND_ADDRESS, else {DEFAULT_BIND}; "
        "port 0 picks a free one)",
    )
    _port_argument(serve_p)
    serve_p.add_argument(
        "--shutdown-timeout",
        metavar="SECONDS",
        type=_seconds,
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
        ".git, __pycache__, node_modules, .venv and the like, the proxy's own output files, "
        "temporary files renamed over others, and " + " ".join(WATCH_IGNORE),
    )
    _common(serve_p)

    check_p = argparse.ArgumentParser(
        prog="local-lambdas check",
        description="Validate a manifest and list every problem (exit 1 if there is any). "
        "With --boot, also start each child, send it one GET on its first route, report what "
        "happened, and stop everything (exit 1 unless every child became ready and answered "
        "without a 5xx).",
    )
    check_p.add_argument(
        "manifest", nargs="?", default="manifest.xml", metavar="MANIFEST",
        help="the manifest file (default: manifest.xml)",
    )  # fmt: skip
    check_p.add_argument("--boot", action="store_true", help="also start and probe each child")
    check_p.add_argument(
        "--ready-timeout",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="with --boot, how long the children may take (default: 30)",
    )
    _common(check_p)

    run_p = argparse.ArgumentParser(
        prog="local-lambdas run",
        usage="local-lambdas run [options] [MANIFEST] -- COMMAND [ARGS...]",
        description="For CI: start every child on a free port, wait until all are ready, "
        "run COMMAND with LOCAL_LAMBDAS_URL=http://HOST:PORT in its environment, stop "
        "everything, and exit with COMMAND's status. If the children do not become ready, "
        "say which and why, and exit 3 without running COMMAND.",
    )
    run_p.add_argument(
        "manifest", nargs="?", default="manifest.xml", metavar="MANIFEST",
        help="the manifest file (default: manifest.xml)",
    )  # fmt: skip
    run_p.add_argument(
        "--bind",
        metavar="HOST:PORT",
        default="127.0.0.1:0",
        help="where to listen (default: a free port on 127.0.0.1)",
    )
    _port_argument(run_p)
    run_p.add_argument(
        "--ready-timeout",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="how long the children may take to be ready (default: 60)",
    )
    _common(run_p)
    restart_p = argparse.ArgumentParser(
        prog="local-lambdas restart",
        description="Restart one process of a running proxy, as a reload would: its "
        "replacement starts beside it and takes over once ready, so requests are not "
        "failed. Exits 0 once it is ready, 1 if it is not.",
    )
    restart_p.add_argument("process", metavar="ID", help="the process's <id>")
    restart_p.add_argument(
        "--url",
        default=os.environ.get("LOCAL_LAMBDAS_URL", "http://127.0.0.1:3000"),
        help="the running proxy (default: $LOCAL_LAMBDAS_URL, else http://127.0.0.1:3000)",
    )
    restart_p.add_argument("--admin-prefix", metavar="PATH", default="/_/")
    return {"serve": serve_p, "check": check_p, "run": run_p, "restart": restart_p}


def print_line(text: str) -> None:
    """output.print_line, loaded when a line is said."""
    from local_lambdas import output

    output.print_line(text)


def _completion(argv: list[str]) -> int:
    """Print a completion script for every command and option (shtab reads the parsers)."""
    import shtab

    parser = argparse.ArgumentParser(prog="local-lambdas completion")
    parser.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    shell = parser.parse_args(argv).shell
    parsers = _parsers()
    # The bare command's options, but not its MANIFEST: a positional beside the commands
    # would hide them from the completion.
    top = argparse.ArgumentParser(prog="local-lambdas", add_help=False)
    for action in parsers["serve"]._actions:
        if action.option_strings:
            top._add_action(action)
    commands = top.add_subparsers(dest="command")
    for name in ("check", "run", "restart"):
        commands.add_parser(name, parents=[parsers[name]], add_help=False, help=name)
    from local_lambdas.export_command import export_parser

    commands.add_parser("export", parents=[export_parser()], add_help=False, help="export")
    shells = commands.add_parser("completion", help="completion")
    shells.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    sys.stdout.write(shtab.complete(top, shell=shell))
    return EXIT_OK


def _restart(url: str, prefix: str, process: str) -> int:
    """POST the restart endpoint of the proxy at `url`; say what it answered."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    if not url.startswith(("http://", "https://")):
        print_line(f"local-lambdas restart: --url {url!r} must be the proxy's address, e.g. "
                   "http://127.0.0.1:3000")  # fmt: skip
        return EXIT_USAGE
    name = urllib.parse.quote(process)
    target = f"{url.rstrip('/')}/{prefix.strip('/')}/processes/{name}/restart"
    try:
        with urllib.request.urlopen(urllib.request.Request(target, method="POST")) as reply:
            raw = reply.read()
    except urllib.error.HTTPError as exc:
        try:
            error = json.load(exc)["error"]
        except (ValueError, KeyError, TypeError):
            error = (f"{url} answered {exc.code} {exc.reason}, not as local-lambdas does; "
                     "pass the proxy's address with --url")  # fmt: skip
        print_line(f"local-lambdas restart: {error}")
        return EXIT_FAILURE
    except (OSError, ValueError) as exc:  # refused, no such host, an address that is none
        reason = getattr(exc, "reason", exc)
        print_line(f"local-lambdas restart: no proxy at {url} ({reason}); pass --url")
        return EXIT_FAILURE
    try:
        state = json.loads(raw)["state"]
    except (ValueError, KeyError, TypeError):  # another server: JSON not ours, or none
        print_line(f"local-lambdas restart: {url} answered, but not as local-lambdas does; "
                   "pass the proxy's address with --url")  # fmt: skip
        return EXIT_FAILURE
    print_line(f"{process}: restarted, {state}")
    return EXIT_OK


def _port_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p", "--port", type=int, metavar="PORT",
        help="listen on this port (on the host of --bind or $BIND_ADDRESS, else 127.0.0.1)",
    )  # fmt: skip


def split_bind(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--bind/BIND_ADDRESS {value!r} must be HOST:PORT, e.g. {DEFAULT_BIND}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _socket_dir(args: argparse.Namespace) -> tuple[Path, bool]:
    if args.socket_dir is not None:
        return args.socket_dir.resolve(), False
    from local_lambdas import _compat

    # The name is chosen now (its length is checked against the platform's socket path
    # limit when the manifest loads) and made, mode 0700, when the children start.
    return _compat.socket_base_dir() / f"local-lambdas-{secrets.token_hex(4)}", True


_COMMANDS = ("check", "run", "restart")  # and export, which has its own parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # A script's background job (`local-lambdas manifest.xml &`) starts with SIGINT ignored.
    # The proxy takes Ctrl+C once its loop runs whatever it inherited; taken from the start,
    # one sent while it loads stops it rather than being lost while it goes on to serve.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        with contextlib.suppress(ValueError):  # not the main thread (a test's run in-process)
            signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Ctrl+C before the loop took it (while loading; for `run` and `check`, before they
        # are up): what was started is stopped on the way out; one line, not a traceback.
        # (Python itself may end with SIGINT after one that passed through an extension's
        # import, whatever is returned: 130 is what the shell sees either way.)
        sys.stderr.write("local-lambdas: stopped by Ctrl+C\n")
        return EXIT_INTERRUPTED


def _main(argv: list[str]) -> int:
    if argv and argv[0] == "completion":
        return _completion(argv[1:])
    if argv and argv[0] == "export":
        from local_lambdas.export_command import export_command

        return export_command(argv[1:])
    command = argv[0] if argv and argv[0] in _COMMANDS else "serve"
    if command != "serve":
        argv = argv[1:]
    to_run: list[str] = []
    if command == "run" and not {"-h", "--help"} & set(argv[: argv.index("--")] if "--" in argv
                                                           else argv):  # fmt: skip
        if "--" not in argv:
            print_line(
                "local-lambdas run: give the command after --, e.g. "
                "local-lambdas run manifest.xml -- pytest tests/smoke"
            )
            return EXIT_USAGE
        at = argv.index("--")
        argv, to_run = argv[:at], argv[at + 1 :]
        if not to_run:
            print_line("local-lambdas run: no command after --")
            return EXIT_USAGE
    parser = _parsers()[command]
    args, extra = parser.parse_known_args(argv)
    if extra and command == "serve" and extra[0] in (*_COMMANDS, "export"):
        # `local-lambdas manifest.xml run -- pytest`: the command word goes first.
        print_line(f"local-lambdas: {extra[0]} comes first: local-lambdas {extra[0]} [options] ...")
        return EXIT_USAGE
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if command == "restart":
        return _restart(args.url, args.admin_prefix, args.process)
    prefix = args.admin_prefix
    if not (prefix.startswith("/") and prefix.endswith("/") and len(prefix) > 2):
        fix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/_/"
        print_line(f"local-lambdas: --admin-prefix {prefix!r} must be a path that begins and "
                   f'ends with "/", like /_/ or /admin/: write "{fix}"')  # fmt: skip
        return EXIT_USAGE
    if (args.tls_cert is None) != (args.tls_key is None) or (args.tls and args.tls_cert):
        print_line("local-lambdas: give --tls-cert and --tls-key together, or --tls self-signed")
        return EXIT_USAGE
    if args.no_deps and not args.only:
        print_line("local-lambdas: --no-deps goes with --only ID[,ID...]")
        return EXIT_USAGE
    if args.instances is not None and not 1 <= args.instances <= 256:
        print_line(f"local-lambdas: --instances {args.instances}: give a number from 1 to 256")
        return EXIT_USAGE
    # Where to listen: a usage error too, said before the manifest is read and warned of.
    bind = args.bind if command != "check" else "127.0.0.1:0"
    if command == "serve":
        bind = bind or os.environ.get("BIND_ADDRESS") or DEFAULT_BIND
    try:
        host, port = split_bind(bind)
    except ValueError as exc:
        print_line(f"local-lambdas: {exc}")
        return EXIT_USAGE
    if getattr(args, "port", None) is not None:
        if not 0 <= args.port <= 65535:
            print_line(f"local-lambdas: --port {args.port} is not a port (0-65535)")
            return EXIT_USAGE
        port = args.port
    try:
        cache_bytes, cache_entries = _cache_setting(os.environ.get("ENABLE_CACHE", ""))
    except ValueError as exc:
        print_line(f"local-lambdas: {exc}")
        return EXIT_USAGE
    from local_lambdas import _compat, manifest
    from local_lambdas.config import Settings
    from local_lambdas.errors import CommandNotRun, ManifestError, NotAllReady, StartupError
    from local_lambdas.output import Printer, print_problems, print_warnings

    socket_dir, own = _socket_dir(args)
    path = Path(args.manifest)

    env_files = [] if args.no_env_file else args.env_file

    def load() -> Manifest:
        loaded = manifest.load(
            path, socket_dir=socket_dir, admin_prefix=prefix, env_files=env_files
        )
        if args.instances is not None:
            loaded = _with_instances(loaded, args.instances)
        return _without_timeouts(loaded) if args.no_timeouts else loaded

    try:
        loaded = load()
    except ManifestError as exc:
        print_problems([str(p) for p in exc.problems])
        print_line(
            f"local-lambdas: {path} has {len(exc.problems)} problem(s)"
            + ("" if command == "check" else "; nothing was started")
        )
        return EXIT_FAILURE
    print_warnings(loaded.warnings)
    if command == "check" and not args.boot:
        print_line(f"{path}: OK, {len(loaded.processes)} process(es)")
        return EXIT_OK
    only = tuple(name.strip() for name in (args.only or "").split(",") if name.strip())
    ids = [p.id for p in loaded.processes]
    for name in only:
        if name not in ids:
            close = difflib.get_close_matches(name, ids, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            print_line(f"local-lambdas: --only {name}: no such process; {hint}"
                       f"the processes are {', '.join(ids)}")  # fmt: skip
            return EXIT_USAGE
    settings = Settings(
        host=host,
        port=port,
        socket_dir=socket_dir,
        own_socket_dir=own,
        shutdown_timeout=getattr(args, "shutdown_timeout", 10.0),
        log_format=args.log_format,
        admin_prefix=prefix,
        admin_public=args.admin_public,
        client_header_timeout=args.client_header_timeout,
        client_body_timeout=args.client_body_timeout,
        send_timeout=args.send_timeout,
        verbosity=args.verbosity,
        watch=getattr(args, "watch", False),
        only=only,
        no_deps=args.no_deps,
        cors=tuple(args.cors),
        tls_cert=args.tls_cert.resolve() if args.tls_cert else None,
        tls_key=args.tls_key.resolve() if args.tls_key else None,
        tls_self_signed=args.tls == "self-signed",
        watch_ignore=tuple(getattr(args, "watch_ignore", ())),
        watch_include=tuple(getattr(args, "watch_include", ())),
        default_cache=cache_bytes,
        default_cache_entries=cache_entries,
        fast_lane=args.fast_lane,
        inspector=args.inspector,
        inspect_secrets=args.inspect_secrets,
    )
    printer = Printer(log_format=settings.log_format)
    _configure_logging(printer, _VERBOSITY[settings.verbosity])
    if args.no_timeouts:
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
    # Each request makes a few dozen short-lived containers: collecting the youngest
    # generation every 700 of them (the default) cost 4% of the proxy's instructions.
    gc.set_threshold(10_000, 10, 10)
    try:
        run = _event_loop(args.event_loop)
    except ImportError:
        print_line(
            "local-lambdas: --event-loop uvloop: uvloop is not installed; "
            "pip install 'local-lambdas[fast]' (not on Windows)"
        )
        return EXIT_USAGE
    # Only now: aiohttp and the rest load for a run, not for --help, --version or a check.
    from local_lambdas.commands import boot_check, run_command, serve

    _compat.raise_open_files_limit()

    try:
        if command == "run":
            return run(run_command(loaded, settings, printer, to_run, args.ready_timeout))
        if command == "check":
            return run(boot_check(loaded, settings, printer, args.ready_timeout))
        return run(serve(loaded, settings, printer, load=load))
    except NotAllReady as exc:
        printer.flush()
        print_line(f"local-lambdas: {exc}")
        return EXIT_NOT_READY
    except CommandNotRun as exc:
        printer.flush()
        print_line(f"local-lambdas run: {exc}")
        return exc.status
    except StartupError as exc:
        printer.flush()
        print_line(f"local-lambdas: {exc}")
        return EXIT_FAILURE
    finally:
        printer.flush()


def _with_instances(loaded: Manifest, instances: int) -> Manifest:
    """--instances N: N instances of every process but those with a fixed <port>, which
    only one instance can listen on (said in a warning)."""
    fixed = {p.id: p.port for p in loaded.processes if p.port and instances > 1}
    processes = tuple(
        p if p.id in fixed else p.model_copy(update={"instances": instances})
        for p in loaded.processes
    )
    said = tuple(
        f'<process id="{pid}">: --instances {instances} does not apply: one instance only can '
        f"listen on its <port> {port}"
        for pid, port in fixed.items()
    )
    return loaded.model_copy(update={"processes": processes, "warnings": loaded.warnings + said})


def _without_timeouts(loaded: Manifest) -> Manifest:
    """--no-timeouts: a request waits for its child, and a child for its first listen, as
    long as it takes (a breakpoint)."""
    from local_lambdas.config import NO_LIMIT

    unbounded = {"timeout": NO_LIMIT, "startup_timeout": NO_LIMIT, "queue_timeout": NO_LIMIT}
    processes = tuple(p.model_copy(update=unbounded) for p in loaded.processes)
    return loaded.model_copy(update={"processes": processes})


def _seconds(value: str) -> float:
    """A time-out flag: seconds above 0, or a duration as the manifest writes one (500ms)."""
    from local_lambdas.config import parse_duration

    try:
        seconds = float(str(parse_duration(value)))
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a time above 0; write e.g. 60, 30s or 500ms"
        )
    return seconds


def _origin(value: str) -> str:
    """--cors ORIGIN, spelt as browsers send it (else a usage error with the fix)."""
    from local_lambdas.config import check_origin

    try:
        return check_origin(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} {exc}") from None


def _cache_setting(value: str) -> tuple[int | None, int | None]:
    """ENABLE_CACHE in the earlier tool's forms: true (1, yes, on), or a capacity, the number
    of answers to keep; off when unset, empty, 0, false, no or off. Returns (bytes, entries)
    for each process without its own <cache>."""
    word = value.strip().lower()
    if word in ("", "0", "false", "no", "off"):
        return None, None
    if word in ("1", "true", "yes", "on"):
        return DEFAULT_CACHE, None
    if word.isdigit():
        return DEFAULT_CACHE, int(word)
    raise ValueError(
        f"ENABLE_CACHE={value!r} must be true, false, or how many answers to keep "
        "(e.g. ENABLE_CACHE=5000)"
    )


def _event_loop(choice: str) -> Callable[[Coroutine[Any, Any, int]], int]:
    """How to run the proxy: asyncio.run, or uvloop.run (20% fewer instructions per request,
    PERFORMANCE.md). Raises ImportError when uvloop is asked for and missing."""
    import asyncio

    from local_lambdas import _compat

    if choice == "asyncio" or (choice == "auto" and _compat.IS_WINDOWS):
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return asyncio.run
    return uvloop.run


def _configure_logging(printer: Printer, level: int) -> None:
    """Every logger that can print, ours and the libraries', through the printer: one line
    per record, JSON ones with --log-format json."""
    handler = printer.handler()
    for name, at in (("local_lambdas", level), ("aiohttp", max(level, logging.WARNING)),
                     ("asyncio", max(level, logging.WARNING))):  # fmt: skip
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(at)
        logger.propagate = False


def entry_point() -> None:
    """The `local-lambdas` console script."""
    sys.exit(main())

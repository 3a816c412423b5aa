"""The options every command that runs a manifest takes (serve, check and run): where its
sockets, env file and TLS come from, which processes run, the client-facing timeouts, the
log and the event loop. parsers.py builds each command's parser around them."""

from __future__ import annotations

import argparse
from pathlib import Path

from local_lambdas.options.values import child_url, origin, seconds


def add_common(parser: argparse.ArgumentParser) -> None:
    """Add the options of every command that runs the manifest: serve, check and run."""
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
    env_files = parser.add_mutually_exclusive_group()
    env_files.add_argument(
        "--env-file",
        metavar="FILE",
        action="append",
        type=Path,
        help="read environment variables for every child from FILE (repeatable; a later "
        "file wins); without it, ./.env is read when there is one",
    )
    env_files.add_argument(
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
        "--child-url",
        metavar="URL",
        type=child_url,
        help="the URL children and tasks find in $LOCAL_LAMBDAS_URL, to call the other "
        "routes by (default: where this proxy listens); for a proxy they reach at another "
        "address, as an export's containers do",
    )
    parser.add_argument(
        "--cors",
        metavar="ORIGIN",
        type=origin,
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
        type=seconds,
        default=60.0,
        help="a request head must arrive whole within this time (default: 60, as nginx); "
        "else 408 and the connection closes",
    )
    parser.add_argument(
        "--client-body-timeout",
        metavar="SECONDS",
        type=seconds,
        default=60.0,
        help="longest wait for the next bytes of a request body (default: 60, as nginx); else 408",
    )
    parser.add_argument(
        "--send-timeout",
        metavar="SECONDS",
        type=seconds,
        default=60.0,
        help="longest wait for a client to take more of its answer (default: 60, as nginx); "
        "else the connection closes",
    )
    parser.add_argument(
        "--keepalive-timeout",
        metavar="SECONDS",
        type=seconds,
        default=75.0,
        help="a client connection with no request for this long closes (default: 75, as "
        "nginx's keepalive_timeout)",
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

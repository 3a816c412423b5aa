"""What a command line's values may be, one by one and together: the readers argparse calls
(a duration, a CORS origin), HOST:PORT, ENABLE_CACHE, the checks across options that no
parser makes alone (`checked`) and against the manifest (`only_ids`, `port_clash`), each
failing with the fix, and the run's Settings they make (`settings`). Loads nothing more
than argparse until a value is read.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

    from local_lambdas.config import Settings

DEFAULT_BIND = "127.0.0.1:3000"
DEFAULT_CACHE = 64 * 1024**2  # ENABLE_CACHE=1: per process, for those without <cache>


def split_bind(value: str) -> tuple[str, int]:
    from local_lambdas.config_values import after_scheme

    rest = after_scheme(value)
    if rest is not None:
        # A URL pasted in (http://127.0.0.1:3000/): its address is shown as HOST:PORT.
        example = rest.partition("/")[0].rpartition("@")[2] or "127.0.0.1"
        if not example.rpartition(":")[2].isdigit():
            example += ":3000"
        raise ValueError(f"--bind/BIND_ADDRESS {value!r} is a URL; give HOST:PORT, e.g. {example}")
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        # A port alone is shown after the default host; a host alone (localhost, [::1])
        # with the default port after it.
        if value.isdigit():
            example = f"127.0.0.1:{value}"
        elif value and (":" not in value or value.endswith("]")):
            example = f"{value}:3000"
        else:
            example = DEFAULT_BIND
        raise ValueError(f"--bind/BIND_ADDRESS {value!r} must be HOST:PORT, e.g. {example}")
    if int(port) > 65535:
        raise ValueError(f"--bind/BIND_ADDRESS {value!r}: {port} is not a port (0-65535)")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        # ::1 was read as the host ":" and port 1; an address's last group is no port.
        raise ValueError(
            f"--bind/BIND_ADDRESS {value!r}: an IPv6 address goes in brackets, the port after "
            "them, e.g. [::1]:3000"
        )
    return host.strip("[]") or "127.0.0.1", int(port)


def port_number(value: str) -> int:
    """--port PORT: a number from 0 to 65535 (else a usage error saying so)."""
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (0-65535)")
    return int(value)


def seconds(value: str) -> float:
    """A time-out flag: seconds above 0, or a duration as the manifest writes one (500ms)."""
    from local_lambdas.config_values import parse_duration

    try:
        found = float(str(parse_duration(value)))
    except ValueError:
        found = 0.0
    if not found > 0 or found == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a time above 0; write e.g. 60, 30s or 500ms"
        )
    return found


def origin(value: str) -> str:
    """--cors ORIGIN, spelt as browsers send it (else a usage error with the fix)."""
    from local_lambdas.config_values import check_origin

    try:
        return check_origin(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} {exc}") from None


def child_url(value: str) -> str:
    """--child-url URL: http:// or https://, a host, perhaps a port and a path (no query);
    given without its trailing "/", so that "$LOCAL_LAMBDAS_URL/api" is right."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not one, a bracket not closed
        ok = False
    if not ok or parts.query or parts.fragment or "#" in value:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an http:// or https:// URL with a host (and no query), "
            "e.g. http://api.local:3000"
        )
    return value.rstrip("/")


def cache_setting(value: str) -> tuple[int | None, int | None]:
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


class Checked(NamedTuple):
    """What a command line that parsed says beyond its options one by one."""

    admin_prefix: str
    host: str
    port: int
    cache_bytes: int | None  # ENABLE_CACHE, for each process without <cache>
    cache_entries: int | None
    also_ipv6: bool = False  # the host is the default one: [::1] too (Settings.also_ipv6)


def checked(args: argparse.Namespace, command: str) -> Checked:
    """What no parser checks alone (options that go together, where to listen, the
    environment's ENABLE_CACHE), for a command other than `restart`; raises ValueError with
    the fix, said before the manifest is read."""
    prefix = args.admin_prefix
    if not (prefix.startswith("/") and prefix.endswith("/") and len(prefix) > 2):
        fix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/_/"
        raise ValueError(f"--admin-prefix {prefix!r} must be a path that begins and ends "
                         f'with "/", like /_/ or /admin/: write "{fix}"')  # fmt: skip
    if args.tls and (args.tls_cert or args.tls_key):
        raise ValueError("--tls self-signed makes its own certificate: give it alone, or "
                         "--tls-cert and --tls-key without it")  # fmt: skip
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("give --tls-cert and --tls-key together, or --tls self-signed")
    if args.only is not None and not args.only.strip(", "):
        raise ValueError(f"--only {args.only!r} names no process; give ids, e.g. --only api,web")
    if args.no_deps and not args.only:
        raise ValueError("--no-deps goes with --only ID[,ID...]")
    if args.inspect_secrets and args.inspector is False:
        raise ValueError("--inspect-secrets shows what the inspector keeps: drop --no-inspector")
    for flag in ("watch_include", "watch_ignore"):
        if getattr(args, flag, None) and not args.watch:  # (nothing would be watched)
            raise ValueError(f"--{flag.replace('_', '-')} goes with --watch: add --watch")
    if args.instances is not None and not 1 <= args.instances <= 256:
        raise ValueError(f"--instances {args.instances}: give a number from 1 to 256")
    if args.socket_dir is not None and args.socket_dir.exists() and not args.socket_dir.is_dir():
        raise ValueError(f"--socket-dir {args.socket_dir}: a file, not a directory; give a "
                         "directory, or a path for one to be made")  # fmt: skip
    bind = args.bind if command != "check" else "127.0.0.1:0"
    defaulted = False
    if command == "serve":
        bind = bind or os.environ.get("BIND_ADDRESS")
        defaulted = not bind
        bind = bind or DEFAULT_BIND
    host, port = split_bind(bind)
    if getattr(args, "port", None) is not None:
        port = args.port
    cache_bytes, cache_entries = cache_setting(os.environ.get("ENABLE_CACHE", ""))
    return Checked(prefix, host, port, cache_bytes, cache_entries, also_ipv6=defaulted)


def only_ids(given: str | None, ids: list[str]) -> tuple[str, ...]:
    """--only's process ids, each one of `ids` (the manifest's); raises ValueError with the
    fix for one that is not."""
    chosen = tuple(name.strip() for name in (given or "").split(",") if name.strip())
    for name in chosen:
        if name not in ids:
            from local_lambdas.errors import did_you_mean  # --help, --version: argparse only

            raise ValueError(
                f"--only {name}: no such process; {did_you_mean(name, ids)}"
                f"the processes are {', '.join(ids)}"
            )
    return chosen


def port_clash(usage: Checked, ports: dict[str, int | None]) -> None:
    """A process whose <port> (`ports`, by id) is where the proxy itself listens: raises
    ValueError naming both, before either starts (else the child fails, again and again,
    to listen where the proxy does)."""
    if usage.port == 0 or usage.host not in ("127.0.0.1", "0.0.0.0", "::", "::1", "localhost"):
        return
    for name, port in ports.items():
        if port == usage.port:
            raise ValueError(
                f'<process id="{name}"> has <port>{port}</port>, where the proxy itself '
                f"listens ({usage.host}:{port}): give the child another <port>, or the proxy "
                "another --port"
            )


def settings(
    args: argparse.Namespace, usage: Checked, socket_dir: Path, own: bool,
    only: tuple[str, ...],
) -> Settings:  # fmt: skip
    """The run's settings from its checked arguments."""
    from local_lambdas.config import Settings

    return Settings(
        host=usage.host,
        port=usage.port,
        also_ipv6=usage.also_ipv6,
        socket_dir=socket_dir,
        own_socket_dir=own,
        shutdown_timeout=getattr(args, "shutdown_timeout", 10.0),
        log_format=args.log_format,
        admin_prefix=usage.admin_prefix,
        admin_public=args.admin_public,
        client_header_timeout=args.client_header_timeout,
        client_body_timeout=args.client_body_timeout,
        send_timeout=args.send_timeout,
        keepalive_timeout=args.keepalive_timeout,
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
        default_cache=usage.cache_bytes,
        default_cache_entries=usage.cache_entries,
        fast_lane=args.fast_lane,
        child_url=args.child_url,
        inspector=args.inspector,
        inspect_secrets=args.inspect_secrets,
    )

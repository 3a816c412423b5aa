"""The `restart` command: ask a running proxy, over its admin endpoint, to restart one
process, and say in one line what it answered (or why no proxy did)."""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

from local_lambdas._compat import listeners
from local_lambdas.cli import ALL_COMMANDS, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, print_line

# The commands that serve nothing: a process running one of them is no proxy to ask.
_SERVE_NOTHING = frozenset(ALL_COMMANDS) - {"run"}


def restart(url: str, prefix: str, process: str) -> int:
    """POST the restart endpoint of the proxy at `url`; say what it answered."""
    if not url.startswith(("http://", "https://")):
        example = f"http://{url}" if url and "/" not in url else "http://127.0.0.1:3000"
        print_line(f"local-lambdas restart: --url {url!r} must be the proxy's address, e.g. "
                   f"{example}")  # fmt: skip
        return EXIT_USAGE
    parts = urllib.parse.urlsplit(url)
    if parts.path.strip("/") and f"{parts.path.rstrip('/')}/".startswith(prefix):
        url = f"{parts.scheme}://{parts.netloc}"  # (its dashboard's address: /_/)
    name = urllib.parse.quote(process)
    target = f"{url.rstrip('/')}/{prefix.strip('/')}/processes/{name}/restart"
    # The endpoint answers loopback clients only, so the proxy asked is this machine's own:
    # its certificate is not checked there (--tls self-signed makes one nobody trusts).
    context = None
    if urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        request = urllib.request.Request(target, method="POST")
        with urllib.request.urlopen(request, context=context) as reply:
            raw = reply.read()
    except urllib.error.HTTPError as exc:
        try:
            error = json.load(exc)["error"]
            if exc.code == 404 and error.startswith("no route matches"):
                same = [p for at, p in running_proxies() if at == url.rstrip("/") and p]
                runs = f"it runs with --admin-prefix {same[0]}:" if same else (
                    "if the proxy runs with --admin-prefix,")  # fmt: skip
                error += f"; {runs} pass the same"
        except (ValueError, KeyError, TypeError):
            error = (f"{url} answered {exc.code} {exc.reason}, not as local-lambdas does; "
                     "pass the proxy's address with --url")  # fmt: skip
        print_line(f"local-lambdas restart: {error}")
        return EXIT_FAILURE
    except (OSError, ValueError) as exc:  # refused, no such host, an address that is none
        reason = getattr(exc, "reason", exc)
        running = [(at, p) for at, p in running_proxies() if at != url.rstrip("/")]
        if len(running) == 1:
            ((at, theirs),) = running
            fix = f"one runs at {at}: pass --url {at}"
            fix += f" --admin-prefix {theirs}" if theirs else ""
        elif running:
            at = ", ".join(f"{at} (--admin-prefix {p})" if p else at for at, p in running)
            fix = f"local-lambdas runs at {at}: pass --url with one of them"
        else:
            fix = "pass --url"
        print_line(f"local-lambdas restart: no proxy at {url} ({reason}); {fix}")
        return EXIT_FAILURE
    try:
        state = json.loads(raw)["state"]
    except (ValueError, KeyError, TypeError):  # another server: JSON not ours, or none
        print_line(f"local-lambdas restart: {url} answered, but not as local-lambdas does; "
                   "pass the proxy's address with --url")  # fmt: skip
        return EXIT_FAILURE
    print_line(f"{process}: restarted, {state}")
    return EXIT_OK


def running_proxies() -> list[tuple[str, str | None]]:
    """Where the proxies running on this machine listen (Linux, from /proc: those of this
    user), as URLs for --url, each with the --admin-prefix it was given, if any: a process
    whose command line is `local-lambdas ...` or `python -m local_lambdas ...`, but for the
    commands that serve nothing; [] elsewhere."""
    if sys.platform != "linux":
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as raw:
                argv = raw.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        args = _proxy_args(argv)
        if args is None or (args[:1] and args[0] in _SERVE_NOTHING):
            continue
        ports = [at for at in listeners.held_listeners([int(entry)]) if not at.startswith("/")]
        if ports:  # (127.0.0.1 before [::1], as the proxy opens them)
            host, _, port = sorted(ports, key=lambda at: at.startswith("["))[0].rpartition(":")
            host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)  # (any: loopback)
            scheme = "https" if any(arg.startswith("--tls") for arg in args) else "http"
            found.append((f"{scheme}://{host}:{port}", _admin_prefix(args)))
    return found


def _admin_prefix(args: list[str]) -> str | None:
    """The --admin-prefix in a proxy's arguments, if it was given one."""
    for at, arg in enumerate(args):
        if arg == "--admin-prefix" and at + 1 < len(args):
            return args[at + 1]
        if arg.startswith("--admin-prefix="):
            return arg.partition("=")[2]
    return None


def _proxy_args(argv: list[str]) -> list[str] | None:
    """The arguments given to local-lambdas in a command line, None if it is not one."""
    for at, arg in enumerate(argv[:3]):
        if os.path.basename(arg) == "local-lambdas":
            return argv[at + 1 :]
        if arg == "-m" and argv[at + 1 : at + 2] == ["local_lambdas"]:
            return argv[at + 2 :]
    return None

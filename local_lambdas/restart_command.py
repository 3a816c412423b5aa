"""The `restart` command: ask a running proxy, over its admin endpoint, to restart one
process, and say in one line what it answered (or why no proxy did)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request

from local_lambdas.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, print_line


def restart(url: str, prefix: str, process: str) -> int:
    """POST the restart endpoint of the proxy at `url`; say what it answered."""
    if not url.startswith(("http://", "https://")):
        print_line(f"local-lambdas restart: --url {url!r} must be the proxy's address, e.g. "
                   "http://127.0.0.1:3000")  # fmt: skip
        return EXIT_USAGE
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
                error += "; if the proxy runs with --admin-prefix, pass the same"
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

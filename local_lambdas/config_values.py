"""The text values of the manifest and the command line read: durations, sizes, routes,
CORS origins, image references and file names. Plain functions that raise ValueError with
the fix (or say whether a value will do), without pydantic, so that the command line reads
its flags with them before loading it; config.py's models take them as validators.
"""

from __future__ import annotations

import os
import re

from local_lambdas import router

# ASCII's spaces and digits only, as the schema's \s and the durations people write: a
# no-break space pasted in "5 s" is said here, with the value, not by the schema's pattern.
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$", re.ASCII)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE | re.ASCII)
_SIZE_UNITS = {
    None: 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
    "gb": 1000**3, "gib": 1024**3,
}  # fmt: skip


def parse_duration(value: object) -> object:
    """'30s', '500ms', '2m', '1h' or a bare number of seconds -> seconds as float."""
    if not isinstance(value, str):
        return value
    match = _DURATION.match(value)
    if match is None:
        raise ValueError("is not a duration; write e.g. 30s, 500ms or 2m")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size(value: object) -> object:
    """'16MiB', '1MB', '512KiB' or a bare number of bytes -> bytes as int."""
    if not isinstance(value, str):
        return value
    match = _SIZE.match(value)
    if match is None:
        raise ValueError("is not a size; write e.g. 16MiB, 512KiB or 1048576")
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * _SIZE_UNITS[unit]


def after_scheme(value: str) -> str | None:
    """What follows `scheme://` in `value` when it is a URL (one pasted where an address or
    a path is asked for), else None."""
    scheme, sep, rest = value.partition("://")
    return rest if sep and scheme.isalpha() else None


def not_a_path(value: str) -> str:
    """Why `value`, which does not start with "/", is not the path asked for, with the path
    to write: a URL's own path (`http://localhost:3000/api/*` gives `/api/*`), else the
    value after a "/"."""
    rest = after_scheme(value)
    if rest is not None:
        return f'is a URL; write its path alone: "/{rest.partition("/")[2]}"'
    return f'must start with "/": write "/{value.lstrip("/")}"'


def shown_size(count: int) -> str:
    """A number of bytes as a manifest writes it (parse_size's reverse): 16 MiB where it is
    whole, else bytes."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift and count % (1 << shift) == 0:
            return f"{count >> shift} {unit}"
    return f"{count} bytes"


def check_route(route: str) -> str:
    """`route` as the router reads it: normalised as request paths are (a route written
    as a URL spells it, `/caf%C3%A9/*`, matches `/café/x` and `/caf%C3%A9/x` alike); raises
    ValueError, with the fix, unless it is a pattern the router reads."""
    if not route:
        raise ValueError("is empty: remove it, or write a path such as /api/*")
    if not route.startswith("/"):
        raise ValueError(not_a_path(route))
    star = route.find("*")
    if star != -1 and not (route.endswith("/*") and star == len(route) - 1):
        raise ValueError("may only have '*' at its end, after a '/', as in /api/*")
    if "?" in route:
        raise ValueError("must be a path only: routes never match the query string")
    if "#" in route:  # (write %23 for a path that holds one)
        raise ValueError("must be a path only: a '#' starts a fragment, which no request sends")
    path = route.removesuffix("*")
    if "%2f" in path.lower():  # a request's encoded slash is refused, so none would match
        raise ValueError("holds an encoded slash (%2F): write the path with /")
    try:
        return router.normal_form(path) + route[len(path) :]
    except router.BadTarget as exc:
        raise ValueError(f"can match no request: {exc}") from exc


# An origin's host[:port], as a browser sends it: a name or an address (IPv6 in brackets).
_AUTHORITY = re.compile(r"(\[[0-9a-f:.]+\]|[^\s:/\[\]@?#]+)(:[0-9]{1,5})?")


def check_origin(origin: str) -> str:
    """`origin`; raises ValueError, with the fix, unless it is spelt as browsers send an
    Origin (`scheme://host[:port]`, lower case, no path: `http://localhost:5173`), `*` or
    `null` (a page opened from a file). Another spelling would never match one."""
    if origin in ("*", "null"):
        return origin
    scheme, sep, rest = origin.strip().partition("://")
    if not sep:
        scheme, rest = "http", origin.strip()
    scheme = scheme.lower()
    authority = rest.split("/", 1)[0].split("?", 1)[0].lower()
    default_port = {"http": ":80", "https": ":443"}.get(scheme)
    if default_port and authority.endswith(default_port):  # browsers leave it out
        authority = authority.removesuffix(default_port)
    fixed = f"{scheme}://{authority}"
    if not _AUTHORITY.fullmatch(authority):  # (none, or a space, a bad port: never sent)
        raise ValueError("is not an origin: write scheme://host[:port], e.g. http://localhost:5173")
    if fixed != origin:
        raise ValueError(f'is not an origin as browsers send it: write "{fixed}" (scheme, host '
                         "and port, lower case, no path)")  # fmt: skip
    return origin


# A container image reference as docker and Kubernetes take it: [host[:port]/]path[:tag]
# [@digest], the path in lower case (the tag may not be).
_IMAGE = re.compile(
    r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[a-z0-9]+:[a-fA-F0-9]{32,})?"
)


def check_image(image: str) -> str:
    """`image`; raises ValueError unless docker would take it as an image reference."""
    if not _IMAGE.fullmatch(image):
        raise ValueError(
            "is not an image reference: write NAME[:TAG] in lower case, e.g. "
            "python:3.12-slim or ghcr.io/acme/api:1.4"
        )
    return image


def at_home(path: str) -> str:
    """A manifest's path with a leading `~` (`~/proj`, `~user/proj`) read as a shell reads
    it, the home directory (<working_dir>, a path <executable>, <env_file>; <arg>s go to the
    child as they are). Unchanged when that home is unknown."""
    return os.path.expanduser(path) if path.startswith("~") else path


def is_file_name(value: str) -> bool:
    """Whether `value` can name a file in a folder (a pipe's socket): not empty, not . or ..,
    without / \\ or NUL."""
    return value not in {"", ".", ".."} and not any(c in value for c in "/\\\0")

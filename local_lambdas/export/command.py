"""The `export` command's line: its options, and what it prints around layout.py's work."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from local_lambdas import manifest
from local_lambdas.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from local_lambdas.config_values import check_image
from local_lambdas.errors import ManifestError
from local_lambdas.notices import print_line, print_problems
from local_lambdas.options.usage import Parser
from local_lambdas.options.values import DEFAULT_BIND, split_bind


def export_parser() -> Parser:
    parser = Parser(
        prog="local-lambdas export",
        description="Write the manifest for a container engine: each process in a container "
        "of its own (its <image>, or --image) where local-lambdas serves exactly it, and the "
        "routes in front (compose: a front service; kubernetes: an Ingress). Run it from the "
        "directory the images hold at /app. See the README, 'Beyond one machine'.",
    )
    parser.add_argument("engine", choices=("compose", "kubernetes"))
    parser.add_argument(
        "manifest", nargs="?", default="manifest.xml", metavar="MANIFEST",
        help="the manifest file (default: manifest.xml)",
    )  # fmt: skip
    parser.add_argument("-o", "--output", metavar="FILE", type=Path,
                        help="write to FILE (default: standard output)")  # fmt: skip
    parser.add_argument(
        "--image", metavar="ID=IMAGE", action="append", default=[],
        help="run process ID in IMAGE (repeatable; wins over its <image>); a bare IMAGE: "
        "for every process without one",
    )  # fmt: skip
    parser.add_argument("--front-image", metavar="IMAGE", type=_checked(check_image),
                        help="compose: the front service's image (default: the first "
                        "process's)")  # fmt: skip
    parser.add_argument(
        "--bind", metavar="HOST:PORT",
        help="compose: where the front is published (default: $BIND_ADDRESS, else "
        f"{DEFAULT_BIND})",
    )  # fmt: skip
    parser.add_argument("--namespace", type=_checked(_label),
                        help="kubernetes: the objects' namespace")  # fmt: skip
    parser.add_argument("--ingress-class", metavar="NAME", type=_checked(_subdomain),
                        help="kubernetes: ingressClassName")  # fmt: skip
    parser.add_argument("--host", type=_checked(_host), help="kubernetes: the Ingress rule's host")
    env_files = parser.add_mutually_exclusive_group()
    env_files.add_argument("--env-file", metavar="FILE", action="append", type=Path,
                           help="as for the proxy: values for each child (repeatable)")  # fmt: skip
    env_files.add_argument("--no-env-file", action="store_true", help="read no env file")
    return parser


# Kubernetes' names (RFC 1123): a label (a namespace), dotted labels (a class), and a host.
_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")


def _label(value: str) -> str:
    if not _LABEL.fullmatch(value):
        raise ValueError("is not a Kubernetes name: lower-case letters, digits and '-', at "
                         "most 63, e.g. demo-app")  # fmt: skip
    return value


def _subdomain(value: str) -> str:
    if not _dotted(value):
        raise ValueError("is not a Kubernetes name: lower-case letters, digits, '-' and '.', "
                         "e.g. nginx")  # fmt: skip
    return value


def _host(value: str) -> str:
    if not _dotted(value.removeprefix("*.")):
        raise ValueError("is not a host name: write e.g. demo.example.com or *.example.com")
    return value


def _dotted(value: str) -> bool:
    return len(value) <= 253 and all(_LABEL.fullmatch(part) for part in value.split("."))


def _checked(check: Callable[[str], str]) -> Callable[[str], str]:
    """An argparse type from a check that raises ValueError with what to write."""

    def parse(value: str) -> str:
        try:
            return check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{value!r} {exc}") from None

    return parse


def export_command(argv: list[str]) -> int:
    """Write a compose file or Kubernetes objects for the manifest (layout.py,
    compose.py, kubernetes.py)."""
    from local_lambdas.export import compose, kubernetes, layout

    args = export_parser().parse_args(argv)
    images = {}
    for item in args.image:
        name, sep, image = item.rpartition("=")
        if sep and not (name and image):
            print_line(f"local-lambdas export: --image {item!r} must be ID=IMAGE or IMAGE")
            return EXIT_USAGE
        try:
            images[name] = check_image(image)
        except ValueError as exc:
            print_line(f"local-lambdas export: --image {item!r}: {image!r} {exc}")
            return EXIT_USAGE
    try:
        bind = split_bind(args.bind or os.environ.get("BIND_ADDRESS") or DEFAULT_BIND)
        if bind[1] == 0 and args.engine == "compose":  # (a port picked at start: none here)
            raise ValueError(f"--bind/BIND_ADDRESS: the front needs a port to publish, not 0: "
                             f"write e.g. {bind[0]}:3000")  # fmt: skip
    except ValueError as exc:
        print_line(f"local-lambdas export: {exc}")
        return EXIT_USAGE
    path = Path(args.manifest)
    try:
        loaded = manifest.load(
            path, socket_dir=Path(layout.APP), here=False,
            env_files=[] if args.no_env_file else args.env_file,
        )  # fmt: skip
        target = layout.Export.of(loaded, path, path.read_text(), images, Path.cwd())
        if args.engine == "compose":
            text = compose.compose(target, bind=bind, front_image=args.front_image)
        else:
            text = kubernetes.kubernetes(target, namespace=args.namespace,
                                     ingress_class=args.ingress_class, host=args.host)  # fmt: skip
    except ManifestError as exc:
        print_problems([str(p) for p in exc.problems])
        print_line(f"local-lambdas export: {path} has {len(exc.problems)} problem(s)")
        return EXIT_FAILURE
    except layout.ExportError as exc:
        print_problems(exc.problems)
        print_line(f"local-lambdas export: {path} cannot be exported as it is "
                   f"({len(exc.problems)} problem(s))")  # fmt: skip
        return EXIT_FAILURE
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            args.output.write_text(text)
        except OSError as exc:
            why = exc.strerror or exc
            print_line(f"local-lambdas export: cannot write {args.output}: {why}; "
                       "give -o a file in a folder that exists")  # fmt: skip
            return EXIT_FAILURE
        print_line(f"local-lambdas export: wrote {args.output}")
    return EXIT_OK

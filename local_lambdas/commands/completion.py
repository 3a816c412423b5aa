"""The `completion` command: a shell's completion script for every command and option,
made by shtab from the parsers options/words.py builds (and export's)."""

from __future__ import annotations

import argparse
import sys

import shtab

from local_lambdas.cli import ALL_COMMANDS, EXIT_OK
from local_lambdas.export.command import export_parser
from local_lambdas.options import words
from local_lambdas.options.usage import Parser


def completion(argv: list[str]) -> int:
    """Print a completion script for every command and option (shtab reads the parsers)."""
    parser = Parser(prog="local-lambdas completion")
    parser.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    shell = parser.parse_args(argv).shell
    parsers = words.parsers()
    # The bare command's options, but not its MANIFEST: a positional beside the commands
    # would hide them from the completion.
    top = argparse.ArgumentParser(prog="local-lambdas", add_help=False)
    for action in parsers["serve"]._actions:
        if action.option_strings:
            top._add_action(action)
    commands = top.add_subparsers(dest="command")
    for name in ("check", "run", "restart"):
        commands.add_parser(name, parents=[parsers[name]], add_help=False, help=name)
    commands.add_parser("export", parents=[export_parser()], add_help=False, help="export")
    shells = commands.add_parser("completion", help="completion")
    shells.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    topics = commands.add_parser("help", help="help")
    topics.add_argument("topic", nargs="?", choices=ALL_COMMANDS)
    sys.stdout.write(shtab.complete(top, shell=shell))
    return EXIT_OK

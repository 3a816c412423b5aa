"""The command line's parser: argparse's, its usage errors said in one line with the likely
fix (the option or command a mistyped word was probably meant as, or what does the job of
another tool's word) and the way to the help, rather than after the whole usage. Each
command's words are parsers.py's."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from local_lambdas.options.other_tools import COMMANDS, OPTIONS


class Parser(argparse.ArgumentParser):
    """argparse's parser, a usage error said in one line with the way to the help, rather
    than after the whole usage (twenty lines here, above the one that matters)."""

    _words: Sequence[str] = ()  # what the parse was given

    def parse_known_args(  # type: ignore[override]  # (one signature for the overloads)
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        self._words = sys.argv[1:] if args is None else args
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        missing = message.partition("the following arguments are required: ")[2]
        if missing:  # `restart -web`: a process whose <id> starts with "-" was taken for an option
            known = {name for action in self._actions for name in action.option_strings}
            for word in self._words:
                if word == "--":
                    break
                if word[:1] == "-" and word[:2] != "--" and word not in known:
                    wanted = missing.split(",")[0]
                    message = (
                        f'unknown option {word}; if it is the {wanted}, give it after "--": '
                        f"{self.prog} -- {word}"
                    )
                    break
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def refuse_strays(self, extra: list[str], manifest: str, commands: tuple[str, ...]) -> None:
        """A usage error for words it does not take (a mistyped option gets the one it was
        probably meant as), and for a mistyped command word in `commands` that was taken
        for a manifest that does not exist (`local-lambdas chek`); else nothing."""
        named = not commands or Path(manifest).exists()  # (not a mistyped command word)
        if not extra and named:
            return
        from local_lambdas.errors import closest  # (with asyncio: loaded for a mistake only)

        if extra and extra[0].startswith("-"):
            if extra[0][:2] != "--" and Path(extra[0]).is_file():
                self.error(
                    f'unknown option {extra[0]}; a MANIFEST that starts with "-" is named '
                    f"./{extra[0]}"
                )
            option = extra[0].partition("=")[0]
            known = [name for action in self._actions for name in action.option_strings]
            advice = OPTIONS.get(option)
            if advice is not None:  # its advice where this command takes what it names
                fits = not advice.startswith("-") or advice.split()[0] in known
                self.error(f"unknown option {extra[0]}" + (f": {advice}" if fits else ""))
            close = closest(option, known)
            self.error(f"unknown option {extra[0]}" + (f"; did you mean {close}?" if close else ""))
        if not named and manifest in commands:  # `local-lambdas --port 4000 run -- pytest`
            self.error(f"{manifest} comes first: local-lambdas {manifest} [options] ...")
        if not named and manifest in COMMANDS:
            args = " ".join(extra) or "[MANIFEST]"
            self.error(f"no command {manifest}: {COMMANDS[manifest].format(args=args)}")
        command = None if named else closest(manifest, commands)
        if command is not None:
            shown = " ".join([command, *extra])
            self.error(f"no command {manifest}; did you mean local-lambdas {shown}?")
        if extra:
            self.error(
                f"unexpected {' '.join(extra)}" + (": one MANIFEST at a time" if manifest else "")
            )

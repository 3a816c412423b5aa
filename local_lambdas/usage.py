"""The command line's parser: argparse's, its usage errors said in one line with the likely
fix (the option or command a mistyped word was probably meant as, or what does the job of
another tool's word) and the way to the help, rather than after the whole usage. Each
command's words are options.py's."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

_RUN = "a manifest runs with no command word: local-lambdas {args}"
_STOP = "Ctrl+C stops the proxy and its children (or SIGTERM to its pid)"
_STATUS = "a running proxy tells its processes' states at /_/status, and shows them at /_/"
# The command words of other process runners (honcho, foreman, docker compose, pm2,
# process-compose) a user may bring, and what does their job here: `start` and `status`
# were taken for mistyped `restart`s.
_THEIRS = {
    "start": _RUN, "up": _RUN, "serve": _RUN,
    "stop": _STOP, "down": _STOP, "kill": _STOP,
    "status": _STATUS, "ps": _STATUS, "list": _STATUS, "ls": _STATUS,
    "validate": "local-lambdas check MANIFEST validates a manifest",
    "version": "local-lambdas --version says which version this is",
    "logs": "the proxy prints its children's output, each line after its process's id",
}  # fmt: skip

_MANIFEST = "the manifest is named without an option: local-lambdas MANIFEST [options]"
_BIND = "--bind HOST:PORT, e.g. --bind 0.0.0.0:3000 (or --port PORT)"
_COLOR = "colour is for terminals only; NO_COLOR=1 turns it off, FORCE_COLOR=1 on"
_DEBUG = "-v (--verbose) adds the proxy's debug lines"
_FOREGROUND = "it runs in the foreground; start it with & or under a service manager"
# Other servers' options (uvicorn's --host and --reload, compose's -f, a daemon's -d) and
# what does their job here: `--host` was told "did you mean --port?", `--json` --version.
_THEIR_OPTIONS = {
    "--host": _BIND, "--listen": _BIND, "--addr": _BIND, "--address": _BIND,
    "-f": _MANIFEST, "-c": _MANIFEST, "--config": _MANIFEST, "--manifest": _MANIFEST,
    "--file": _MANIFEST,
    "--reload": "--watch restarts a process when its files change",
    "--workers": "--instances N, or <instances> in the manifest",
    "--json": "--log-format json",
    "--debug": _DEBUG, "--log-level": _DEBUG,
    "--no-color": _COLOR, "--color": _COLOR, "--colour": _COLOR,
    "-d": _FOREGROUND, "--daemon": _FOREGROUND, "--detach": _FOREGROUND,
}  # fmt: skip


class Parser(argparse.ArgumentParser):
    """argparse's parser, a usage error said in one line with the way to the help, rather
    than after the whole usage (twenty lines here, above the one that matters)."""

    def error(self, message: str) -> NoReturn:
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
            option = extra[0].partition("=")[0]
            known = [name for action in self._actions for name in action.option_strings]
            advice = _THEIR_OPTIONS.get(option)
            if advice is not None:  # its advice where this command takes what it names
                fits = not advice.startswith("-") or advice.split()[0] in known
                self.error(f"unknown option {extra[0]}" + (f": {advice}" if fits else ""))
            close = closest(option, known)
            self.error(f"unknown option {extra[0]}" + (f"; did you mean {close}?" if close else ""))
        if not named and manifest in commands:  # `local-lambdas --port 4000 run -- pytest`
            self.error(f"{manifest} comes first: local-lambdas {manifest} [options] ...")
        if not named and manifest in _THEIRS:
            args = " ".join(extra) or "[MANIFEST]"
            self.error(f"no command {manifest}: {_THEIRS[manifest].format(args=args)}")
        command = None if named else closest(manifest, commands)
        if command is not None:
            shown = " ".join([command, *extra])
            self.error(f"no command {manifest}; did you mean local-lambdas {shown}?")
        if extra:
            self.error(
                f"unexpected {' '.join(extra)}" + (": one MANIFEST at a time" if manifest else "")
            )

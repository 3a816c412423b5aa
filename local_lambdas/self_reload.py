"""Which command lines reload themselves as their files change (`uvicorn --reload`, nodemon,
a Vite dev server): under `--watch`, a process that does is restarted by the proxy too, which
cuts its own reload short, unless its `<watch>` is off. The run says so, once, at its start.
A command that a wrapper runs is looked into: the package.json script of `npm run dev` (or
`npm start`, `yarn dev`, `pnpm dev`, `bun run dev`), a shell's `-c` string."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath

from local_lambdas.config import Process

# Programs that are a watcher by name, whatever their arguments.
_WATCHERS = frozenset(
    {"nodemon", "ts-node-dev", "node-dev", "webpack-dev-server", "air", "watchexec", "reflex"}
)
# Dev servers that reload themselves when their first argument (None: none, or an option)
# is one of these: `vite` alone is Vite's dev server, `next dev` Next.js's.
_DEV_SERVERS: dict[str, set[str | None]] = {
    "vite": {None, "dev", "serve"},
    "parcel": {None, "serve", "watch"},
    "next": {"dev"},
    "nuxt": {"dev"},
    "nuxi": {"dev"},
    "astro": {"dev"},
    "remix": {"dev"},
    "gatsby": {"develop"},
    "react-scripts": {"start"},
    "ng": {"serve"},
    "vue-cli-service": {"serve"},
    "webpack": {"serve"},
    "rspack": {"dev", "serve"},
    "rsbuild": {"dev"},
    "tsx": {"watch"},
    "cargo": {"watch"},
    "hugo": {"server", "serve"},
    "mkdocs": {"serve"},
    "jekyll": {"serve", "s"},
}
# Options that have a program reload itself: uvicorn's, hypercorn's and gunicorn's
# --reload, node's, deno's and bun's --watch (node's --watch-path, bun's --hot), esbuild's
# and tsc's --watch.
_FLAGS = ("--reload", "--watch", "--watch-path", "--hot")


def reloads_itself(executable: str, args: Sequence[str]) -> str | None:
    """The words of `executable` and `args`, up to the one by which the command reloads
    itself as its files change ("uvicorn app:app --reload", "npx vite"), or None. A command
    in a shell's `-c` string or a package.json script (`npm run dev`) is `wrapped`'s."""
    # Programs by their names (npx's `vite`, ./node_modules/.bin/vite), options as written.
    names = [w if w.startswith("-") else PurePath(w).name for w in (executable, *args)]
    for at, name in enumerate(names):
        after = names[at + 1] if at + 1 < len(names) else None
        first = None if after is None or after.startswith("-") else after
        if name in _DEV_SERVERS and first in _DEV_SERVERS[name]:
            return " ".join(names[: at + 1 + (first is not None)])
        if (
            name in _WATCHERS
            or (at and name.split("=")[0] in _FLAGS)
            or (name == "runserver" and "--noreload" not in names)  # Django's reloads
            or (name == "--debug" and "flask" in names[:at] and "run" in names)
        ):
            return " ".join(names[: at + 1])
    return None


_RUNNERS = frozenset({"npm", "pnpm", "yarn", "bun"})
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash"})


def wrapped(executable: str, args: Sequence[str], working_dir: Path) -> tuple[str, str] | None:
    """What a wrapper runs: for `npm run dev` (`npm start`, `yarn dev`...) the script's name
    and its command in `working_dir`'s package.json; for `sh -c STRING`, "-c" and the
    string. None for any other command, or a script that is not there."""
    name = PurePath(executable).name.removesuffix(".cmd")
    if name in _SHELLS:
        at = args.index("-c") if "-c" in args else -1
        return ("-c", args[at + 1]) if 0 <= at < len(args) - 1 else None
    if name not in _RUNNERS:
        return None
    words = [word for word in args if not word.startswith("-")]
    if words[:1] in (["run"], ["run-script"]):
        script = words[1] if len(words) > 1 else ""
    elif words[:1] == ["start"] or (words and name != "npm"):  # (yarn dev: the script dev)
        script = words[0]
    else:
        return None
    try:
        scripts = json.loads((working_dir / "package.json").read_text("utf-8"))["scripts"]
        command = scripts[script]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (script, command) if isinstance(command, str) else None


def advice(processes: Iterable[Process]) -> list[str]:
    """A line for each process --watch would restart although it reloads itself."""
    return [
        f"{process.id}: {said} reloads it as its files change, and --watch would restart it "
        "too, cutting that reload short; add <watch>off</watch> to its <process> to leave its "
        "reloading to it"
        for process in processes
        if process.watch == "on" and (said := _how_it_reloads(process)) is not None
    ]


def _how_it_reloads(process: Process) -> str | None:
    """The words by which `process` reloads itself, quoted, with where a wrapper holds them;
    None when it does not. A package.json is read only where the command's own words do not
    tell."""
    if (how := reloads_itself(process.executable, process.args)) is not None:
        return f"`{how}`"
    inner = wrapped(process.executable, process.args, process.working_dir)
    if inner is None:
        return None
    try:
        words = shlex.split(inner[1])
    except ValueError:  # (unbalanced quotes: the shell will say so)
        return None
    how = reloads_itself(words[0], words[1:]) if words else None
    where = "its -c string" if inner[0] == "-c" else f"package.json's {inner[0]!r}"
    return f"`{how}` ({where})" if how is not None else None

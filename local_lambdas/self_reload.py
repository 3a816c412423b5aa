"""Which command lines reload themselves as their files change (`uvicorn --reload`, nodemon,
a Vite dev server): under `--watch`, a process that does is restarted by the proxy too, which
cuts its own reload short, unless its `<watch>` is off. The run says so, once, at its start."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import PurePath

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
    in a shell's `-c` string or a package.json script (`npm run dev`) is not looked into."""
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


def advice(processes: Iterable[Process]) -> list[str]:
    """A line for each process --watch would restart although it reloads itself."""
    lines = []
    for process in processes:
        how = reloads_itself(process.executable, process.args) if process.watch == "on" else None
        if how is not None:
            lines.append(
                f"{process.id}: `{how}` reloads it as its files change, and --watch would "
                "restart it too, cutting that reload short; add <watch>off</watch> to its "
                "<process> to leave its reloading to it"
            )
    return lines

"""Which command lines reload themselves (self_reload.py)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from local_lambdas import (
    self_reload,
)
from tests.helpers import process_model

# (command line, the words that say it reloads itself, or None)
SELF_RELOADING = [
    ("uvicorn app:app --reload", "uvicorn app:app --reload"),
    (
        "/venv/bin/python -m hypercorn app:app --reload=true",
        "python -m hypercorn app:app --reload=true",
    ),
    ("gunicorn app:app --reload", "gunicorn app:app --reload"),
    ("node --watch server.js", "node --watch"),
    ("node --watch-path=src/api server.js", "node --watch-path=src/api"),
    ("bun --hot server.ts", "bun --hot"),
    ("deno run --watch -A main.ts", "deno run --watch"),
    ("esbuild in.js --bundle --watch", "esbuild in.js --bundle --watch"),
    ("nodemon server.js", "nodemon"),
    ("npx nodemon server.js", "npx nodemon"),
    ("./node_modules/.bin/vite", "vite"),
    ("npx vite --port 5173", "npx vite"),
    ("npx vite dev", "npx vite dev"),
    ("npx next dev", "npx next dev"),
    ("npx tsx watch src/index.ts", "npx tsx watch"),
    ("python manage.py runserver 8000", "python manage.py runserver"),
    ("flask --app app --debug run", "flask --app app --debug"),
    ("flask run --debug", "flask run --debug"),
    ("npx react-scripts start", "npx react-scripts start"),
    ("ng serve --port 4200", "ng serve"),
    ("hugo server -D", "hugo server"),
    ("mkdocs serve", "mkdocs serve"),
    ("air", "air"),
    ("cargo watch -x run", "cargo watch"),
    # Not: a build, a production server, a script, a shell's string, a reload turned off.
    ("npx vite build", None),
    ("npx next start", None),
    ("npx parcel build index.html", None),
    ("hugo", None),
    ("flask run", None),
    ("python app.py --debug", None),
    ("python manage.py runserver --noreload", None),
    ("npm run dev", None),
    ("sh -c 'uvicorn app:app --reload'", None),
    ("go run .", None),
    ("cargo run", None),
]


_SCRIPTS = {"dev": "vite", "start": "node server.js", "serve": "cross-env PORT=1 nodemon src",
            "broken": "vite 'unclosed", "odd": 5}  # fmt: skip


@pytest.mark.parametrize(("command", "said"), [
    ("npm run dev -- --port 3000", "`vite` (package.json's 'dev')"),
    ("npm --silent run-script dev", "`vite` (package.json's 'dev')"),
    ("yarn dev", "`vite` (package.json's 'dev')"),
    ("pnpm run serve", "`cross-env PORT=1 nodemon` (package.json's 'serve')"),
    ("bun run dev", "`vite` (package.json's 'dev')"),
    ("sh -c 'exec uvicorn app:app --reload'", "`exec uvicorn app:app --reload` (its -c string)"),
    # Not: a script that does not reload itself, none by that name, one that cannot be read,
    # npm's own commands, a command with no wrapper.
    ("npm start", None),
    ("npm run missing", None),
    ("npm run broken", None),
    ("npm run odd", None),
    ("npm install", None),
    ("npm dev", None),  # (npm runs no script without `run`, but for start)
    ("sh -c 'python app.py'", None),
    ("node server.js", None),
])  # fmt: skip
def test_a_wrappers_command_that_reloads_itself_is_found_inside_it(
    tmp_path: Path, command: str, said: str | None
) -> None:
    """`npm run dev` (Vite's and Next.js's way in) said nothing of the `vite` its script
    runs: --watch restarted the dev server on every save, cutting its hot update short."""
    (tmp_path / "package.json").write_text(json.dumps({"scripts": _SCRIPTS}))
    executable, *args = shlex.split(command)
    process = process_model().model_copy(
        update={"executable": executable, "args": tuple(args), "working_dir": tmp_path}
    )
    lines = self_reload.advice([process])
    assert [line.partition(" reloads it")[0] for line in lines] == (
        [f"api: {said}"] if said else []
    ), lines


@pytest.mark.parametrize(("command", "said"), SELF_RELOADING)
def test_a_command_that_reloads_itself_is_known_by_its_words(
    command: str, said: str | None
) -> None:
    executable, *args = shlex.split(command)
    assert self_reload.reloads_itself(executable, args) == said

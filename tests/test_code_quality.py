"""The style checks CI runs, as tests, so one command runs everything: ruff, mypy --strict
over the package and the tests, and the rules mypyc's compiled modules keep."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_code_quality(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _compiled_sources() -> list[Path]:
    """The modules setup.py compiles with mypyc (its HOT list)."""
    setup = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(setup):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "HOT" for t in node.targets
        ):
            return [ROOT / name for name in ast.literal_eval(node.value)]
    raise AssertionError("setup.py has no HOT list")


def test_compiled_modules_keep_to_what_mypyc_gets_right() -> None:
    """Rules for the compiled modules (CONTRIBUTING.md), which mypy does not check: no wait
    inside an except or finally block (a compiled coroutine suspended there left its
    exception for other tasks to see, under load), and one type per `except ... as name`
    within a function (a name holds one type in compiled code)."""
    found = []
    for path in _compiled_sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Try):
                blocks = [*(h.body for h in node.handlers), node.finalbody]
                for block in blocks:
                    for inner in (n for statement in block for n in ast.walk(statement)):
                        if isinstance(inner, ast.Await):
                            found.append(f"{path.name}:{inner.lineno}: await in except/finally")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                kinds: dict[str, set[str]] = {}
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ExceptHandler) and inner.name and inner.type:
                        kinds.setdefault(inner.name, set()).add(ast.unparse(inner.type))
                found += [f"{path.name}:{node.lineno}: `as {name}` for {sorted(types)}"
                          for name, types in kinds.items() if len(types) > 1]  # fmt: skip
    assert found == []


def test_every_module_says_what_it_is_for_and_has_its_place_in_the_layout() -> None:
    """Each module of the package opens with a docstring, and CONTRIBUTING.md's layout names
    its file, so that a new module cannot be left out of the map a reader starts from."""
    after = (ROOT / "CONTRIBUTING.md").read_text().partition("\n## Layout")[2]
    layout = after.partition("\n## ")[0]  # to the next section
    unsaid, unplaced = [], []
    for path in sorted((ROOT / "local_lambdas").rglob("*.py")):
        name = path.relative_to(ROOT / "local_lambdas").as_posix()
        if ast.get_docstring(ast.parse(path.read_text())) is None:
            unsaid.append(name)
        entry = path.name in ("__init__.py", "__main__.py")  # (the package's own)
        if not entry and not re.search(rf"(?<![\w.]){re.escape(path.name)}", layout):
            unplaced.append(name)
    assert (unsaid, unplaced) == ([], [])

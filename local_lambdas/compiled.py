"""Whether the hot modules run compiled or as their Python sources.

An install compiles the modules every request runs through with mypyc (setup.py); each keeps
its source beside it. The sources run instead, all of them (compiled modules call each other
directly, so they are never mixed with sources), when LOCAL_LAMBDAS_PURE=1 is set or when a
source in a checkout (setup.py beside the package: `pip install -e .`) is newer than its
compiled form: an edited checkout runs what it says, not what was built before the edit;
`pip install -e .` compiles again. (An installed wheel's files all have the install's time,
so there the check is not made.) `local-lambdas --version` says which
runs, and why.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

_PACKAGE = Path(__file__).parent


def _built() -> tuple[dict[str, Path], Path | None]:
    """Each compiled module's name with its source, and the library that holds their code
    (the modules' own files only lead to it)."""
    found: dict[str, Path] = {}
    for directory, package in (
        (_PACKAGE, __package__),
        (_PACKAGE / "transports", f"{__package__}.transports"),
    ):
        for entry in os.scandir(directory):
            suffix = next(
                (s for s in importlib.machinery.EXTENSION_SUFFIXES if entry.name.endswith(s)), None
            )
            if suffix is None:
                continue
            stem = entry.name[: -len(suffix)]
            source = directory / f"{stem}.py"
            if source.is_file():
                found[f"{package}.{stem}"] = source
    names = (f"{__package__}__mypyc{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES)
    library = next((_PACKAGE.parent / n for n in names if (_PACKAGE.parent / n).is_file()), None)
    return found, library


class _Sources(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' sources before the import system finds their compiled form."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self._sources = sources

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        source = self._sources.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)


def _choose() -> str:
    sources, library = _built()
    if not sources:
        return "pure Python: not compiled at install"
    why = ""
    if library is None:
        why = f"{__package__}__mypyc, the compiled modules' library, is missing"
    elif os.environ.get("LOCAL_LAMBDAS_PURE") == "1":
        why = "LOCAL_LAMBDAS_PURE=1"
    elif (_PACKAGE.parent / "setup.py").is_file():
        built_at = library.stat().st_mtime  # setup.py dates every build's files
        newer = sorted(s.name for s in sources.values() if s.stat().st_mtime > built_at)
        if newer:
            why = f"{', '.join(newer)} changed since compiled; pip install -e . compiles again"
    if not why:
        return f"compiled: {len(sources)} modules"
    sys.meta_path.insert(0, _Sources(sources))
    return f"pure Python: {why}"


STATE = _choose()

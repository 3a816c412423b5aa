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

# Only modules the interpreter loads at its start: every start imports this one first, a
# helper child's too (pathlib, importlib.util and importlib.abc cost 25-30 ms of CPU there).
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_TOP = os.path.dirname(_PACKAGE)  # where the package is, and setup.py in a checkout


def _built() -> tuple[dict[str, str], str | None]:
    """Each compiled module's name with its source, and the library that holds their code
    (the modules' own files only lead to it)."""
    found: dict[str, str] = {}
    folders = [(_PACKAGE, __package__)]  # the package's, and each subpackage's as found
    for directory, package in folders:
        for entry in os.scandir(directory):
            if entry.is_dir() and not entry.name.startswith("__"):
                folders.append((entry.path, f"{package}.{entry.name}"))
                continue
            suffix = next(
                (s for s in importlib.machinery.EXTENSION_SUFFIXES if entry.name.endswith(s)), None
            )
            if suffix is None:
                continue
            stem = entry.name[: -len(suffix)]
            source = os.path.join(directory, f"{stem}.py")
            if os.path.isfile(source):
                found[f"{package}.{stem}"] = source
    names = (f"{__package__}__mypyc{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES)
    libraries = (os.path.join(_TOP, name) for name in names)
    library = next((path for path in libraries if os.path.isfile(path)), None)
    return found, library


class _Sources:
    """Finds the compiled modules' sources before the import system finds their compiled form
    (a meta path finder, as importlib.abc.MetaPathFinder describes one)."""

    def __init__(self, sources: dict[str, str]) -> None:
        self._sources = sources

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        source = self._sources.get(fullname)
        if source is None:
            return None
        # What importlib.util.spec_from_file_location makes for a module's source.
        loader = importlib.machinery.SourceFileLoader(fullname, source)
        spec = ModuleSpec(fullname, loader, origin=source)
        spec.has_location = True
        return spec


def _choose() -> str:
    sources, library = _built()
    if not sources:
        return "pure Python: not compiled at install"
    why = ""
    if library is None:
        why = f"{__package__}__mypyc, the compiled modules' library, is missing"
    elif os.environ.get("LOCAL_LAMBDAS_PURE") == "1":
        why = "LOCAL_LAMBDAS_PURE=1"
    elif os.path.isfile(os.path.join(_TOP, "setup.py")):
        built_at = os.stat(library).st_mtime  # setup.py dates every build's files
        newer = sorted(
            os.path.basename(s) for s in sources.values() if os.stat(s).st_mtime > built_at
        )
        if newer:
            why = f"{', '.join(newer)} changed since compiled; pip install -e . compiles again"
    if not why:
        return f"compiled: {len(sources)} modules"
    sys.meta_path.insert(0, _Sources(sources))
    return f"pure Python: {why}"


STATE = _choose()

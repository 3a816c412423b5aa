"""The hot modules compiled with mypyc (setup.py) and their sources as the fallback
(local_lambdas/compiled.py): the rest of the suite runs whichever form the install made
(`pytest` prints which in its header); these run the other form, and the cases that choose."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from local_lambdas import compiled
from tests.helpers import WriteManifest, cli, process_xml

ROOT = Path(__file__).parents[1]
needs_compiled = pytest.mark.skipif(
    not compiled.STATE.startswith("compiled"), reason=f"this install runs {compiled.STATE}"
)


def _run(code: str, cwd: Path, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env={**os.environ, **env},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


_WHICH = (
    "import local_lambdas.lane.fastlane as f, local_lambdas.compiled as c; print(c.STATE); "
    "print(f.__file__)"
)


def _checkout(tmp_path: Path) -> Path:
    """A copy of the checkout's package and setup.py, compiled forms included."""
    copy = tmp_path / "checkout"
    copy.mkdir()
    shutil.copy2(ROOT / "setup.py", copy)
    shutil.copytree(ROOT / "local_lambdas", copy / "local_lambdas", copy_function=shutil.copy2)
    for shared in ROOT.glob("local_lambdas__mypyc*"):
        shutil.copy2(shared, copy)
    return copy


@needs_compiled
def test_the_compiled_forms_load_when_nothing_says_otherwise(tmp_path: Path) -> None:
    state, where = _run(_WHICH, _checkout(tmp_path)).splitlines()
    assert state.startswith("compiled: ")
    assert not where.endswith(".py")


@needs_compiled
def test_an_edited_source_runs_instead_of_its_older_compiled_form(tmp_path: Path) -> None:
    copy = _checkout(tmp_path)
    (copy / "local_lambdas" / "transports" / "pipe.py").touch()  # edited after the build
    state, where = _run(_WHICH, copy).splitlines()
    assert state == "pure Python: pipe.py changed since compiled; pip install -e . compiles again"
    assert where.endswith("lane/fastlane.py")  # all of them, not only the edited one


async def test_the_sources_serve_every_mode_when_asked(write_manifest: WriteManifest) -> None:
    """LOCAL_LAMBDAS_PURE=1: what runs where the install could not compile, and on Windows."""
    paths = {
        "pipe": "/pipe/x",
        "pipe-keepalive": "/keep/x",
        "http": "/http/x",
        "passthrough": "/echo/x",  # web_child.py's echo, which sees the path whole
    }
    path = write_manifest(
        *(process_xml(m, t[:-1] + "*", mode=m) for m, t in paths.items() if m != "passthrough"),
        process_xml("passthrough", "/echo/*", mode="passthrough", script="web_child.py"),
    )
    version = _run("from local_lambdas.cli import main; main(['--version'])", ROOT,
                   LOCAL_LAMBDAS_PURE="1")  # fmt: skip
    assert "(pure Python" in version
    async with cli(str(path), "--bind", "127.0.0.1:0", env={"LOCAL_LAMBDAS_PURE": "1"}) as run:
        url = (await run.expect(r"listening on (http://\S+)")).group(1)
        for mode in paths:
            await run.expect(rf"{mode}: ready")
        async with aiohttp.ClientSession() as http:
            for target in paths.values():
                async with http.post(f"{url}{target}?y=1", data=b"hi") as reply:
                    assert reply.status == 200, await reply.text()


def test_an_install_without_a_c_compiler_runs_the_sources(tmp_path: Path) -> None:
    """No compiler (CC is false): the build says so, installs the sources, and they run. The
    build is pip's own, isolated: it fetches setuptools and mypy as pyproject.toml says."""
    copy = tmp_path / "src"
    skip = (".git", "build", "*.so", "*.pyd", "__pycache__", ".*_cache", "*.egg-info", ".venv")
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*skip))
    target = tmp_path / "installed"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps",
         "--no-build-isolation", "--disable-pip-version-check", "--target", str(target), str(copy)],
        env={**os.environ, "CC": "false"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    assert not list(target.rglob("*.so"))
    version = _run("from local_lambdas.cli import main; main(['--version'])", tmp_path,
                   PYTHONPATH=str(target))  # fmt: skip
    assert version == "local-lambdas 0.1.0 (pure Python: not compiled at install)"

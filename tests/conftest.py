"""The suite's fixtures and hooks; the helpers the tests import are in tests/helpers.py."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from local_lambdas import compiled

# The helpers' asserts say what they compared when they fail, as the tests' own do.
pytest.register_assert_rewrite("tests.helpers")
from tests.helpers import (  # noqa: E402 (after the registration above)
    SharedProxies,
    WriteManifest,
    manifest_text,
)

# The suite starts hundreds of Python processes (proxies, children, watchdogs) and pytest
# rewrites every test module: where the environment says not to keep bytecode
# (PYTHONDONTWRITEBYTECODE, as on this project's own machine), each would compile the same
# sources again, a fifth of the suite's CPU. Caches go to __pycache__, which git ignores.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


@pytest.hookimpl(optionalhook=True)  # xdist's, and the Windows lane runs without xdist
def pytest_xdist_auto_num_workers() -> int:
    """`-n auto`: three workers per CPU, not one. An end-to-end test spends much of its time
    waiting on real children, sockets and timeouts, so with one worker per CPU the cores sit
    idle a third of the time (a 2-core machine: 95 s with 2 workers, 62 s with 4; later, by
    turns in one session, 75.4 s and 75.5 s with 6 against 82.0 s and 84.8 s with 4, for 6%
    more CPU)."""
    return 3 * (os.cpu_count() or 1)


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, the tests that share a module's proxies (the `shared` fixture) run on one
    worker, so that each shared proxy boots once, not once a worker: `--dist loadgroup` is
    `--dist load` (what `-n` gives) for every test without a group. A worker parses the
    command line again, without `-n`'s choice, so it is told too (xdist/remote.py)."""
    if getattr(config.option, "dist", None) == "load":  # the controller
        config.option.dist = "loadgroup"
    if hasattr(config, "workerinput"):  # a worker: name its tests by their group
        config.option.loadgroup = True


# Module-scoped fixtures costly to start: the tests that use one run on one worker, so that
# it starts once (`shared`: the module's proxies; test_browser's `chromium`).
SHARED_FIXTURES = frozenset({"shared", "chromium"})


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SHARED_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


def pytest_report_header() -> str:
    """Which form of the hot modules the suite runs (local_lambdas/compiled.py)."""
    return f"local-lambdas: {compiled.STATE}"


@pytest.fixture
def write_manifest(tmp_path: Path) -> WriteManifest:
    def write(*processes: str, name: str = "manifest.xml") -> Path:
        path = tmp_path / name
        path.write_text(manifest_text(*processes))
        return path

    return write


def _short_dir() -> Path:
    """A new folder's path in /tmp: short and private, well under the 107-byte socket path
    limit for the sockets made in it."""
    return Path("/tmp") / f"llt-{secrets.token_hex(3)}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared() -> AsyncIterator[SharedProxies]:
    """The module's shared proxies (helpers.SharedProxies); its tests are ON_SHARED_LOOP."""
    folder = _short_dir()
    proxies = SharedProxies(folder)
    try:
        yield proxies
    finally:
        await proxies.aclose()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    path = _short_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)

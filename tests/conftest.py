"""Shared helpers: write a manifest, run the real proxy on a free port, talk to it over HTTP."""

from __future__ import annotations

import secrets
import shutil
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from local_lambdas import manifest
from local_lambdas.app import SUPERVISOR, build_app
from local_lambdas.config import Settings
from local_lambdas.output import Printer
from local_lambdas.supervisor import Supervisor

CHILDREN = Path(__file__).parent / "children"
PYTHON = sys.executable


def process_xml(
    pid: str,
    route: str | list[str],
    *,
    mode: str = "pipe",
    script: str = "behave.py",
    args: tuple[str, ...] = (),
    extra: str = "",
) -> str:
    """One <process> running a test child with the current Python."""
    routes = [route] if isinstance(route, str) else route
    lines = [
        f"<id>{pid}</id>",
        f"<executable>{PYTHON}</executable>",
        f"<arg>{CHILDREN / script}</arg>",
        *(f"<arg>{a}</arg>" for a in args),
        *(f"<route>{r}</route>" for r in routes),
        f"<communication_mode>{mode}</communication_mode>",
        extra,
    ]
    return "<process>" + "".join(lines) + "</process>"


@pytest.fixture
def write_manifest(tmp_path: Path) -> Callable[..., Path]:
    def write(*processes: str, name: str = "manifest.xml") -> Path:
        path = tmp_path / name
        body = "\n".join(processes)
        path.write_text(f'<?xml version="1.0"?>\n<manifest>\n{body}\n</manifest>\n')
        return path

    return write


@pytest.fixture
def socket_dir() -> AsyncIterator[Path]:
    # Short and private, well under the 107-byte socket path limit.
    path = Path("/tmp") / f"llt-{secrets.token_hex(3)}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Running:
    url: str
    app: web.Application
    http: aiohttp.ClientSession

    @property
    def supervisor(self) -> Supervisor:
        return self.app[SUPERVISOR]


@asynccontextmanager
async def running(
    manifest_path: Path, socket_dir: Path, *, wait: bool = True
) -> AsyncIterator[Running]:
    """The proxy, in this process, on a real port, with its real children."""
    loaded = manifest.load(manifest_path, socket_dir=socket_dir)
    settings = Settings(port=0, socket_dir=socket_dir, shutdown_timeout=5)
    app = build_app(loaded, settings, Printer(color=False))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        if wait:
            not_ready = await app[SUPERVISOR].wait_ready(15)
            assert not not_ready, [(c.process.id, c.state, c.reason) for c in not_ready]
        async with aiohttp.ClientSession(auto_decompress=False) as http:
            yield Running(f"http://127.0.0.1:{port}", app, http)
    finally:
        await runner.cleanup()


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")

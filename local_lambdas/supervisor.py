"""All children of one manifest, and the private directory their sockets live in."""

from __future__ import annotations

import asyncio
import contextlib
import shutil

from local_lambdas.child import Child, State
from local_lambdas.config import Manifest, Settings
from local_lambdas.errors import NotReady, StartupError
from local_lambdas.output import Printer


class Supervisor:
    """All children of one manifest, and the private directory their sockets live in."""

    def __init__(self, manifest: Manifest, settings: Settings, printer: Printer) -> None:
        self._settings = settings
        self.children = {
            p.id: Child(p, printer, socket_dir=settings.socket_dir) for p in manifest.processes
        }

    async def start(self) -> None:
        """Start every child at once; readiness is awaited separately (wait_ready)."""
        directory = self._settings.socket_dir
        try:
            if self._settings.own_socket_dir:
                directory.mkdir(mode=0o700)
            else:
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(
                f"cannot create the socket directory {directory}: "
                f"{exc.strerror}; pass another with --socket-dir"
            ) from exc
        for child in self.children.values():
            child.start()

    async def wait_ready(self, timeout: float) -> list[Child]:
        """Wait until every child is READY or given up on; the children that are not READY."""

        async def one(child: Child) -> None:
            with contextlib.suppress(NotReady):
                await child.ready_transport(timeout)

        await asyncio.gather(*(one(c) for c in self.children.values()))
        return [c for c in self.children.values() if c.state is not State.READY]

    async def stop(self) -> None:
        await asyncio.gather(*(child.stop() for child in self.children.values()))
        if self._settings.own_socket_dir:
            shutil.rmtree(self._settings.socket_dir, ignore_errors=True)

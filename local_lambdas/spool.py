"""A request body past BUFFERED bytes kept on disk, as nginx keeps a body past its
client_body_buffer_size in a temporary file: an envelope-mode body while its request waits
for a child's slot (read back into memory once a child takes it, proxy._Exchange, as the
envelope carries it whole), and a chunked pass-through upload, sent on from the file with a
Content-Length as nginx sends uploads (transports/aiohttp_side.SpooledBody). A hundred
queued uploads then cost the proxy a hundred files, not their size in memory. The file is
unlinked from the start (tempfile.TemporaryFile, under TMPDIR), so nothing is left behind,
even by a killed proxy.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

from local_lambdas.errors import BodyNotKept


class Spool:
    """One request body: its first bytes, then each piece as it comes, then read back (whole,
    once; or in pieces, from its start each time)."""

    def __init__(self, start: bytes) -> None:
        try:
            # (Open as long as the Spool is: closed by read or close.)
            self._file = tempfile.TemporaryFile(prefix="local-lambdas-body-")  # noqa: SIM115
        except OSError as exc:
            raise _not_kept(exc) from exc
        self.size = 0
        self.write(start)

    def write(self, piece: bytes) -> None:
        try:
            self._file.write(piece)
        except OSError as exc:
            self.close()
            raise _not_kept(exc) from exc
        self.size += len(piece)

    def read(self) -> bytes:
        """The whole body; the file is closed (and gone)."""
        try:
            self._file.seek(0)
            return self._file.read()
        except OSError as exc:
            raise _not_kept(exc) from exc
        finally:
            self.close()

    def pieces(self, most: int) -> Iterator[bytes]:
        """The body from its start, `most` bytes at a time; the file stays open."""
        try:
            self._file.seek(0)
            while piece := self._file.read(most):
                yield piece
        except OSError as exc:
            raise _not_kept(exc) from exc

    def close(self) -> None:
        self._file.close()


def _not_kept(exc: OSError) -> BodyNotKept:
    """The file's failure (a full disk, no writable temporary folder), with where it was."""
    return BodyNotKept(f"{exc} (TMPDIR: {tempfile.gettempdir()})")

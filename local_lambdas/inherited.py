"""What a run inherits from whatever started it and would break it, put right before
anything else (cli.main): a standard stream closed. A script or a service manager may leave
one so; the proxy then looked fine and was not. Standard library only: this runs before
anything is loaded.
"""

from __future__ import annotations

import os


def put_right() -> None:
    """The standard streams open, as a terminal's shell leaves them."""
    _standard_streams_open()


def _standard_streams_open() -> None:
    """Standard input, output and error open, on the null device where one was closed
    (`local-lambdas ... <&- >&- 2>&-`): with uvloop every child was killed before it ran
    (libuv's spawn asserts that the descriptor it closes is none of 0-2: SIGABRT), and the
    proxy's first socket or pipe would have taken the closed descriptor's number, so that
    a write meant for the terminal went there. (Python makes sys.stdout None for a closed
    descriptor: writes then go nowhere.)"""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)

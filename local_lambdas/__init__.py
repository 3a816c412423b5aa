"""local-lambdas: one local HTTP port in front of child processes, over named pipes or HTTP."""

from __future__ import annotations

# First: which form of the hot modules loads, compiled or their sources (compiled.py).
from local_lambdas import compiled as compiled

__version__ = "0.1.0"

STOPPED = "local-lambdas: stopped by Ctrl+C"  # what a Ctrl+C before the run takes it says
EXIT_INTERRUPTED = 130  # and how it ends, as a shell's Ctrl+C


def entry_point() -> None:
    """The `local-lambdas` console script. The command line is loaded here, not by the
    script's own import, so that a Ctrl+C while it loads says one line too (cli.main says
    it for the rest of the loading)."""
    import sys

    try:
        from local_lambdas.cli import main
    except KeyboardInterrupt:
        sys.stderr.write(STOPPED + "\n")
        raise SystemExit(EXIT_INTERRUPTED) from None
    sys.exit(main())

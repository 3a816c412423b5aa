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
    import signal
    import sys

    # A script's background job (`local-lambdas manifest.xml &`) starts with SIGINT ignored,
    # and cli.main takes it only once the command line has loaded: a SIGINT sent in the run's
    # first tens of milliseconds (a trap on a failed first step) was lost, and the proxy went
    # on to serve. Taken from here, as a terminal's Ctrl+C is.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        from local_lambdas.cli import main
    except KeyboardInterrupt:
        sys.stderr.write(STOPPED + "\n")
        raise SystemExit(EXIT_INTERRUPTED) from None
    sys.exit(main())

"""local-lambdas: one local HTTP port in front of child processes, over named pipes or HTTP."""

from __future__ import annotations

__version__ = "0.1.0"

"""local-lambdas: one local HTTP port in front of child processes, over named pipes or HTTP."""

from __future__ import annotations

# First: which form of the hot modules loads, compiled or their sources (compiled.py).
from local_lambdas import compiled as compiled

__version__ = "0.1.0"

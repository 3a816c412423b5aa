"""`python -m local_lambdas`: the same as the `local-lambdas` command."""

from __future__ import annotations

from local_lambdas import entry_point

entry_point()

"""`python -m local_lambdas`: the same as the `local-lambdas` command."""

from __future__ import annotations

import sys

from local_lambdas.cli import main

sys.exit(main(sys.argv[1:]))

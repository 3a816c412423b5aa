#!/usr/bin/env python3
"""A test child that starts serving when the test lets it: it waits for a writer to open the
FIFO named by its first argument, then becomes behave.py with the rest of its arguments."""

import os
import sys
from pathlib import Path

with open(sys.argv[1], "rb"):
    pass
behave = str(Path(__file__).with_name("behave.py"))
os.execv(sys.executable, [sys.executable, "-S", behave, *sys.argv[2:]])

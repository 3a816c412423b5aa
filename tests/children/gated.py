#!/usr/bin/env python3
"""A test child that starts serving when the test lets it: it waits for a writer to open the
FIFO named by its first argument, then becomes behave.py with the rest of its arguments, or,
with `--web` next, web_child.py (a pass-through server)."""

import os
import sys
from pathlib import Path

with open(sys.argv[1], "rb"):
    pass
if sys.argv[2:3] == ["--web"]:
    web = str(Path(__file__).with_name("web_child.py"))
    os.execv(sys.executable, [sys.executable, web])
behave = str(Path(__file__).with_name("behave.py"))
os.execv(sys.executable, [sys.executable, "-S", behave, *sys.argv[2:]])

#!/usr/bin/env python3
"""Windows: a wrapper as `npm start` or a .cmd file is one. It starts a grandchild that
inherits its standard output and error and sleeps, says the grandchild's pid, then becomes
the helper child (helper_child.py). When the wrapper dies, the grandchild still holds the
output pipes: the proxy must see the exit all the same."""

import runpy
import subprocess
import sys
from pathlib import Path

sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(f"sleeper {sleeper.pid}", flush=True)
runpy.run_path(str(Path(__file__).with_name("helper_child.py")), run_name="__main__")

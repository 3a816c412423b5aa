#!/usr/bin/env python3
"""A quiet route's latency beside a child that floods its output (issue 15's row).

One proxy serves the benchmark's Node.js child (keep-alive pipe, 100 B answers) on /quiet/
and, in the flood rows, a second child that prints lines as fast as it can. wrk measures
/quiet/ at one connection. The proxy's output goes where a user's would:

    quiet          no flooding child; output to a file
    flood, file    the flood beside it; output to a file (the disk takes it all)
    flood, stuck   the flood beside it; output to a pipe nobody reads (a stuck terminal)

    python3 bench/flood.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CHILD, ensure_tools, free_port, started, wait_port, wrk

FLOOD = (
    "import sys\n"
    "n = 0\n"
    "while True:\n"
    "    n += 1\n"
    "    sys.stdout.write(f'flood line {n} ' + 'x' * 60 + '\\n')\n"
)
MANIFEST = """<manifest>
<process><id>quiet</id><executable>node</executable><arg>{child}</arg><route>/quiet/*</route>
  <communication_mode>pipe-keepalive</communication_mode><env name="BODY_SIZE">100</env>
</process>{flood}
</manifest>
"""
FLOOD_PROCESS = """
<process><id>flood</id><executable>{python}</executable><arg>-c</arg><arg>{code}</arg>
  <route>/flood/*</route><communication_mode>passthrough</communication_mode>
  <startup_timeout>1h</startup_timeout>
</process>"""


def measure(work: Path, flood: bool, output: str, seconds: float) -> tuple[float, float, float]:
    flooding = FLOOD_PROCESS.format(python=sys.executable, code=FLOOD.replace("\n", "&#10;"))
    manifest = work / f"flood-{flood}-{output}.xml"
    manifest.write_text(MANIFEST.format(child=CHILD, flood=flooding if flood else ""))
    port = free_port()
    cmd = [sys.executable, "-m", "local_lambdas", str(manifest), "--bind", f"127.0.0.1:{port}"]
    sink = (work / "out.log").open("w") if output == "file" else subprocess.PIPE
    with started(cmd, stdout=sink, stderr=subprocess.STDOUT) as proxy:
        wait_port(port)
        url = f"http://127.0.0.1:{port}/quiet/"
        wait_quiet(url)
        wrk(url, 1, 1, {})  # warm up
        rps, p50, p99, _ = wrk(url, 1, seconds, {"proxy": proxy.pid})
    return rps, p50, p99


def wait_quiet(url: str) -> None:
    """Until the quiet child answers (the flood child never listens: it is not waited for)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    ensure_tools()
    print("| proxy output | flooding child | req/s (c=1) | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="ll-flood-") as tmp:
        for flood, output in ((False, "file"), (True, "file"), (True, "stuck")):
            rps, p50, p99 = measure(Path(tmp), flood, output, args.seconds)
            where = "a file" if output == "file" else "a pipe nobody reads"
            print(f"| {where} | {'yes' if flood else 'no'} | {rps:.0f} | {p50:.3f} | {p99:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long local-lambdas takes to start and to stop: the bundled manifest.xml (four Python
children, one per mode), from the command's start until /_/ready answers 200, and from
Ctrl+C until the process is gone, with the proxy's CPU time at ready (user + system, from
/proc/PID/stat). The children run on this Python (`python3` on PATH may be a slower
launcher, such as a pyenv shim). Prints the median and range of RUNS runs.

    python3 bench/start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLL = 0.005  # seconds between /_/ready polls: the resolution of the start figure


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(manifest: Path) -> tuple[float, float, float]:
    """Seconds to ready, the proxy's CPU seconds by then, seconds from SIGINT to its exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/_/ready"
    began = time.perf_counter()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "local_lambdas", str(manifest), "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while not ready(url):
            if proxy.poll() is not None or time.perf_counter() - began > 30:
                raise RuntimeError(f"the proxy did not get ready (exit {proxy.returncode})")
            time.sleep(POLL)
        started = time.perf_counter() - began
        cpu = cpu_seconds(proxy.pid)
        asked = time.perf_counter()
        proxy.send_signal(signal.SIGINT)
        proxy.wait(30)
        return started, cpu, time.perf_counter() - asked
    finally:
        if proxy.poll() is None:
            proxy.kill()
            proxy.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    bundled = (ROOT / "manifest.xml").read_text()
    text = bundled.replace("<executable>python3</executable>",
                           f"<executable>{sys.executable}</executable>")  # fmt: skip
    text = text.replace("<arg>examples/", f"<arg>{ROOT}/examples/")
    with tempfile.TemporaryDirectory() as work:
        manifest = Path(work) / "manifest.xml"
        manifest.write_text(text)
        one_run(manifest)  # warm: the page cache, not what a second start costs
        runs = [one_run(manifest) for _ in range(args.runs)]
    names = ("start to ready", "proxy CPU by then", "Ctrl+C to exit")
    for name, values in zip(names, zip(*runs, strict=True), strict=True):
        print(f"{name:18} median {statistics.median(values):.3f} s "
              f"(from {min(values):.3f} to {max(values):.3f}, {args.runs} runs)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

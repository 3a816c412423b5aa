"""How long local-lambdas takes to start and to stop: the bundled manifest.xml (four Python
children, one per mode), from the command's start until /_/ready answers 200, and from
Ctrl+C until the process is gone, with the proxy's CPU time for each (user + system, from
/proc/PID/stat). The children run on this Python (`python3` on PATH may be a slower
launcher, such as a pyenv shim). Prints the median and range of RUNS runs.

--children N adds N one-shot pipe children (examples/children/echo_pipe.py under `python
-S`); --busy N keeps N idle processes running meanwhile, as a desktop has hundreds: what
the proxy does per process on the machine, rather than per child, shows there.

    python3 bench/start.py [--runs 7] [--children N] [--busy N]
"""

from __future__ import annotations

import argparse
import contextlib
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


def one_run(manifest: Path) -> tuple[float, float, float, float]:
    """Seconds to ready, the proxy's CPU seconds by then, seconds from SIGINT to its exit,
    the proxy's CPU seconds from SIGINT to its last look (every POLL)."""
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
        asked, last = time.perf_counter(), cpu
        proxy.send_signal(signal.SIGINT)
        while proxy.poll() is None and time.perf_counter() - asked < 30:
            with contextlib.suppress(OSError, IndexError):
                last = cpu_seconds(proxy.pid)  # (a zombie's reads 0: kept only if more)
            time.sleep(POLL)
        proxy.wait(1)
        return started, cpu, time.perf_counter() - asked, max(last - cpu, 0.0)
    finally:
        if proxy.poll() is None:
            proxy.kill()
            proxy.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--children", type=int, default=0, metavar="N")
    parser.add_argument("--busy", type=int, default=0, metavar="N")
    args = parser.parse_args()
    bundled = (ROOT / "manifest.xml").read_text()
    extra = "".join(
        f"<process><id>extra{n}</id><executable>{sys.executable}</executable><arg>-S</arg>"
        f"<arg>{ROOT}/examples/children/echo_pipe.py</arg><route>/extra{n}/*</route>"
        "<communication_mode>pipe</communication_mode></process>"
        for n in range(args.children)
    )
    text = bundled.replace("<executable>python3</executable>",
                           f"<executable>{sys.executable}</executable>")  # fmt: skip
    text = text.replace("<arg>examples/", f"<arg>{ROOT}/examples/")
    text = text.replace("</manifest>", extra + "</manifest>")
    busy = [subprocess.Popen(["sleep", "3600"]) for _ in range(args.busy)]
    try:
        with tempfile.TemporaryDirectory() as work:
            manifest = Path(work) / "manifest.xml"
            manifest.write_text(text)
            one_run(manifest)  # warm: the page cache, not what a second start costs
            runs = [one_run(manifest) for _ in range(args.runs)]
    finally:
        for process in busy:
            process.kill()
            process.wait()
    names = ("start to ready", "proxy CPU by then", "Ctrl+C to exit", "proxy CPU to exit")
    for name, values in zip(names, zip(*runs, strict=True), strict=True):
        print(f"{name:18} median {statistics.median(values):.3f} s "
              f"(from {min(values):.3f} to {max(values):.3f}, {args.runs} runs)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Side-by-side benchmark: one Node.js handler served directly, behind nginx, and behind
local-lambdas in each mode, driven by wrk on this machine. Prints the table PERFORMANCE.md
records.

    python3 bench/run.py [--seconds 5] [--only ll-pipe-keepalive,nginx]

nginx is measured again right before each local-lambdas target, and each row's "x nginx" is
its ratio to the nginx row just before it: this machine's speed drifts by a quarter within
minutes, and a reference taken at the start of a five-minute run moved the last rows' ratios
with it. `--nginx-once` measures it once, first, as before.

Installs wrk and nginx from Debian packages when missing (needs root and apt-get).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = HERE / "bench_child.js"
MIB = 1024 * 1024
LOADS = [(100, 1), (100, 64), (MIB, 16)]  # (response body bytes, connections)
TARGETS = ["direct", "nginx", "ll-pipe", "ll-pipe-keepalive", "ll-http", "ll-passthrough"]
TICKS = os.sysconf("SC_CLK_TCK")
# No access log, as nginx runs here (access_log off); --proxy-flags changes it.
PROXY_FLAGS = ["--quiet"]


@dataclass
class Row:
    target: str
    body: int
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    proxy_rss_mib: float | None
    cpu: dict[str, float]  # process -> % of one core during the run


def ensure_tools() -> None:
    missing = [name for name in ("wrk", "nginx") if shutil.which(name) is None]
    if missing:
        print(f"installing {' '.join(missing)} from Debian packages...", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *missing],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    if shutil.which("node") is None:
        sys.exit("node is needed for the benchmark's child: apt-get install nodejs")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wrk(
    url: str, connections: int, seconds: float, pids: dict[str, int]
) -> tuple[float, float, float, dict[str, float]]:
    """req/s, p50 ms, p99 ms, and each watched process's CPU % over the run."""
    before = {name: cpu_ticks(pid) for name, pid in pids.items()}
    start = time.monotonic()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wall = time.monotonic() - start
    cpu = {n: 100 * (cpu_ticks(p) - before[n]) / TICKS / wall for n, p in pids.items()}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {m.group(1): _ms(m.group(2)) for m in re.finditer(r"\s+(50|99)%\s+([\d.]+\w+)", out)}
    return rps, latency["50"], latency["99"], cpu


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


@contextmanager
def started(
    args: list[str], env: dict[str, str] | None = None, **kw: object
) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        args, env={**os.environ, **(env or {})}, text=True, start_new_session=True, **kw
    )  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def plain_child(body: int) -> Iterator[tuple[int, int]]:
    port = free_port()
    env = {"BENCH_PLAIN": "1", "HTTP_ADDRESS": f"127.0.0.1:{port}", "BODY_SIZE": str(body)}
    with started(["node", str(CHILD)], env) as child:
        wait_port(port)
        yield port, child.pid


@contextmanager
def target(name: str, body: int, work: Path) -> Iterator[tuple[str, dict[str, int], int | None]]:
    """The URL to load, the pids to watch, and the proxy's pid (for its peak RSS)."""
    if name == "direct":
        with plain_child(body) as (port, child):
            yield f"http://127.0.0.1:{port}/", {"child": child}, None
    elif name == "nginx":
        with plain_child(body) as (child_port, child):
            port = free_port()
            conf = work / "nginx.conf"
            conf.write_text(NGINX.format(port=port, child_port=child_port, work=work))
            with started(["nginx", "-p", str(work), "-c", str(conf), "-g", "daemon off;"]) as ng:
                wait_port(port)
                workers = subprocess.run(
                    ["pgrep", "-P", str(ng.pid)], capture_output=True, text=True
                ).stdout.split()
                yield f"http://127.0.0.1:{port}/", {"child": child, "nginx": int(workers[0])}, None
    else:
        mode = name.removeprefix("ll-")
        manifest = work / f"{name}.xml"
        # Pass-through runs the plain HTTP server, as the direct and nginx rows do.
        plain = '<env name="BENCH_PLAIN">1</env>' if mode == "passthrough" else ""
        manifest.write_text(MANIFEST.format(child=CHILD, mode=mode, body=body, plain=plain))
        port = free_port()
        BUILDS.add(build())
        cmd = [sys.executable, "-m", "local_lambdas", str(manifest)]
        cmd += ["--bind", f"127.0.0.1:{port}", *PROXY_FLAGS]
        # The proxy's output goes to a file: a pipe nobody reads would block it.
        with (work / f"{name}.log").open("w") as log, started(cmd, stdout=log) as proxy:
            wait_port(port)
            status = wait_ready(f"http://127.0.0.1:{port}")
            child = status["processes"]["bench"]["instances"][0]["pid"]
            yield f"http://127.0.0.1:{port}/", {"child": child, "proxy": proxy.pid}, proxy.pid


# What each proxy target ran (see build): more than one, and the rows do not compare.
BUILDS: set[str] = set()


def build() -> str:
    """What the proxy runs, as `local-lambdas --version` says: the compiled hot path, or the
    Python sources and why (a hot module edited since the build falls back to them all)."""
    said = subprocess.run(
        [sys.executable, "-m", "local_lambdas", "--version"], capture_output=True, text=True
    ).stdout.strip()
    return said.partition("(")[2].removesuffix(")") or said


def event_loop() -> str:
    """Which event loop the proxy rows ran on (see --event-loop): it matters by ~20%."""
    flags = " ".join(PROXY_FLAGS)
    if "--event-loop asyncio" in flags:
        return "asyncio's own loop (--event-loop asyncio)"
    if find_spec("uvloop") is None:
        return "asyncio's own loop: uvloop is not installed (pip install -e '.[fast]')"
    return "uvloop"


def wait_ready(url: str, timeout: float = 20) -> dict:  # type: ignore[type-arg]
    """The proxy's /_/status once /_/ready says every child is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_/ready") as reply:
                if reply.status == 200:
                    with urllib.request.urlopen(url + "/_/status") as status:
                        return json.load(status)  # type: ignore[no-any-return]
        except urllib.error.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready")


NGINX = """
worker_processes 1;
error_log {work}/nginx-error.log;
pid {work}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fcgi; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  upstream child {{ server 127.0.0.1:{child_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://child;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffers 64 16k;
    }}
  }}
}}
"""

MANIFEST = """<manifest><process>
  <id>bench</id><executable>node</executable><arg>{child}</arg><route>/*</route>
  <communication_mode>{mode}</communication_mode><env name="BODY_SIZE">{body}</env>{plain}
  <concurrency>64</concurrency>
</process></manifest>
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--only", help="comma-separated targets, from: " + ", ".join(TARGETS))
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument(
        "--proxy-flags",
        default=" ".join(PROXY_FLAGS),
        help="flags for local-lambdas (default: %(default)s)",
    )
    parser.add_argument(
        "--nginx-once", action="store_true",
        help="measure nginx once, first, rather than before each local-lambdas target",
    )  # fmt: skip
    args = parser.parse_args()
    PROXY_FLAGS[:] = args.proxy_flags.split()
    ensure_tools()
    targets = args.only.split(",") if args.only else TARGETS
    if "nginx" in targets and not args.nginx_once:  # nginx right before each ll-* target
        others = [name for name in targets if name != "nginx"]
        targets = [n for name in others for n in (["nginx", name] if name.startswith("ll-")
                                                    else [name])]  # fmt: skip
        targets = targets if "nginx" in targets else ["nginx", *others]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ll-bench-") as tmp:
        for name in targets:
            for body in sorted({b for b, _ in LOADS}):
                with target(name, body, Path(tmp)) as (url, pids, proxy):
                    wrk(url, 64 if body < MIB else 16, 1, pids)  # warm up
                    for size, connections in LOADS:
                        if size != body:
                            continue
                        rps, p50, p99, cpu = wrk(url, connections, args.seconds, pids)
                        rss = peak_rss_mib(proxy) if proxy else None
                        rows.append(Row(name, body, connections, rps, p50, p99, rss, cpu))
                        print(
                            f"  {name:<18} {body:>8} B  c={connections:<3} {rps:>9.0f} req/s",
                            file=sys.stderr,
                        )
    ran = "; ".join(sorted(BUILDS))
    changed = (
        " (THE BUILD CHANGED DURING THE RUN: its rows do not compare)" if len(BUILDS) > 1 else ""
    )
    print(f"local-lambdas ran on {event_loop()}, {ran}{changed}.\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


def table(rows: list[Row]) -> str:
    by = {(r.target, r.body, r.connections): r for r in rows}
    nginx_before: dict[tuple[int, int], Row] = {}  # the last nginx row so far, by load
    lines = [
        "| target | body | conns | req/s | p50 ms | p99 ms | proxy peak RSS MiB | x direct |"
        " x nginx | p50 added ms | CPU % (of one core) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        direct = by.get(("direct", r.body, r.connections))
        if r.target == "nginx":
            nginx_before[r.body, r.connections] = r
        nginx = nginx_before.get((r.body, r.connections))
        added = f"{r.p50_ms - direct.p50_ms:+.3f}" if direct else "-"
        rss = f"{r.proxy_rss_mib:.0f}" if r.proxy_rss_mib else "-"
        cpu = ", ".join(f"{n} {v:.0f}" for n, v in r.cpu.items())
        size = "1 MiB" if r.body == MIB else f"{r.body} B"
        lines.append(
            f"| {r.target} | {size} | {r.connections} | {r.rps:.0f} | {r.p50_ms:.3f} | "
            f"{r.p99_ms:.2f} | {rss} | {_ratio(r, direct)} | {_ratio(r, nginx)} | {added} | {cpu} |"
        )
    return "\n".join(lines)


def _ratio(row: Row, reference: Row | None) -> str:
    return f"{row.rps / reference.rps:.2f}" if reference else "-"


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The proxy's memory under many large uploads to a slow envelope child.

One proxy serves a child in `http` mode that answers each request after --hold seconds,
--concurrency at a time; --uploads clients each POST --megabytes of body at once, so most
of them wait for a slot. Printed: the proxy's peak resident memory (VmHWM, its children
apart), its resident memory before the uploads, and the statuses the clients got.

    python3 bench/uploads.py [--uploads 150] [--megabytes 15] [--concurrency 16] [--hold 5]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import free_port, started, wait_port

# Answers how many bytes it was sent, after HOLD seconds, a thread per request.
CHILD = """\
import base64, json, os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(float(os.environ["HOLD"]) if request["method"] == "POST" else 0)
        size = len(base64.b64decode(request["body"])) if request["body"] else 0
        payload = json.dumps({"status": 200, "headers": [],
                              "body": base64.b64encode(str(size).encode()).decode()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
    def log_message(self, *args):
        pass
class Server(ThreadingHTTPServer):
    request_queue_size = 1024
host, port = os.environ["HTTP_ADDRESS"].rsplit(":", 1)
Server((host, int(port)), Handler).serve_forever()
"""
MANIFEST = """<manifest><process>
  <id>slow</id><executable>{python}</executable><arg>{child}</arg><route>/up/*</route>
  <communication_mode>http</communication_mode><concurrency>{concurrency}</concurrency>
  <max_body_size>{limit}MiB</max_body_size><queue_timeout>10m</queue_timeout>
  <timeout>10m</timeout><env name="HOLD">{hold}</env>
</process></manifest>
"""


def memory(pid: int, field: str) -> int:
    """A VmRSS or VmHWM line of /proc/PID/status, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    raise RuntimeError(f"no {field} for {pid}")


async def upload(url: str, body: bytes) -> int:
    """One POST over its own connection, with a Content-Length: the answer's status."""
    host, port = url.split("/")[2].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = f"POST /up/x HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"Connection: close\r\n\r\n")
    writer.write(body)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    await reader.read()
    writer.close()
    return status


async def uploads(url: str, count: int, megabytes: int) -> collections.Counter[int]:
    body = b"x" * (megabytes * 1024**2)
    return collections.Counter(await asyncio.gather(*(upload(url, body) for _ in range(count))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=150)
    parser.add_argument("--megabytes", type=int, default=15)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--hold", type=float, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ll-uploads-") as tmp:
        work = Path(tmp)
        (work / "child.py").write_text(CHILD)
        manifest = work / "manifest.xml"
        manifest.write_text(MANIFEST.format(
            python=sys.executable, child=work / "child.py", concurrency=args.concurrency,
            limit=args.megabytes + 1, hold=args.hold,
        ))  # fmt: skip
        port = free_port()
        cmd = [sys.executable, "-m", "local_lambdas", str(manifest), "--bind", f"127.0.0.1:{port}",
               "--no-inspector"]  # fmt: skip
        with (
            (work / "out.log").open("w") as log,
            started(cmd, stdout=log, stderr=subprocess.STDOUT) as proxy,
        ):
            wait_port(port)
            url = f"http://127.0.0.1:{port}"
            urllib.request.urlopen(url + "/up/ready", timeout=30).read()  # once it is ready
            idle = memory(proxy.pid, "VmRSS")
            statuses = asyncio.run(uploads(url, args.uploads, args.megabytes))
            peak = memory(proxy.pid, "VmHWM")
    print(
        f"{args.uploads} uploads of {args.megabytes} MiB, {args.concurrency} at a time, "
        f"{args.hold:g} s each: proxy peak RSS {peak} MiB ({idle} MiB before); "
        f"statuses {dict(statuses)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

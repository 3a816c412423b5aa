#!/usr/bin/env python3
"""A load like a browser page's fetches, for bench/instructions.sh and costs.sh
(BENCH_CLIENT=browser): REQUESTS GETs over CONNECTIONS kept-alive connections, each with
the dozen headers Chromium sends, one of which (a W3C `traceparent`, as tracing front-ends
add) changes on every request, so that no two header blocks are the same. ab, the default
client, repeats one block. Prints the number of failed requests (answers other than 200).

    python3 bench/browser_load.py PORT REQUESTS [CONNECTIONS]
"""

from __future__ import annotations

import asyncio
import itertools
import sys

HEADERS = (
    "Host: 127.0.0.1:{port}\r\n"
    "Connection: keep-alive\r\n"
    'sec-ch-ua: "Chromium";v="156", "Not.A/Brand";v="99"\r\n'
    "sec-ch-ua-mobile: ?0\r\n"
    'sec-ch-ua-platform: "Linux"\r\n'
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36\r\n"
    "Accept: application/json, text/plain, */*\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: cors\r\n"
    "Sec-Fetch-Dest: empty\r\n"
    "Referer: http://127.0.0.1:{port}/app/\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-GB,en;q=0.9\r\n"
    "Cookie: session=3f9a1c0e5b7d4e2a8c6b0f1d9e3a5c7b; theme=dark; consent=1\r\n"
)


async def client(port: int, counter: itertools.count[int], total: int, failed: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    headers = HEADERS.format(port=port)
    while (n := next(counter)) < total:
        trace = f"traceparent: 00-{n:032x}-{n:016x}-01\r\n"
        writer.write(f"GET /api/items?page=1 HTTP/1.1\r\n{headers}{trace}\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            failed[0] += 1
    writer.close()


async def main(port: int, total: int, connections: int) -> int:
    counter = itertools.count()
    failed = [0]
    await asyncio.gather(*(client(port, counter, total, failed) for _ in range(connections)))
    return failed[0]


if __name__ == "__main__":
    port, total = int(sys.argv[1]), int(sys.argv[2])
    connections = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    print(asyncio.run(main(port, total, connections)))

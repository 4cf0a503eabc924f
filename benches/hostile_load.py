#!/usr/bin/env python3
"""Hostile connections against one `keywarden serve`, for DURATION seconds:
SLOW connections that each send half a request line and then nothing, and
BODIES connections that each post a partner report declaring a 1 MiB body,
without signature headers, and trickle it. Each connection that ends is
opened again, so the pressure stays. Prints what the server did with them:
how many were opened, closed by the server (and after how long), answered
(by status), and still open at the end.

    hostile_load.py HOST:PORT DURATION SLOW BODIES
"""
import asyncio
import collections
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
duration, slow, bodies = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
stats = collections.Counter()
held = []  # seconds each connection was held open by the server
deadline = time.monotonic() + duration
MIB = 1 << 20


async def one(kind):
    start = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
    except (OSError, asyncio.TimeoutError):
        stats["connect_failed"] += 1
        await asyncio.sleep(0.1)
        return
    stats["opened"] += 1
    try:
        if kind == "slow":
            writer.write(b"GET /healthz HT")
        else:
            writer.write(
                b"POST /github/secret-scanning HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % MIB
            )
        await writer.drain()
        sent = 0
        while time.monotonic() < deadline:
            if kind == "body" and sent < MIB - 1:
                chunk = min(4096, MIB - 1 - sent)
                writer.write(b" " * chunk)
                sent += chunk
                await writer.drain()
            left = deadline - time.monotonic()
            try:
                data = await asyncio.wait_for(reader.read(4096), min(0.5, max(left, 0.01)))
            except asyncio.TimeoutError:
                continue
            if not data:
                stats[f"{kind}_closed_by_server"] += 1
                held.append(time.monotonic() - start)
                return
            status = data.split(b" ", 2)[1].decode(errors="replace") if data.startswith(b"HTTP/") else "?"
            stats[f"{kind}_answered_{status}"] += 1
            held.append(time.monotonic() - start)
            return
        stats[f"{kind}_open_at_end"] += 1
    except OSError:
        stats[f"{kind}_reset_by_server"] += 1
        held.append(time.monotonic() - start)
    finally:
        writer.close()


async def keep(kind):
    while time.monotonic() < deadline:
        await one(kind)


async def main():
    tasks = [keep("slow") for _ in range(slow)] + [keep("body") for _ in range(bodies)]
    await asyncio.gather(*tasks)


asyncio.run(main())
for k in sorted(stats):
    print(f"hostile {k} {stats[k]}")
held.sort()
if held:
    p = lambda q: held[min(len(held) - 1, int(q * len(held)))]
    print(f"hostile held_s p50 {p(0.5):.2f} p95 {p(0.95):.2f} max {held[-1]:.2f}")

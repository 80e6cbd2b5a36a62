"""Where the Python heap of an idle server connection goes, by source line (needs root).

    sudo python benchmarks/idle_memory_where.py [--connections 1000] [--top 30]

In a network namespace of its own, a kernel-side client (a subprocess with blocking
sockets, one byte sent on each) opens N connections to the ``sink`` handler of
``benchmarks/server.py`` served (a) by ``asyncio.start_server`` on 127.0.0.1 and (b) by
``Stack.start_server`` over a TUN (198.18.0.2). Both servers run in this process under
``tracemalloc``; each allocation still held is charged to the innermost aionetstack line
that made it (or to the innermost line when no aionetstack frame is on the stack), and
the table lists bytes per connection. The stream objects and the handler's task are the
same on both sides, so the difference is the stack's connection against asyncio's
transport and socket objects (the kernel's socket memory is not in a process heap).
A diagnostic, not a benchmark: ``run.py --only idle`` measures RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aionetstack import Stack, TunLink
from aionetstack.testing.netns import network_namespace

CLIENT = """
import socket, sys
count, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
held = []
for _ in range(count):
    connection = socket.create_connection((host, port))
    connection.sendall(b"x")
    held.append(connection)
print("opened", flush=True)
sys.stdin.read()
"""

kept: list[asyncio.StreamWriter] = []


async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    kept.append(writer)
    while await reader.read(1 << 20):
        pass


async def clients(count: int, host: str, port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, str(count), host, str(port),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    await process.stdout.readline()
    return process


async def charged(count: int, host: str, port: int) -> collections.Counter[str]:
    """Bytes still held after ``count`` idle connections, by the line charged with them."""
    warm = await clients(20, host, port)  # tables and free lists grow once
    await asyncio.sleep(0.3)
    gc.collect()
    tracemalloc.start(30)
    before = tracemalloc.take_snapshot()
    process = await clients(count, host, port)
    await asyncio.sleep(0.5)  # the last handlers start
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    lines: collections.Counter[str] = collections.Counter()
    for stat in after.compare_to(before, "traceback"):
        frames = list(stat.traceback)  # oldest first
        frame = next((f for f in reversed(frames) if "aionetstack" in f.filename), frames[-1])
        name = frame.filename.split("aionetstack/", 1)[-1] if "aionetstack" in frame.filename else (
            "(not aionetstack) " + os.path.basename(frame.filename)
        )  # fmt: skip
        lines[f"{name}:{frame.lineno}"] += stat.size_diff
    for done in (warm, process):
        assert done.stdin is not None
        done.stdin.close()
        await done.wait()
    kept.clear()
    return lines


async def serve_asyncio(count: int) -> collections.Counter[str]:
    server = await asyncio.start_server(sink, "127.0.0.1", 5001, backlog=1024)
    async with server:
        return await charged(count, "127.0.0.1", 5001)


async def serve_stack(count: int) -> collections.Counter[str]:
    link = TunLink("aionwhere0", kernel_address="198.18.0.1/24")
    async with Stack(link, address="198.18.0.2/24") as stack:
        server = await stack.start_server(sink, "198.18.0.2", 5001, backlog=1024)
        async with server:
            return await charged(count, "198.18.0.2", 5001)


def report(name: str, lines: collections.Counter[str], count: int, top: int) -> None:
    print(f"{name}: {sum(lines.values()) / count:.0f} bytes per idle connection")
    for line, size in lines.most_common(top):
        print(f"  {size / count:8.1f}  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    servers: list[tuple[str, Callable[[int], Coroutine[Any, Any, collections.Counter[str]]]]] = [
        ("asyncio", serve_asyncio),
        ("stack", serve_stack),
    ]
    with network_namespace("aionwhere"):
        for name, serve in servers:
            report(name, asyncio.run(serve(args.connections)), args.connections, args.top)


if __name__ == "__main__":
    main()

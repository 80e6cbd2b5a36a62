"""Python heap per idle TCP connection end, two stacks over a memory link in one process.

    python benchmarks/idle_memory_link.py [--connections 1000]

Opens N connections from one stack to the other (one byte each way), then reports the
traced Python heap growth divided by the 2N connection ends. No kernel, no privileges:
a quick check of the per-connection footprint (the TUN benchmark in ``run.py`` measures
RSS against asyncio instead).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aionetstack import MemoryLink, Stack


async def measure(count: int) -> float:
    """KiB of Python heap per connection end."""
    a, b = MemoryLink.pair()
    async with Stack(b, address="198.18.0.1/24", seed=2) as far, \
               Stack(a, address="198.18.0.2/24", seed=1) as near:  # fmt: skip
        kept: list[asyncio.StreamWriter] = []

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            kept.append(writer)

        await far.start_server(hold, None, 7)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        clients = []
        for _ in range(count):
            reader, writer = await near.open_connection("198.18.0.1", 7)
            writer.write(b"x")
            await writer.drain()
            clients.append((reader, writer))
        await asyncio.sleep(0.5)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return (after - before) / (2 * count) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()
    print(f"{asyncio.run(measure(args.connections)):.2f} KiB per connection end")


if __name__ == "__main__":
    main()

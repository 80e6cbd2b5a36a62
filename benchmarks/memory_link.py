"""Stack to stack over a memory link in one process (no kernel, no I/O but an eventfd)."""

from __future__ import annotations

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aionetstack import MemoryLink, Stack

BLOCK = bytes(range(256)) * 256


async def _pair() -> tuple[Stack, Stack]:
    a, b = MemoryLink.pair(mtu=1500)
    return Stack(b, address="198.18.0.1/24", seed=2), Stack(a, address="198.18.0.2/24", seed=1)


async def bulk(seconds: float) -> float:
    """Gbit/s of one connection from one stack to the other."""
    far, near = await _pair()
    async with far, near:
        done = asyncio.get_running_loop().create_future()
        received = 0

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal received
            while data := await reader.read(1 << 20):
                received += len(data)
            done.set_result(None)
            writer.close()

        await far.start_server(sink, None, 5001)
        _, writer = await near.open_connection("198.18.0.1", 5001)
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(16):
                writer.write(BLOCK)
            await writer.drain()
        writer.write_eof()
        await done
        return received * 8 / (time.perf_counter() - start) / 1e9


async def transactions(seconds: float) -> float:
    """1-byte echo transactions per second over one connection."""
    far, near = await _pair()
    async with far, near:

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                writer.write(data)
            writer.close()

        await far.start_server(echo, None, 5003)
        reader, writer = await near.open_connection("198.18.0.1", 5003)
        count = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            writer.write(b"x")
            await reader.readexactly(1)
            count += 1
        writer.close()
        return count / (time.perf_counter() - start)


if __name__ == "__main__":
    print(f"bulk {asyncio.run(bulk(2)):.3f} Gbit/s")
    print(f"1-byte echo {asyncio.run(transactions(2)):.0f} trans/s")

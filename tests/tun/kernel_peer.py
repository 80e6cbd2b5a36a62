"""Kernel-side peers for the TUN tests, run as subprocesses inside the test's namespace.

``python kernel_peer.py echo-client HOST PORT MEGABYTES SEED``: send pseudo-random
bytes, half-close, read everything back; print ``sent_sha256 received_sha256 bytes``.
``python kernel_peer.py connect-many HOST PORT COUNT CONCURRENCY``: open COUNT
connections (CONCURRENCY at a time), each sends one line and reads the reply; print the
number that completed.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys


async def echo_client(host: str, port: int, megabytes: int, seed: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    rng = random.Random(seed)
    block = rng.randbytes(1 << 20)
    sent = hashlib.sha256()

    async def send() -> None:
        for index in range(megabytes):
            chunk = block[index % 7 :] + block[: index % 7]  # vary every megabyte
            sent.update(chunk)
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()

    task = asyncio.ensure_future(send())
    received = hashlib.sha256()
    count = 0
    while chunk := await reader.read(1 << 20):
        received.update(chunk)
        count += len(chunk)
    await task
    writer.close()
    print(sent.hexdigest(), received.hexdigest(), count)


async def connect_many(host: str, port: int, count: int, concurrency: int) -> None:
    limit = asyncio.Semaphore(concurrency)
    done = 0

    async def one(number: int) -> None:
        nonlocal done
        async with limit:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"hello {number}\n".encode())
            line = await reader.readline()
            assert line == f"HELLO {number}\n".encode(), line
            writer.close()
            await writer.wait_closed()
            done += 1

    await asyncio.gather(*(one(n) for n in range(count)))
    print(done)


def main() -> None:
    mode, host, port, *rest = sys.argv[1:]
    if mode == "echo-client":
        asyncio.run(echo_client(host, int(port), int(rest[0]), int(rest[1])))
    elif mode == "connect-many":
        asyncio.run(connect_many(host, int(port), int(rest[0]), int(rest[1])))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

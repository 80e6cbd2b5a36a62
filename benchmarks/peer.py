"""The kernel-side program of the benchmarks: the same client for every backend.

``python peer.py MODE HOST SECONDS [CONNECTIONS]`` prints one JSON object.
Modes: ``upload`` (to the sink, 5001), ``download`` (from the source, 5002),
``rr`` (1-byte echo transactions, 5003), ``connrate`` (connect, 1-byte request,
close, 5003), ``idle`` (open CONNECTIONS to 5003 and hold them until stdin closes),
``udp`` (UDP echo datagrams with 32 in flight, 5004).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import sys
import time

BLOCK = bytes(range(256)) * 256  # 64 KiB, the same writes as the baseline in limits.md
#: The kernel client's congestion control (``BENCH_CC``; unset: the system default).
CONGESTION = os.environ.get("BENCH_CC")


async def open_connection(
    host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection``, on a socket using ``CONGESTION`` when one is set."""
    if CONGESTION is None:
        return await asyncio.open_connection(host, port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, CONGESTION.encode())
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return await asyncio.open_connection(sock=sock)


async def upload(host: str, seconds: float, connections: int) -> dict[str, float]:
    async def one() -> int:
        reader, writer = await open_connection(host, 5001)
        sent = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for _ in range(16):
                writer.write(BLOCK)
            await writer.drain()
            sent += 16 * len(BLOCK)
        writer.write_eof()
        await reader.read()  # the sink closes once it has read everything
        writer.close()
        return sent

    start = time.perf_counter()
    total = sum(await asyncio.gather(*(one() for _ in range(connections))))
    return {"gbit_s": total * 8 / (time.perf_counter() - start) / 1e9}


async def download(host: str, seconds: float, connections: int) -> dict[str, float]:
    async def one() -> int:
        reader, writer = await open_connection(host, 5002)
        received = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            received += len(await reader.read(1 << 20))
        writer.close()
        return received

    start = time.perf_counter()
    total = sum(await asyncio.gather(*(one() for _ in range(connections))))
    return {"gbit_s": total * 8 / (time.perf_counter() - start) / 1e9}


async def request_response(host: str, seconds: float, connections: int) -> dict[str, float]:
    async def one() -> int:
        reader, writer = await open_connection(host, 5003)
        count = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            writer.write(b"x")
            await reader.readexactly(1)
            count += 1
        writer.close()
        return count

    start = time.perf_counter()
    total = sum(await asyncio.gather(*(one() for _ in range(connections))))
    return {"per_s": total / (time.perf_counter() - start)}


async def connection_rate(host: str, seconds: float, connections: int) -> dict[str, float]:
    async def worker() -> int:
        count = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            reader, writer = await open_connection(host, 5003)
            writer.write(b"x")
            await reader.readexactly(1)
            writer.close()
            await writer.wait_closed()
            count += 1
        return count

    start = time.perf_counter()
    total = sum(await asyncio.gather(*(worker() for _ in range(connections))))
    return {"per_s": total / (time.perf_counter() - start)}


async def idle(host: str, seconds: float, connections: int) -> dict[str, float]:
    held = []
    for _ in range(connections):
        held.append(await open_connection(host, 5003))
    print(json.dumps({"opened": len(held)}), flush=True)
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    await commands.read()
    for _, writer in held:
        writer.close()
    return {"held": len(held)}


class _UdpCounter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.count += 1
        self.transport.sendto(data)  # type: ignore[attr-defined]


async def udp(host: str, seconds: float, connections: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_UdpCounter, remote_addr=(host, 5004))
    for _ in range(32):  # a window of datagrams in flight; each echo sends the next
        transport.sendto(b"x" * 32)
    await asyncio.sleep(seconds)
    transport.close()
    return {"per_s": protocol.count / seconds}


MODES = {
    "upload": upload,
    "download": download,
    "rr": request_response,
    "connrate": connection_rate,
    "idle": idle,
    "udp": udp,
}


def main() -> None:
    mode, host, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    connections = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    cpu = os.environ.get("BENCH_CPU")
    if cpu is not None:
        os.sched_setaffinity(0, {int(cpu)})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(asyncio.wait_for(MODES[mode](host, seconds, connections), seconds + 120))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

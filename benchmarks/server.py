"""The server side of the benchmarks, on either backend, with identical handlers.

``python server.py BACKEND HOST [--no-offload] [--workers N --worker I] [--cpu C]``
BACKEND ``kernel``: asyncio over the kernel's sockets (the baseline users would pick);
BACKEND ``stack``: aionetstack over a TUN it creates (kernel side 198.18.0.1/24),
with the default ``TunLink`` (offloads negotiated) unless ``--no-offload``.
With ``--workers N`` this is worker ``I`` of N processes serving the same ports:
the kernel backend with ``SO_REUSEPORT``, the stack on one queue each of a
multi-queue TUN, with the ephemeral port range split between workers.
Listens on: 5001 sink (reads and discards), 5002 source (writes until the peer closes),
5003 echo, 5004 UDP echo. Prints ``ready`` when listening, runs until stdin closes;
on stdin ``rss``, ``cpu`` and ``stats`` answer one line each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys

#: BENCH_CODE: another checkout's root to import aionetstack from (A/B runs, ab.py).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ.get("BENCH_CODE") or _ROOT)

from aionetstack import Stack, StackConfig, TunLink  # noqa: E402

BLOCK = bytes(range(256)) * 256  # 64 KiB


async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(1 << 20):
        pass
    writer.close()


async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    reading = asyncio.ensure_future(reader.read())
    try:
        while not reading.done():
            for _ in range(16):
                writer.write(BLOCK)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    writer.close()
    # The client ends a download by closing with our data unread, which may reset the
    # connection: that is how the run ends, not an error to report.
    reading.cancel()
    try:
        await reading
    except (asyncio.CancelledError, ConnectionError, OSError):
        pass


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    writer.close()


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def serve(api: object, host: str, reuse_port: bool = False) -> None:
    start_server = api.start_server  # type: ignore[attr-defined]
    extra = {"reuse_port": True} if reuse_port else {}
    servers = [
        await start_server(sink, host, 5001, backlog=1024, **extra),
        await start_server(source, host, 5002, backlog=1024, **extra),
        await start_server(echo, host, 5003, backlog=1024, **extra),
    ]
    loop = asyncio.get_running_loop()
    if hasattr(api, "create_datagram_endpoint") and api is not asyncio:
        await api.create_datagram_endpoint(UdpEcho, local_addr=(host, 5004))  # type: ignore[attr-defined]
    else:
        await loop.create_datagram_endpoint(UdpEcho, local_addr=(host, 5004), **extra)
    print("ready", flush=True)
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    while line := await commands.readline():  # "rss" asks for the resident set size; EOF stops
        if line.strip() == b"rss":
            print(rss_kib(), flush=True)
        elif line.strip() == b"cpu":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            print(json.dumps({"user": usage.ru_utime, "sys": usage.ru_stime}), flush=True)
        elif line.strip() == b"stats" and hasattr(api, "statistics"):
            print(json.dumps(api.statistics()), flush=True)
    for server in servers:
        server.close()


def rss_kib() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() // 1024


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["kernel", "stack"])
    parser.add_argument("host")
    parser.add_argument("--offload", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--mtu", type=int, default=1500)
    parser.add_argument("--tun", default="aionsb0")
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--settle-allocator", action="store_true",
                        help="free one 4 MiB block first (see settle_allocator)")  # fmt: skip
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.settle_allocator:
        settle_allocator()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.backend == "kernel":
        await serve(asyncio, args.host, reuse_port=args.workers > 1)
        return
    config = StackConfig()
    if args.workers > 1:
        config = StackConfig(ephemeral_ports=worker_ports(args.worker, args.workers))
    kernel_address = args.host.rsplit(".", 1)[0] + ".1/24"
    queues = {"multi_queue": True} if args.workers > 1 else {}  # (older trees lack it: ab.py)
    link = TunLink(
        args.tun, kernel_address=kernel_address, offload=args.offload, mtu=args.mtu, **queues
    )
    async with Stack(link, address=f"{args.host}/24", config=config) as stack:
        await serve(stack, args.host)


def settle_allocator(size: int = 4 << 20) -> None:
    """Allocate and free one ``size``-byte block. glibc serves it with mmap and, on its
    free, raises its mmap threshold to ``size`` and its heap trim threshold to twice
    that (mallopt(3), "dynamic mmap threshold"). A bulk receiver's 64-256 KiB buffers
    then come from a heap that stays mapped, instead of one trimmed and faulted in
    again at every read: without this, an upload server (asyncio's or the stack's)
    spends most of its time in page faults, and which mode a run lands in varies."""
    block = bytearray(size)
    del block


def worker_ports(worker: int, workers: int, low: int = 32768, high: int = 60999) -> tuple[int, int]:
    """Worker ``worker``'s share of the ephemeral range: disjoint, so opens never collide."""
    share = (high - low + 1) // workers
    return low + worker * share, low + (worker + 1) * share - 1


if __name__ == "__main__":
    profile_path = os.environ.get("BENCH_PROFILE")  # cProfile the whole server run
    if profile_path:
        import cProfile

        cProfile.run("asyncio.run(main())", profile_path)
    else:
        asyncio.run(main())

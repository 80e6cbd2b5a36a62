"""The server side of the benchmarks, on either backend, with identical handlers.

``python server.py BACKEND HOST [--offload/--no-offload]``
BACKEND ``kernel``: asyncio over the kernel's sockets (the baseline users would pick);
BACKEND ``stack``: aionetstack over a TUN it creates (kernel side 198.18.0.1/24).
Listens on: 5001 sink (reads and discards), 5002 source (writes until the peer closes),
5003 echo, 5004 UDP echo. Prints ``ready`` when listening, runs until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aionetstack import Stack, TunLink

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


async def serve(api: object, host: str) -> None:
    start_server = api.start_server  # type: ignore[attr-defined]
    servers = [
        await start_server(sink, host, 5001, backlog=1024),
        await start_server(source, host, 5002, backlog=1024),
        await start_server(echo, host, 5003, backlog=1024),
    ]
    loop = asyncio.get_running_loop()
    if hasattr(api, "create_datagram_endpoint") and api is not asyncio:
        await api.create_datagram_endpoint(UdpEcho, local_addr=(host, 5004))  # type: ignore[attr-defined]
    else:
        await loop.create_datagram_endpoint(UdpEcho, local_addr=(host, 5004))
    print("ready", flush=True)
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    while line := await commands.readline():  # "rss" asks for the resident set size; EOF stops
        if line.strip() == b"rss":
            print(rss_kib(), flush=True)
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
    parser.add_argument("--offload", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.backend == "kernel":
        await serve(asyncio, args.host)
        return
    link = TunLink("aionsb0", kernel_address="198.18.0.1/24", offload=args.offload)
    async with Stack(link, address=f"{args.host}/24") as stack:
        await serve(stack, args.host)


if __name__ == "__main__":
    profile_path = os.environ.get("BENCH_PROFILE")  # cProfile the whole server run
    if profile_path:
        import cProfile

        cProfile.run("asyncio.run(main())", profile_path)
    else:
        asyncio.run(main())

"""A UDP echo server on aionetstack: an ordinary ``asyncio.DatagramProtocol``.

    python examples/udp_echo.py
        # No privileges: an in-process peer stack (198.18.0.1) on a memory link
        # sends three datagrams to 198.18.0.2:7, prints the echoes, exits 0.

    sudo python examples/udp_echo.py --tun     # or inside: sudo unshare -n ...
        # Creates the TUN aions0 (kernel side 198.18.0.1/24, stack 198.18.0.2)
        # and echoes UDP port 7 until Ctrl-C. From another shell (in the same
        # network namespace):  nc -u 198.18.0.2 7

Endpoints come from ``stack.create_datagram_endpoint``, which takes the same
arguments as ``loop.create_datagram_endpoint``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from aionetstack import MemoryLink, Stack, TunLink

KERNEL_SIDE = "198.18.0.1"
STACK_SIDE = "198.18.0.2"
PORT = 7


class EchoProtocol(asyncio.DatagramProtocol):
    """Send every datagram back where it came from."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        print(f"server: {len(data)} bytes from {addr[0]}:{addr[1]}")
        self.transport.sendto(data, addr)


class Collector(asyncio.DatagramProtocol):
    """The demo client's side: replies go into a queue."""

    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait(data)


async def demo_client(peer: Stack) -> None:
    transport, client = await peer.create_datagram_endpoint(
        Collector, remote_addr=(STACK_SIDE, PORT)
    )
    assert isinstance(client, Collector)
    for message in (b"ping", b"hello over UDP", b"x" * 1000):
        transport.sendto(message)
        # UDP may lose datagrams; on a perfect memory link it does not, but
        # never wait forever on a datagram.
        reply = await asyncio.wait_for(client.replies.get(), timeout=2.0)
        print(f"client: sent {len(message)} bytes, echo matches: {reply == message}")
    transport.close()


async def main(use_tun: bool) -> None:
    if use_tun:
        link = TunLink("aions0", kernel_address=f"{KERNEL_SIDE}/24")
        async with Stack(link, address=f"{STACK_SIDE}/24") as stack:
            await stack.create_datagram_endpoint(EchoProtocol, local_addr=(STACK_SIDE, PORT))
            print(f"UDP echo on {STACK_SIDE}:{PORT}; try: nc -u {STACK_SIDE} {PORT}", flush=True)
            await asyncio.Event().wait()  # until Ctrl-C
        return
    ours, theirs = MemoryLink.pair()
    async with (
        Stack(theirs, address=f"{KERNEL_SIDE}/24") as peer,
        Stack(ours, address=f"{STACK_SIDE}/24") as stack,
    ):
        server, _ = await stack.create_datagram_endpoint(
            EchoProtocol, local_addr=(STACK_SIDE, PORT)
        )
        await demo_client(peer)
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tun", action="store_true", help="serve on the TUN aions0 (root)")
    try:
        asyncio.run(main(parser.parse_args().tun))
    except KeyboardInterrupt:
        pass

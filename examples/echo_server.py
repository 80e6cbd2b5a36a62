"""A TCP echo server on aionetstack, written exactly as for asyncio.

Run it two ways::

    python examples/echo_server.py
        # No privileges: a second, in-process stack (198.18.0.1) joined by a
        # memory link plays the client, sends a few lines, prints the echoes
        # and exits 0.

    sudo python examples/echo_server.py --tun     # or inside: sudo unshare -n ...
        # Creates the TUN aions0 with the kernel side 198.18.0.1/24; the stack
        # is 198.18.0.2 and serves port 7 until Ctrl-C. From another shell
        # (in the same network namespace):  nc 198.18.0.2 7

The handler is an ordinary ``asyncio.start_server`` callback: the stack hands
it a standard ``StreamReader``/``StreamWriter`` pair.
"""

from __future__ import annotations

import argparse
import asyncio

from aionetstack import MemoryLink, Stack, TunLink

KERNEL_SIDE = "198.18.0.1"
STACK_SIDE = "198.18.0.2"
PORT = 7


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send back every byte until the client half-closes, then close."""
    host, port = writer.get_extra_info("peername")
    print(f"server: connection from {host}:{port}")
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()
    print(f"server: {host}:{port} closed")


async def demo_client(peer: Stack) -> None:
    """The in-process peer connects, sends lines and prints what comes back."""
    reader, writer = await peer.open_connection(STACK_SIDE, PORT)
    for line in (b"hello, stack\n", b"the quick brown fox\n", b"bye\n"):
        writer.write(line)
        echoed = await reader.readline()
        print(f"client: sent {line!r}, got {echoed!r}")
    writer.write_eof()
    assert await reader.read() == b"", "the server closes after our EOF"
    writer.close()


async def main(use_tun: bool) -> None:
    if use_tun:
        link = TunLink("aions0", kernel_address=f"{KERNEL_SIDE}/24")
        async with Stack(link, address=f"{STACK_SIDE}/24") as stack:
            server = await stack.start_server(echo, STACK_SIDE, PORT)
            print(f"echo server on {STACK_SIDE}:{PORT}; try: nc {STACK_SIDE} {PORT}", flush=True)
            await server.serve_forever()
        return
    ours, theirs = MemoryLink.pair()
    async with (
        Stack(theirs, address=f"{KERNEL_SIDE}/24") as peer,
        Stack(ours, address=f"{STACK_SIDE}/24") as stack,
    ):
        server = await stack.start_server(echo, STACK_SIDE, PORT)
        await demo_client(peer)
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tun", action="store_true", help="serve on the TUN aions0 (root)")
    try:
        asyncio.run(main(parser.parse_args().tun))
    except KeyboardInterrupt:
        pass

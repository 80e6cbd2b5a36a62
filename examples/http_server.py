"""An aiohttp web application served through aionetstack.

aiohttp's ``web.AppRunner`` builds the server; ``runner.server`` is an asyncio
protocol factory, so it goes to ``stack.create_server`` where it would go to
``loop.create_server``. Nothing in the application knows about the stack.

    python examples/http_server.py
        # No privileges: an in-process peer stack (198.18.0.1) on a memory link
        # sends two GETs over one keep-alive connection, prints the answers and
        # exits 0.

    sudo python examples/http_server.py --tun     # or inside: sudo unshare -n ...
        # Creates the TUN aions0 (kernel side 198.18.0.1/24, stack 198.18.0.2)
        # and serves port 8080 until Ctrl-C. From another shell (in the same
        # network namespace):  curl http://198.18.0.2:8080/hello/you

Needs aiohttp (``pip install aiohttp``).
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from aionetstack import MemoryLink, Stack, TunLink

KERNEL_SIDE = "198.18.0.1"
STACK_SIDE = "198.18.0.2"
PORT = 8080


async def index(request: web.Request) -> web.Response:
    return web.Response(text=f"Hello from aionetstack, {request.remote}!\n")


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": request.match_info["name"], "from": request.remote})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/hello/{name}", hello)
    return app


async def demo_client(peer: Stack) -> None:
    """Two GETs on one HTTP/1.1 keep-alive connection, from the peer stack."""
    reader, writer = await peer.open_connection(STACK_SIDE, PORT)
    for path in ("/", "/hello/world"):
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {STACK_SIDE}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status, *header_lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in header_lines if line)
        body = await reader.readexactly(int(headers["Content-Length"]))
        print(f"GET {path} -> {status}: {body.decode().strip()}")
    writer.close()


async def main(use_tun: bool) -> None:
    runner = web.AppRunner(make_app())
    await runner.setup()
    assert runner.server is not None  # set up: the protocol factory exists
    try:
        if use_tun:
            link = TunLink("aions0", kernel_address=f"{KERNEL_SIDE}/24")
            async with Stack(link, address=f"{STACK_SIDE}/24") as stack:
                server = await stack.create_server(runner.server, STACK_SIDE, PORT)
                print(f"serving on http://{STACK_SIDE}:{PORT}/ (Ctrl-C to stop)", flush=True)
                await server.serve_forever()
            return
        ours, theirs = MemoryLink.pair()
        async with (
            Stack(theirs, address=f"{KERNEL_SIDE}/24") as peer,
            Stack(ours, address=f"{STACK_SIDE}/24") as stack,
        ):
            server = await stack.create_server(runner.server, STACK_SIDE, PORT)
            await demo_client(peer)
            server.close()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tun", action="store_true", help="serve on the TUN aions0 (root)")
    try:
        asyncio.run(main(parser.parse_args().tun))
    except KeyboardInterrupt:
        pass

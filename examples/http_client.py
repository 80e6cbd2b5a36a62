"""A small HTTP/1.1 client: GET a URL through aionetstack with asyncio streams.

``aionetstack.open_connection`` is ``asyncio.open_connection`` on the current
stack (the innermost ``async with Stack(...)``); the rest is plain asyncio.

    python examples/http_client.py
        # No privileges: an in-process peer stack (198.18.0.1) on a memory link
        # runs a tiny web server; the client fetches http://198.18.0.1:8000/,
        # prints the status, headers and body, and exits 0.

    sudo python examples/http_client.py --tun [URL]     # or inside: sudo unshare -n ...
        # Creates the TUN aions0 (kernel side 198.18.0.1/24, stack 198.18.0.2)
        # and fetches URL (default http://198.18.0.1:8000/) from the kernel side.
        # Start a server there first, in the same network namespace, e.g.
        #     python -m http.server 8000
        # (it listens on every address, so it answers on 198.18.0.1 as soon as
        # the TUN exists).

Exit status: 0 for a 2xx answer, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import urlsplit

import aionetstack
from aionetstack import MemoryLink, Stack, TunLink

KERNEL_SIDE = "198.18.0.1"
STACK_SIDE = "198.18.0.2"
DEFAULT_URL = f"http://{KERNEL_SIDE}:8000/"


async def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``url`` (http only) over the current stack: ``(status, headers, body)``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"only http://HOST[:PORT]/PATH URLs are supported, got {url!r}")
    reader, writer = await aionetstack.open_connection(parts.hostname, parts.port or 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    writer.write(
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "User-Agent: aionetstack-example\r\nConnection: close\r\n\r\n".encode()
    )
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *header_lines = head.split("\r\n")
    headers = {}
    for line in filter(None, header_lines):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await read_body(reader, headers)
    writer.close()
    return int(status_line.split()[1]), headers, body


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """The three ways an HTTP/1.1 body ends (RFC 9112 §6.3)."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while size := int((await reader.readline()).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readline()  # the CRLF after each chunk
        return bytes(body)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()  # until the server closes


async def tiny_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The peer's web server for the memory demo: one fixed page per connection."""
    await reader.readuntil(b"\r\n\r\n")
    page = b"<h1>It works!</h1>\n"
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(page), page)
    )
    await writer.drain()
    writer.close()


def show(status: int, headers: dict[str, str], body: bytes) -> int:
    print(f"status: {status}")
    for name, value in headers.items():
        print(f"{name}: {value}")
    print()
    print(body.decode("utf-8", "replace"))
    return 0 if 200 <= status < 300 else 1


async def main(use_tun: bool, url: str) -> int:
    if use_tun:
        link = TunLink("aions0", kernel_address=f"{KERNEL_SIDE}/24")
        async with Stack(link, address=f"{STACK_SIDE}/24"):
            return show(*await fetch(url))
    ours, theirs = MemoryLink.pair()
    async with Stack(theirs, address=f"{KERNEL_SIDE}/24") as peer:
        await peer.start_server(tiny_server, KERNEL_SIDE, 8000)
        async with Stack(ours, address=f"{STACK_SIDE}/24"):
            return show(*await fetch(url))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tun", action="store_true", help="use the TUN aions0 (root)")
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.tun, arguments.url)))

"""Path MTU discovery against a real Linux router: a chain of namespaces.

The test's namespace is the router: the stack's TUN on one side (the kernel
side 198.18.0.1/24, 2001:2::1/64), a veth pair with MTU 1280 to a second
namespace on the other (198.18.1.2, 2001:2:1::2), where a kernel echo server
listens. Its routes advertise a full-sized MSS (``advmss``), as a server on a
1500-byte link behind the narrow hop would. The stack's full-sized segments
meet the 1280-byte link; the router answers with ICMP fragmentation needed or
ICMPv6 packet too big, and the stack's TCP must shrink its segments and
deliver every byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import random
import subprocess
import sys
from collections.abc import Iterator

import pytest

from aionetstack import Stack, TunLink
from aionetstack.testing.netns import Namespace

pytestmark = pytest.mark.tun

_SERVER = r"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
listener = socket.socket(family, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((sys.argv[1], 7007))
listener.listen(1)
print("ready", flush=True)
connection, _ = listener.accept()
while data := connection.recv(1 << 20):
    connection.sendall(data)
connection.shutdown(socket.SHUT_WR)
connection.close()
"""


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


@contextlib.contextmanager
def far_namespace(router: Namespace) -> Iterator[str]:
    """A second namespace behind a 1280-byte veth link; yields its name."""
    name = f"aionsfar-{os.getpid()}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "link", "add", "r0", "mtu", "1280", "type", "veth", "peer", "name", "b0",
           "mtu", "1280", "netns", name)  # fmt: skip
        sh("ip", "addr", "add", "198.18.1.1/24", "dev", "r0")
        sh("ip", "-6", "addr", "add", "2001:2:1::1/64", "dev", "r0", "nodad")
        sh("ip", "link", "set", "r0", "up")
        sh("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        sh("sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1")
        inside = ("ip", "netns", "exec", name)
        sh(*inside, "ip", "link", "set", "lo", "up")
        sh(*inside, "ip", "addr", "add", "198.18.1.2/24", "dev", "b0")
        sh(*inside, "ip", "-6", "addr", "add", "2001:2:1::2/64", "dev", "b0", "nodad")
        sh(*inside, "ip", "link", "set", "b0", "up")
        # advmss: the server advertises a full-sized MSS although its own link is 1280
        # bytes, so the stack's segments only learn the bottleneck from the router's ICMP.
        sh(*inside, "ip", "route", "add", "default", "via", "198.18.1.1", "advmss", "1460")
        sh(*inside, "ip", "-6", "route", "add", "default", "via", "2001:2:1::1", "advmss", "1440")
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offload"])
@pytest.mark.parametrize("family", [4, 6])
async def test_tcp_adapts_to_the_routers_icmp_byte_exact(
    netns: Namespace, family: int, offload: bool
) -> None:
    target = "198.18.1.2" if family == 4 else "2001:2:1::2"
    with far_namespace(netns) as far:
        server = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", far, sys.executable, "-c", _SERVER, target,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            assert await asyncio.wait_for(server.stdout.readline(), 10) == b"ready\n"
            link = TunLink(
                "aionst0", kernel_address=["198.18.0.1/24", "2001:2::1/64"], offload=offload
            )
            async with Stack(
                link, address=["198.18.0.2/24", "2001:2::2/64"],
                gateway=["198.18.0.1", "2001:2::1"],
            ) as stack:  # fmt: skip
                reader, writer = await stack.open_connection(target, 7007)
                data = random.Random(family).randbytes(5 << 20)

                async def send() -> None:
                    writer.write(data)
                    await writer.drain()
                    writer.write_eof()

                task = asyncio.ensure_future(send())
                echoed = await asyncio.wait_for(reader.read(-1), 120)
                await task
                assert hashlib.sha256(echoed).digest() == hashlib.sha256(data).digest()
                assert len(echoed) == len(data)
                tcp = stack.statistics()["tcp"]
                assert tcp["pmtu_mss_lowered"] == 1
                assert stack.core.path_mtu(ipaddress.ip_address(target).packed) == 1280
                writer.close()
        finally:
            if server.returncode is None:
                server.kill()
            await server.wait()

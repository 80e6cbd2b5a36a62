"""IPv6 and fragments against the Linux kernel over a real TUN, each test in its own namespace.

Kernel side 198.18.0.1/24 and 2001:2::1/64 (added ``nodad``), the stack
198.18.0.2 and 2001:2::2; with and without offloads.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aionetstack import Stack, TunLink
from aionetstack.testing.netns import Namespace

pytestmark = pytest.mark.tun

KERNEL4, STACK4 = "198.18.0.1", "198.18.0.2"
KERNEL6, STACK6 = "2001:2::1", "2001:2::2"
PEER_SCRIPT = Path(__file__).with_name("kernel_peer.py")


@pytest.fixture(params=[False, True], ids=["plain", "offload"])
async def stack(netns: Namespace, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    link = TunLink(
        "aionst0", kernel_address=[f"{KERNEL4}/24", f"{KERNEL6}/64"], offload=request.param
    )
    async with Stack(link, address=[f"{STACK4}/24", f"{STACK6}/64"]) as s:
        # The first IPv6 exchange right after the device comes up was lost in about one of
        # six back-to-back runs under load (never in 55 runs alone, nor with a pcap). Until
        # that is explained, each test starts once an IPv6 echo has gone both ways.
        for _ in range(3):
            try:
                await s.ping(KERNEL6, timeout=2)
                break
            except TimeoutError:
                continue
        yield s


async def run(*argv: str, timeout: float = 120) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, output.decode()


def received(output: str) -> tuple[int, int]:
    match = re.search(r"(\d+) packets transmitted, (\d+) received", output)
    assert match, output
    return int(match.group(1)), int(match.group(2))


@pytest.fixture
def ping_tool() -> None:
    if shutil.which("ping") is None:
        pytest.skip("needs iputils ping")


async def test_kernel_ping6_and_stack_ping6(stack: Stack, ping_tool: None) -> None:
    status, output = await run("ping", "-6", "-c", "3", "-i", "0.05", "-W", "5", STACK6)
    assert status == 0 and received(output) == (3, 3), output
    assert stack.statistics()["icmp6"]["echo_replies_sent"] == 3  # the warm-up sent requests
    rtts = [await stack.ping(KERNEL6, timeout=5) for _ in range(3)]  # generous: CI load
    assert all(0 < rtt < 5 for rtt in rtts)


@pytest.mark.parametrize("family", [4, 6])
async def test_ping_s_8000_both_ways(stack: Stack, ping_tool: None, family: int) -> None:
    target = STACK4 if family == 4 else STACK6
    status, output = await run(
        "ping", f"-{family}", "-c", "3", "-i", "0.05", "-W", "2", "-s", "8000", target
    )
    assert status == 0 and received(output) == (3, 3), output
    assert "8008 bytes from" in output
    ip = stack.statistics()["ip" if family == 4 else "ip6"]
    assert ip["reassembled"] == 3 and ip["fragmented"] == 3  # in, and the replies out
    reply = await stack.echo(KERNEL4 if family == 4 else KERNEL6, size=8000, timeout=2)
    assert reply.size == 8008


async def test_tcp_echo_over_ipv6_exact(stack: Stack) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert writer.get_extra_info("peername")[0] == KERNEL6
        while data := await reader.read(1 << 20):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await stack.start_server(echo, host=None, port=7007)
    _, output = await run(
        sys.executable, str(PEER_SCRIPT), "echo-client", STACK6, "7007", "50", "3", timeout=300
    )
    sent, back, count = output.split()
    assert sent == back and int(count) == 50 << 20
    server.close()


@pytest.mark.parametrize("family", [4, 6])
async def test_udp_20_kb_datagrams_both_ways(stack: Stack, family: int) -> None:
    kernel_host, stack_host = (KERNEL4, STACK4) if family == 4 else (KERNEL6, STACK6)
    data = hashlib.sha256(b"udp").digest() * 640  # 20,480 bytes
    inbox: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, payload: bytes, addr: Any) -> None:
            inbox.put_nowait((payload, addr))
            self.transport.sendto(payload[::-1], addr)

    await stack.create_datagram_endpoint(Echo, local_addr=(stack_host, 5353))
    kernel = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6, socket.SOCK_DGRAM)
    kernel.bind((kernel_host, 0))
    kernel.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(kernel, data, (stack_host, 5353))
    payload, addr = await asyncio.wait_for(inbox.get(), 5)
    assert payload == data and addr[0] == kernel_host
    answer = await asyncio.wait_for(loop.sock_recv(kernel, 65536), 5)
    assert answer == data[::-1]
    kernel.close()


async def test_curl_to_aiohttp_over_ipv6(stack: Stack) -> None:
    web = pytest.importorskip("aiohttp.web")
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")

    async def hello(request: Any) -> Any:
        return web.Response(text=f"hello {request.remote}\n")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        await stack.create_server(runner.server, None, 8080)
        status, output = await run(
            "curl", "--silent", "--show-error", "--max-time", "20", "-g",
            f"http://[{STACK6}]:8080/",
        )  # fmt: skip
        assert status == 0 and output == f"hello {KERNEL6}\n", output
    finally:
        await runner.cleanup()

"""The stack on an Ethernet segment: a TAP against the Linux kernel, in a namespace.

Kernel side 198.18.1.1/24 and 2001:2:1::1/64 on the TAP, the stack 198.18.1.2
and 2001:2:1::2 with its own MAC. The kernel must learn that MAC through ARP
and neighbour discovery, pings go both ways, and TCP carries 10 MB exactly.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aionetstack import Stack, TapLink
from aionetstack.testing.netns import Namespace

pytestmark = pytest.mark.tun

TAP = "aionstap0"
MAC = "02:00:5e:10:00:02"
KERNEL4, STACK4 = "198.18.1.1", "198.18.1.2"
KERNEL6, STACK6 = "2001:2:1::1", "2001:2:1::2"
PEER_SCRIPT = Path(__file__).with_name("kernel_peer.py")


@pytest.fixture(params=[False, True], ids=["plain", "offload"])
async def stack(netns: Namespace, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    link = TapLink(
        TAP, kernel_address=[f"{KERNEL4}/24", f"{KERNEL6}/64"], mac=MAC, offload=request.param
    )
    async with Stack(link, address=[f"{STACK4}/24", f"{STACK6}/64"]) as s:
        yield s


async def run(*argv: str, timeout: float = 120) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, output.decode()


def kernel_neighbour(address: str) -> str:
    return subprocess.run(
        ["ip", "neigh", "show", address, "dev", TAP], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("family", [4, 6])
async def test_kernel_learns_our_mac_and_pings_go_both_ways(stack: Stack, family: int) -> None:
    if shutil.which("ping") is None:
        pytest.skip("needs iputils ping")
    target, kernel = (STACK4, KERNEL4) if family == 4 else (STACK6, KERNEL6)
    status, output = await run("ping", f"-{family}", "-c", "3", "-i", "0.1", "-W", "2", target)
    assert status == 0 and " 0% packet loss" in output, output
    assert f"lladdr {MAC}" in kernel_neighbour(target)
    rtts = [await stack.ping(kernel, timeout=5) for _ in range(3)]  # generous: CI load
    assert all(0 < rtt < 5 for rtt in rtts)
    reply = await stack.echo(kernel, size=3000, timeout=2)  # fragmented both ways
    assert reply.size == 3008
    ethernet = stack.statistics()["ethernet"]
    assert ethernet["arp_replies_sent" if family == 4 else "neighbour_advertisements_sent"] >= 1


@pytest.mark.parametrize("family", [4, 6])
async def test_tcp_echo_10_mb_exact(stack: Stack, family: int) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1 << 20):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await stack.start_server(echo, host=None, port=7007)
    target = STACK4 if family == 4 else STACK6
    status, output = await run(
        sys.executable, str(PEER_SCRIPT), "echo-client", target, "7007", "10", "5", timeout=300
    )
    assert status == 0, output
    sent, back, count = output.split()
    assert sent == back and int(count) == 10 << 20
    server.close()

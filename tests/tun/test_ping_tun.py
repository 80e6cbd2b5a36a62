"""Ping both ways between the Linux kernel and the stack over a real TUN.

Each test runs in a network namespace of its own (the ``netns`` fixture):
the kernel side is 198.18.0.1/24 on the TUN, the stack is 198.18.0.2.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
from pathlib import Path

import dpkt
import pytest

from aionetstack import Stack, TunLink
from aionetstack.testing.netns import Namespace
from aionetstack.wire import icmpv4, ipv4

pytestmark = pytest.mark.tun

KERNEL = "198.18.0.1"
STACK = "198.18.0.2"
TUN = "aionst0"
ETH_P_IP = 0x0800


async def kernel_ping(*args: str, timeout: float = 60) -> tuple[int, str]:
    """Run the kernel's ``ping`` (iputils) and return its status and output."""
    process = await asyncio.create_subprocess_exec(
        "ping", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
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
        pytest.skip("needs iputils ping (apt-get install iputils-ping)")


async def test_kernel_ping_gets_replies_from_the_stack(netns: Namespace, ping_tool: None) -> None:
    async with Stack(TunLink(TUN, kernel_address=f"{KERNEL}/24"), address=f"{STACK}/24") as stack:
        status, output = await kernel_ping("-c", "5", "-i", "0.05", "-W", "2", STACK)
        assert status == 0, output
        assert received(output) == (5, 5)
        assert stack.statistics()["icmp"]["echo_replies_sent"] == 5


async def test_stack_ping_gets_replies_from_the_kernel(netns: Namespace) -> None:
    async with Stack(TunLink(TUN, kernel_address=f"{KERNEL}/24"), address=f"{STACK}/24") as stack:
        rtts = [await stack.ping(KERNEL, timeout=2) for _ in range(5)]
        assert all(0 < rtt < 2 for rtt in rtts)
        reply = await stack.echo(KERNEL, size=1000)
        assert (reply.source, reply.size, reply.ttl) == (KERNEL, 1008, 64)


async def test_flood_ping_is_fully_answered(netns: Namespace, ping_tool: None) -> None:
    async with Stack(TunLink(TUN, kernel_address=f"{KERNEL}/24"), address=f"{STACK}/24"):
        status, output = await kernel_ping("-f", "-c", "2000", "-W", "2", STACK)
        assert status == 0, output
        assert received(output) == (2000, 2000)


def TUN_LINK() -> TunLink:
    return TunLink(TUN, kernel_address=f"{KERNEL}/24")


def inject(packets: list[bytes]) -> None:
    """Write raw IP packets into the TUN from the kernel side, bypassing the IP stack."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP)) as raw:
        for packet in packets:
            raw.sendto(packet, (TUN, ETH_P_IP))


def echo_request_bytes(sequence: int) -> bytes:
    header = ipv4.IPv4Header(
        socket.inet_aton(KERNEL), socket.inet_aton(STACK), ipv4.PROTO_ICMP, identification=sequence
    )
    message = icmpv4.build_echo(reply=False, identifier=99, sequence=sequence, payload=bytes(32))
    return ipv4.build_ipv4(header, message)


async def test_malformed_packets_are_dropped_and_counted_while_pings_go_on(
    netns: Namespace, ping_tool: None
) -> None:
    good = echo_request_bytes(1)
    bad_checksum = bytearray(good)
    bad_checksum[10] ^= 0xFF
    truncated = [good[:12], good[:19], good[:40]]  # short of a header; short of total length
    async with Stack(TUN_LINK(), address=f"{STACK}/24") as stack:
        pinger = asyncio.ensure_future(kernel_ping("-c", "20", "-i", "0.02", "-W", "2", STACK))
        for _ in range(10):
            inject([bytes(bad_checksum), *truncated])
            await asyncio.sleep(0.01)
        status, output = await pinger
        await asyncio.sleep(0.05)
        ip = stack.statistics()["ip"]
    assert status == 0 and received(output) == (20, 20), output
    assert ip["dropped_bad_checksum"] == 10
    assert ip["dropped_truncated"] == 30


async def test_pcap_holds_every_echo_request_and_reply(
    netns: Namespace, ping_tool: None, tmp_path: Path
) -> None:
    capture = tmp_path / "ping.pcap"
    async with Stack(TUN_LINK(), address=f"{STACK}/24", pcap=capture) as stack:
        await kernel_ping("-c", "4", "-i", "0.05", "-W", "2", STACK)
        for _ in range(3):
            await stack.ping(KERNEL, timeout=2)
    with capture.open("rb") as handle:
        packets = [dpkt.ip.IP(raw) for _, raw in dpkt.pcap.Reader(handle) if raw[0] >> 4 == 4]
    kinds = [(p.data.type, socket.inet_ntoa(p.src)) for p in packets if p.p == ipv4.PROTO_ICMP]
    assert kinds.count((8, KERNEL)) == 4 and kinds.count((0, STACK)) == 4
    assert kinds.count((8, STACK)) == 3 and kinds.count((0, KERNEL)) == 3
    if shutil.which("tshark"):
        result = subprocess.run(
            ["tshark", "-r", str(capture), "-Y", "icmp", "-T", "fields", "-e", "icmp.type"],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        assert sorted(result.stdout.split()) == ["0"] * 7 + ["8"] * 7

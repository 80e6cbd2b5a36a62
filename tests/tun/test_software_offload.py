"""Software GSO and GRO on ``TunLink(offload=False)``, the kernel as the peer.

A few MB each way between the stack and a kernel socket over a plain 1500-byte
TUN: the stack's TCP hands the link 64 KB super-packets that link/segmentation.py
cuts (the kernel must accept every piece: no checksum or header errors in this
namespace's counters), and the driver merges the kernel's segments per batch
(core/gro.py) before TCP sees them.
"""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from aionetstack import Stack, TunLink
from aionetstack.testing.netns import Namespace

pytestmark = pytest.mark.tun

KERNEL = {4: "198.18.0.1", 6: "2001:2::1"}
STACK = {4: "198.18.0.2", 6: "2001:2::2"}
SIZE = 4 << 20


def snmp() -> dict[str, int]:
    """This namespace's IP and TCP counters (``/proc/net/snmp`` and ``snmp6``)."""
    counters: dict[str, int] = {}
    with open("/proc/thread-self/net/snmp") as table:
        lines = [line.split() for line in table]
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        for name, value in zip(names[1:], values[1:], strict=True):
            counters[names[0].rstrip(":") + name] = int(value)
    with open("/proc/thread-self/net/snmp6") as table:
        for line in table:
            name, value = line.split()
            counters[name] = int(value)
    return counters


@pytest.mark.parametrize("family", [4, 6])
async def test_megabytes_each_way_through_software_gso_and_gro(
    netns: Namespace, family: int
) -> None:
    link = TunLink("aionst0", kernel_address=["198.18.0.1/24", "2001:2::1/64"], offload=False)
    assert link.software_gso and link.mtu == 1500
    upload = random.Random(1).randbytes(SIZE)
    download = random.Random(2).randbytes(SIZE)
    received = hashlib.sha256()
    done = asyncio.get_running_loop().create_future()

    async def kernel_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count = 0
        while chunk := await reader.read(1 << 18):
            received.update(chunk)
            count += len(chunk)
        writer.write(download)
        await writer.drain()
        writer.close()
        done.set_result(count)

    before = snmp()
    server = await asyncio.start_server(kernel_side, KERNEL[family], 7010)
    async with server, Stack(link, address=["198.18.0.2/24", "2001:2::2/64"]) as stack:
        reader, writer = await stack.open_connection(KERNEL[family], 7010)
        writer.write(upload)
        await writer.drain()
        writer.write_eof()
        back = await asyncio.wait_for(reader.read(-1), 60)
        assert await asyncio.wait_for(done, 10) == SIZE
        writer.close()
        statistics = stack.statistics()
    assert received.digest() == hashlib.sha256(upload).digest()
    assert hashlib.sha256(back).digest() == hashlib.sha256(download).digest()
    # Counted work. Out: the core handed over super-packets the link cut (at least
    # upload / 64 KB of them), so far fewer TCP segments than packets written.
    link_counts = statistics["link"]
    assert isinstance(link_counts["software_gso_segments"], int)
    assert isinstance(link_counts["software_gso_packets"], int)
    assert link_counts["software_gso_segments"] >= SIZE // 1448
    assert statistics["tcp"]["segments_out"] < link_counts["software_gso_segments"] // 4
    # In: merged runs, so TCP processed fewer segments than the link read.
    gro = statistics["gro"]
    assert gro["segments_merged"] > 0
    assert statistics["tcp"]["segments_in"] < link_counts["received_packets"]
    # And the kernel took every piece: no checksum or header errors in this namespace.
    after = snmp()
    for name in ("TcpInCsumErrors", "TcpInErrs", "IpInHdrErrors", "Ip6InHdrErrors"):
        assert after[name] == before[name], name
    if family == 4:
        assert after["IpInReceives"] - before["IpInReceives"] >= SIZE // 1448
    else:
        assert after["Ip6InReceives"] - before["Ip6InReceives"] >= SIZE // 1448

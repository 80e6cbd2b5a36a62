"""A multi-queue TUN (IFF_MULTI_QUEUE): several stacks, one per queue, same addresses.

Each test runs in a network namespace of its own. Two queues stand for two
worker processes: the kernel spreads flows over them, each stack serves the
connections that reach its queue, and a connection a stack opens comes back to
its queue (the TUN's flow table remembers the queue that last wrote a packet of
the flow). The workers' ephemeral port ranges are disjoint, so their own
connections never collide.
"""

from __future__ import annotations

import asyncio
import errno
import select
import socket
import subprocess
import time

import pytest

from aionetstack import Stack, StackConfig, TunLink
from aionetstack.testing.netns import Namespace
from aionetstack.wire.ipv4 import PROTO_UDP, parse_ipv4

pytestmark = pytest.mark.tun

KERNEL = "198.18.0.1"
STACK = "198.18.0.2"
TUN = "aionsmq0"
#: Disjoint halves of the default ephemeral range, one per worker.
PORTS = ((32768, 46882), (46883, 60999))


def udp_ports_seen(link: TunLink, port: int, wanted: int, timeout: float = 2.0) -> set[int]:
    """Source ports of the UDP datagrams to ``port`` that reach ``link`` (polling its fd)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    for _ in range(1000):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or len(seen) >= wanted:
            break
        select.select([link.fileno()], [], [], min(remaining, 0.05))
        for packet in link.receive_batch(256, time.monotonic()):
            if packet[0] >> 4 != 4:
                continue  # the kernel's IPv6 chatter
            header, body = parse_ipv4(packet)
            if header.protocol == PROTO_UDP and int.from_bytes(body[2:4], "big") == port:
                seen.add(int.from_bytes(body[0:2], "big"))
    return seen


def test_the_kernel_spreads_flows_over_the_queues(netns: Namespace) -> None:
    first = TunLink(TUN, kernel_address=f"{KERNEL}/24", multi_queue=True)
    second = TunLink(TUN, kernel_address=f"{KERNEL}/24", multi_queue=True)
    try:
        assert first.multi_queue and second.multi_queue
        assert not second.created
        assert "multi_queue" in repr(second)
        senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(40)]
        try:
            for sender in senders:  # 40 flows: 40 source ports
                sender.bind((KERNEL, 0))
                sender.sendto(b"flow", (STACK, 9999))
            ports = {s.getsockname()[1] for s in senders}
        finally:
            for sender in senders:
                sender.close()
        on_first = udp_ports_seen(first, 9999, len(ports), timeout=1.0)
        on_second = udp_ports_seen(second, 9999, len(ports) - len(on_first), timeout=1.0)
    finally:
        first.close()
        second.close()
    # Each flow reached exactly one queue, and both queues got some (the chance that a
    # hash puts 40 flows on one of two queues is 2**-39).
    assert on_first | on_second == ports
    assert not on_first & on_second
    assert on_first and on_second


async def test_two_stacks_on_two_queues_serve_one_port_and_their_own_opens(
    netns: Namespace,
) -> None:
    stacks = [
        Stack(
            TunLink(TUN, kernel_address=f"{KERNEL}/24", multi_queue=True),
            address=f"{STACK}/24",
            config=StackConfig(ephemeral_ports=ports),
        )
        for ports in PORTS
    ]
    served = [0, 0]

    def echo_for(index: int) -> object:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served[index] += 1
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        return echo

    async def kernel_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def one_kernel_client(number: int) -> bytes:
        reader, writer = await asyncio.open_connection(STACK, 5003)
        message = f"connection {number}".encode()
        writer.write(message)
        echoed = await reader.readexactly(len(message))
        writer.close()
        await writer.wait_closed()
        return echoed

    async def one_active_open(stack: Stack, number: int) -> tuple[bytes, int]:
        reader, writer = await stack.open_connection(KERNEL, 6200)
        message = f"open {number}".encode()
        writer.write(message)
        echoed = await reader.readexactly(len(message))
        local_port: int = writer.get_extra_info("sockname")[1]
        writer.close()
        return echoed, local_port

    kernel_server = await asyncio.start_server(kernel_echo, KERNEL, 6200)
    async with stacks[0], stacks[1]:
        for index, stack in enumerate(stacks):
            await stack.start_server(echo_for(index), STACK, 5003)
        # Passive: 30 kernel connections to one port, served by whichever queue got them.
        echoed = await asyncio.wait_for(
            asyncio.gather(*(one_kernel_client(n) for n in range(30))), 20
        )
        assert echoed == [f"connection {n}".encode() for n in range(30)]
        assert sum(served) == 30
        assert served[0] and served[1]
        # Active: each stack opens 10 connections; the answers must come back to it
        # (on the other queue they would meet a stack without that connection: a reset).
        for index, stack in enumerate(stacks):
            opened = await asyncio.wait_for(
                asyncio.gather(*(one_active_open(stack, n) for n in range(10))), 20
            )
            assert [data for data, _ in opened] == [f"open {n}".encode() for n in range(10)]
            low, high = PORTS[index]
            assert all(low <= port <= high for _, port in opened)
        for stack in stacks:
            # Nothing reached the queue of a stack without its connection, and every SYN
            # was preceded by the RST that makes the kernel record the flow's queue.
            assert stack.statistics()["tcp"].get("resets_no_owner", 0) == 0
            assert stack.statistics()["link"]["claimed_flows"] == 10
    kernel_server.close()


def test_multi_queue_on_a_single_queue_tun_is_a_clear_error(netns: Namespace) -> None:
    created = subprocess.run(
        ["ip", "tuntap", "add", "mode", "tun", "name", "aionsmq1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    with pytest.raises(OSError, match="not a multi-queue TUN") as caught:
        TunLink("aionsmq1", multi_queue=True)
    assert caught.value.errno == errno.EINVAL
    assert "IFF_MULTI_QUEUE" in str(caught.value)
    # and the other way round: a single-queue open of a multi-queue device
    keep = TunLink(TUN, kernel_address=f"{KERNEL}/24", multi_queue=True)
    try:
        with pytest.raises(OSError, match="multi_queue=True") as other:
            TunLink(TUN)
        assert other.value.errno == errno.EINVAL
    finally:
        keep.close()

"""TUN offloads with the kernel as the peer: partial checksums completed by the kernel."""

from __future__ import annotations

import asyncio
import errno
import fcntl

import pytest

from aionetstack import Stack, StackConfig, TunLink
from aionetstack.link import tun as tun_module
from aionetstack.testing.netns import Namespace

pytestmark = pytest.mark.tun

KERNEL = "198.18.0.1"
STACK = "198.18.0.2"


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))


async def test_udp_with_partial_checksums_reaches_kernel_sockets_both_ways(
    netns: Namespace,
) -> None:
    link = TunLink("aionst0", kernel_address=f"{KERNEL}/24", offload=True)
    assert link.transmit_offload and link.receive_checksums_partial
    async with Stack(link, address=f"{STACK}/24") as stack:
        loop = asyncio.get_running_loop()
        kernel_transport, kernel = await loop.create_datagram_endpoint(
            Collect, local_addr=(KERNEL, 6000)
        )
        transport, ours = await stack.create_datagram_endpoint(Collect, local_addr=(STACK, 6001))
        payloads = [bytes([n]) * size for n, size in enumerate((1, 100, 1000, 1472))]
        for payload in payloads:
            transport.sendto(payload, (KERNEL, 6000))
        got = [await asyncio.wait_for(kernel.received.get(), 2) for _ in payloads]
        assert got == [(p, (STACK, 6001)) for p in payloads]
        for payload in payloads:  # and the kernel's partial checksums are accepted by us
            kernel_transport.sendto(payload, (STACK, 6001))
        back = [await asyncio.wait_for(ours.received.get(), 2) for _ in payloads]
        assert [data for data, _ in back] == payloads
        kernel_transport.close()
    with open("/proc/thread-self/net/snmp") as snmp:  # this namespace's counters
        udp = [line.split() for line in snmp if line.startswith("Udp:")]
    counters = dict(zip(udp[0][1:], map(int, udp[1][1:]), strict=True))
    assert counters["InCsumErrors"] == 0
    assert counters["InDatagrams"] >= len(payloads)


async def test_tcp_works_when_the_kernel_refuses_offload(
    netns: Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default TunLink on a kernel refusing TUNSETOFFLOAD: a logged fallback, still TCP."""
    real = fcntl.ioctl

    def refuse_offload(fd: int, request: int, arg: object = 0, *rest: object) -> object:
        if request == tun_module.TUNSETOFFLOAD:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, request, arg, *rest)  # type: ignore[call-overload]

    with monkeypatch.context() as patch:
        patch.setattr(fcntl, "ioctl", refuse_offload)
        link = TunLink("aionst0", kernel_address=f"{KERNEL}/24")
    assert link.offload_status == "off (kernel refused TUNSETOFFLOAD: EINVAL)"
    assert not link.receive_checksums_partial

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    kernel_server = await asyncio.start_server(echo, KERNEL, 6100)
    payload = bytes(range(256)) * 800  # 200 KiB: segments in both directions
    async with Stack(link, address=f"{STACK}/24") as stack:
        assert stack.statistics()["link"]["offload"] == link.offload_status
        reader, writer = await stack.open_connection(KERNEL, 6100)
        writer.write(payload)
        writer.write_eof()
        echoed = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    kernel_server.close()
    assert echoed == payload


async def test_at_loopback_mtu_a_bulk_receiver_acks_every_second_super_packet(
    netns: Namespace,
) -> None:
    """``TunLink(mtu=65535)``, as its docstring recommends for clients on this host: the
    kernel's MSS is then about 64 KiB, each super-packet one full-sized segment, and the
    stack owes an ACK for every second one (RFC 5681 §4.2), not one per super-packet.
    One packet per receive batch, so that no batch's ACK covers several packets."""
    link = TunLink("aionst0", kernel_address=f"{KERNEL}/24", mtu=65535)
    assert link.mtu == 65535 and link.transmit_offload
    block = bytes(range(256)) * 256
    blocks = 128  # 8 MiB
    received = bytearray()
    done = asyncio.Event()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1 << 20):
            received.extend(data)
        writer.close()
        done.set()

    config = StackConfig(receive_batch=1)
    async with Stack(link, address=f"{STACK}/24", config=config) as stack:
        await stack.start_server(sink, STACK, 6200)
        _, kernel_writer = await asyncio.open_connection(STACK, 6200)
        before = stack.statistics()
        for _ in range(blocks):
            kernel_writer.write(block)
            await kernel_writer.drain()
        kernel_writer.close()
        await asyncio.wait_for(done.wait(), 20)
        after = stack.statistics()
    assert received == block * blocks
    packets = after["link"]["received_packets"] - before["link"]["received_packets"]
    acks = after["tcp"]["segments_out"] - before["tcp"]["segments_out"]
    assert packets >= blocks  # about one 64 KiB segment per packet
    # At MTU 1500 each super-packet is 44 segments and is acknowledged at once.
    assert acks <= 0.6 * packets, (acks, packets)

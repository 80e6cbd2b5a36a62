"""The asyncio faces in both families over a memory link (DESIGN.md §4's dual stack)."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator

import pytest

from aionetstack import MemoryLink, Stack

NEAR4, FAR4 = "198.18.0.2", "198.18.0.1"
NEAR6, FAR6 = "2001:2::2", "2001:2::1"


@pytest.fixture
async def dual() -> AsyncIterator[tuple[Stack, Stack]]:
    near_link, far_link = MemoryLink.pair(mtu=1500)
    async with (
        Stack(far_link, address=[f"{FAR4}/24", f"{FAR6}/64"], seed=2) as far,
        Stack(near_link, address=[f"{NEAR4}/24", f"{NEAR6}/64"],
              gateway=["198.18.0.1", "2001:2::1"], seed=1) as near,
    ):  # fmt: skip
        yield near, far


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_tcp_over_ipv6_names_are_four_tuples(dual: tuple[Stack, Stack]) -> None:
    near, far = dual
    server = await far.start_server(_echo, host=None, port=8080)
    reader, writer = await near.open_connection(FAR6, 8080)
    peer = writer.get_extra_info("peername")
    host, port, flowinfo, scope = writer.get_extra_info("sockname")
    assert peer == (FAR6, 8080, 0, 0)
    assert (host, flowinfo, scope) == (NEAR6, 0, 0) and 32768 <= port <= 60999
    assert writer.get_extra_info("socket").family == socket.AF_INET6
    payload = bytes(range(256)) * 4096  # 1 MB
    writer.write(payload)
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(-1), 20) == payload
    writer.close()
    server.close()


async def test_server_on_host_none_answers_both_families(dual: tuple[Stack, Stack]) -> None:
    near, far = dual
    server = await far.start_server(_echo, host=None, port=7)
    for host in (FAR4, FAR6):
        reader, writer = await near.open_connection(host, 7)
        writer.write(host.encode())
        assert await asyncio.wait_for(reader.readexactly(len(host)), 5) == host.encode()
        assert writer.get_extra_info("peername")[0] == host
        writer.close()
    server.close()


async def test_udp_over_ipv6_with_fragments(dual: tuple[Stack, Stack]) -> None:
    near, far = dual
    received: asyncio.Queue[tuple[bytes, tuple[object, ...]]] = asyncio.Queue()

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
            received.put_nowait((data, addr))

    sink, _ = await far.create_datagram_endpoint(Sink, local_addr=("::", 5353))
    assert sink.get_extra_info("sockname") == ("::", 5353, 0, 0)
    transport, _ = await near.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=(NEAR6, 4000)
    )
    assert transport.get_extra_info("sockname") == (NEAR6, 4000, 0, 0)
    data = bytes(range(256)) * 80  # 20 KB
    transport.sendto(data, (FAR6, 5353, 0, 0))
    got, addr = await asyncio.wait_for(received.get(), 5)
    assert got == data and addr == (NEAR6, 4000, 0, 0)
    assert far.statistics()["ip6"]["reassembled"] == 1
    transport.close()


async def test_ping_both_families(dual: tuple[Stack, Stack]) -> None:
    near, _ = dual
    assert await near.ping(FAR6) >= 0
    assert await near.ping(FAR4) >= 0
    reply = await near.echo(FAR6, size=8000)  # fragmented both ways
    assert reply.source == FAR6 and reply.size == 8008


async def test_routes_are_readable(dual: tuple[Stack, Stack]) -> None:
    near, _ = dual
    table = [(r.network, r.via, r.kind) for r in near.routes()]
    assert table == [
        ("198.18.0.0/24", None, "connected"),
        ("2001:2::/64", None, "connected"),
        ("0.0.0.0/0", "198.18.0.1", "default"),
        ("::/0", "2001:2::1", "default"),
    ]


async def test_local_addr_of_the_other_family_is_refused(dual: tuple[Stack, Stack]) -> None:
    near, _ = dual
    with pytest.raises(OSError) as caught:
        await near.open_connection(FAR6, 7, local_addr=(NEAR4, 0))
    assert caught.value.errno == errno.EAFNOSUPPORT


async def test_ipv4_only_stack_has_no_ipv6_route() -> None:
    near_link, far_link = MemoryLink.pair(mtu=1500)
    async with Stack(near_link, address="198.18.0.2/24") as near:
        with pytest.raises(OSError) as caught:
            await near.open_connection(FAR6, 7)
        assert caught.value.errno == errno.ENETUNREACH
    far_link.close()

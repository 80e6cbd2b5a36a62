"""Intercept mode on asyncio over a memory link.

The client stack (198.18.0.1) routes 198.19.0.0/16 to the intercepting stack
(198.18.0.2), which terminates the flows with the handlers under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import aionetstack
from aionetstack import InterceptConfig, MemoryLink, Stack, StackConfig, TcpConfig, TcpFlow, UdpFlow

CLIENT = "198.18.0.1"
PROXY = "198.18.0.2"


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Stack, Stack]]:
    """``(client, proxy)``: the client routes 198.19.0.0/16 and 2001:2:1::/48 to the proxy."""
    config = StackConfig(
        tcp=TcpConfig(msl=0.05),
        intercept=InterceptConfig(pending_timeout=0.5, udp_idle_timeout=0.5),
    )
    client_link, proxy_link = MemoryLink.pair(mtu=1500)
    async with (
        Stack(proxy_link, address=[f"{PROXY}/24", "2001:2::2/64"], seed=2, config=config) as proxy,
        Stack(
            client_link, address=[f"{CLIENT}/24", "2001:2::1/64"], seed=1, config=config
        ) as client,
    ):
        client.core.routes.add_route("198.19.0.0/16", PROXY)
        client.core.routes.add_route("2001:2:1::/48", "2001:2::2")
        yield client, proxy


async def echo_streams(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_accepted_flow_has_original_destination(pair: tuple[Stack, Stack]) -> None:
    client, proxy = pair
    seen: list[tuple[tuple[str, int], tuple[str, int], object]] = []

    async def on_tcp(flow: TcpFlow) -> None:
        reader, writer = await flow.accept()
        seen.append((flow.source, flow.destination, writer.get_extra_info("sockname")))
        await echo_streams(reader, writer)

    interception = await proxy.intercept(tcp=on_tcp, networks=["198.19.0.0/16"])
    reader, writer = await client.open_connection("198.19.7.9", 443)
    payload = bytes(range(256)) * 400
    writer.write(payload)
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 10) == payload
    writer.close()
    local = writer.get_extra_info("sockname")
    assert seen == [(local, ("198.19.7.9", 443), ("198.19.7.9", 443))]
    interception.close()
    assert not interception.is_open


async def test_ipv6_flow(pair: tuple[Stack, Stack]) -> None:
    client, proxy = pair

    async def on_tcp(flow: TcpFlow) -> None:
        _, writer = await flow.accept()
        writer.write(repr(flow.destination).encode())
        writer.close()

    await proxy.intercept(tcp=on_tcp, networks=["2001:2:1::/48"])
    reader, writer = await client.open_connection("2001:2:1::77", 8080)
    assert await asyncio.wait_for(reader.read(), 10) == b"('2001:2:1::77', 8080)"
    writer.close()


async def test_reject_is_connection_refused(pair: tuple[Stack, Stack]) -> None:
    client, proxy = pair

    async def on_tcp(flow: TcpFlow) -> None:
        flow.reject()

    await proxy.intercept(tcp=on_tcp, networks=["198.19.0.0/16"])
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(client.open_connection("198.19.0.1", 80), 5)
    assert proxy.statistics()["intercept"]["tcp_flows_rejected"] == 1


async def test_reject_with_icmp_port_unreachable(pair: tuple[Stack, Stack]) -> None:
    client, proxy = pair

    async def on_tcp(flow: TcpFlow) -> None:
        flow.reject(icmp="port-unreachable")

    await proxy.intercept(tcp=on_tcp, networks=["198.19.0.0/16"])
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(client.open_connection("198.19.0.1", 80), 5)
    assert proxy.statistics()["intercept"]["tcp_flows_rejected_icmp"] == 1


async def test_handler_error_resets_only_its_flow(pair: tuple[Stack, Stack]) -> None:
    client, proxy = pair

    async def on_tcp(flow: TcpFlow) -> None:
        if flow.destination[1] == 1:
            raise RuntimeError("boom before deciding")
        reader, writer = await flow.accept()
        if flow.destination[1] == 2:
            raise RuntimeError("boom after accepting")
        await echo_streams(reader, writer)

    await proxy.intercept(tcp=on_tcp, networks=["198.19.0.0/16"])
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(client.open_connection("198.19.0.1", 1), 5)
    reader, writer = await client.open_connection("198.19.0.1", 2)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 5)
    writer.close()
    reader, writer = await client.open_connection("198.19.0.1", 3)
    writer.write(b"still serving")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == b"still serving"
    writer.close()
    assert proxy.statistics()["intercept"]["handler_errors"] == 2


async def test_undecided_handler_rejects(pair: tuple[Stack, Stack]) -> None:
    client, proxy = pair

    async def on_tcp(flow: TcpFlow) -> None:
        return None

    await proxy.intercept(tcp=on_tcp, networks=["198.19.0.0/16"])
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(client.open_connection("198.19.0.1", 80), 5)
    assert proxy.statistics()["intercept"]["tcp_handler_undecided"] == 1


async def test_slow_decision_times_out(pair: tuple[Stack, Stack]) -> None:
    client, proxy = pair
    outcome: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def on_tcp(flow: TcpFlow) -> None:
        await asyncio.sleep(1.0)  # beyond pending_timeout (0.5 s)
        try:
            await flow.accept()
        except TimeoutError as error:
            outcome.set_result(error)

    await proxy.intercept(tcp=on_tcp, networks=["198.19.0.0/16"])
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(client.open_connection("198.19.0.1", 80), 5)
    assert isinstance(await asyncio.wait_for(outcome, 5), TimeoutError)
    assert proxy.statistics()["intercept"]["tcp_pending_timed_out"] == 1


async def test_udp_flow_replies_from_original_destination(pair: tuple[Stack, Stack]) -> None:
    client, proxy = pair
    flows: list[tuple[tuple[str, int], tuple[str, int]]] = []

    async def on_udp(flow: UdpFlow) -> None:
        flows.append((flow.source, flow.destination))
        async for datagram in flow:
            flow.send(datagram.upper())

    await proxy.intercept(udp=on_udp, networks=["198.19.0.0/16"])
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            received.put_nowait((data, addr))

    transport, _ = await client.create_datagram_endpoint(Client, local_addr=(CLIENT, 5000))
    for index in range(3):
        transport.sendto(b"hello %d" % index, ("198.19.1.1", 53))
        reply = await asyncio.wait_for(received.get(), 5)
        assert reply == (b"HELLO %d" % index, ("198.19.1.1", 53))
    transport.sendto(b"other", ("198.19.1.2", 53))
    assert await asyncio.wait_for(received.get(), 5) == (b"OTHER", ("198.19.1.2", 53))
    assert flows == [((CLIENT, 5000), ("198.19.1.1", 53)), ((CLIENT, 5000), ("198.19.1.2", 53))]
    assert proxy.statistics()["intercept"]["udp_flows_current"] == 2
    # Idle flows end (udp_idle_timeout 0.5 s); their handlers' iterations stop.
    deadline = loop.time() + 5
    while proxy.statistics()["intercept"]["udp_flows_current"] and loop.time() < deadline:
        await asyncio.sleep(0.1)
    assert proxy.statistics()["intercept"]["udp_flows_expired"] == 2
    transport.close()


async def test_ping_intercepted_address(pair: tuple[Stack, Stack]) -> None:
    client, proxy = pair

    async def on_tcp(flow: TcpFlow) -> None:
        flow.reject()

    await proxy.intercept(tcp=on_tcp, networks=["198.19.0.0/16"])
    assert await client.ping("198.19.200.1", timeout=2) >= 0


async def test_arguments_checked(pair: tuple[Stack, Stack]) -> None:
    _, proxy = pair

    async def on_tcp(flow: TcpFlow) -> None:
        flow.reject()

    with pytest.raises(ValueError, match="bad network"):
        await proxy.intercept(tcp=on_tcp, networks=["198.19.0.1/16"])
    with pytest.raises(TypeError):
        await proxy.intercept(tcp=on_tcp, networks="198.19.0.0/16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="handler"):
        await proxy.intercept(networks=["198.19.0.0/16"])
    await proxy.intercept(tcp=on_tcp, networks=["198.19.0.0/16"])
    with pytest.raises(ValueError, match="overlaps"):
        await proxy.intercept(tcp=on_tcp, networks=["198.19.3.0/24"])


def test_exports() -> None:
    assert aionetstack.TcpFlow is TcpFlow
    assert aionetstack.UdpFlow is UdpFlow


async def test_udp_handler_error_closes_only_its_flow(pair: tuple[Stack, Stack]) -> None:
    client, proxy = pair

    async def on_udp(flow: UdpFlow) -> None:
        datagram = await flow.receive()
        if datagram == b"boom":
            raise RuntimeError("bad datagram")
        flow.send(datagram)
        async for more in flow:
            flow.send(more)

    await proxy.intercept(udp=on_udp, networks=["198.19.0.0/16"])
    received: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            received.put_nowait(data)

    transport, _ = await client.create_datagram_endpoint(Client, local_addr=(CLIENT, 5001))
    transport.sendto(b"boom", ("198.19.1.1", 53))
    transport.sendto(b"fine", ("198.19.1.2", 53))
    assert await asyncio.wait_for(received.get(), 5) == b"fine"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while proxy.statistics()["intercept"].get("handler_errors", 0) == 0:
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    assert proxy.statistics()["intercept"]["udp_flows_current"] == 1
    # The failed flow is gone: the next datagram to that destination starts a new one.
    transport.sendto(b"again", ("198.19.1.1", 53))
    assert await asyncio.wait_for(received.get(), 5) == b"again"
    transport.close()


async def test_closing_the_interception_resets_pending_and_stops(
    pair: tuple[Stack, Stack],
) -> None:
    client, proxy = pair
    started = asyncio.Event()

    async def on_tcp(flow: TcpFlow) -> None:
        started.set()
        await asyncio.sleep(30)

    interception = await proxy.intercept(tcp=on_tcp, networks=["198.19.0.0/16"])
    attempt = asyncio.ensure_future(client.open_connection("198.19.0.9", 80))
    await asyncio.wait_for(started.wait(), 5)
    interception.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(attempt, 5)
    assert proxy.statistics()["intercept"]["networks_current"] == 0
    with pytest.raises((TimeoutError, OSError)):  # no longer intercepted: dropped
        await asyncio.wait_for(client.open_connection("198.19.0.9", 80), 0.5)

"""UDP datagram endpoints over a memory link: the asyncio DatagramProtocol contract."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from aionetstack import Stack

NEAR = "198.18.0.2"
FAR = "198.18.0.1"


class Recorder(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.errors: asyncio.Queue[Exception] = asyncio.Queue()
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append(("connection_made", transport))

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.calls.append(("datagram_received", data))
        self.received.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.calls.append(("error_received", exc))
        self.errors.put_nowait(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append(("connection_lost", exc))
        self.lost.set_result(exc)


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data.upper(), addr)


async def test_udp_echo_both_ways(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    server, _ = await far.create_datagram_endpoint(Echo, local_addr=(FAR, 7007))
    transport, client = await near.create_datagram_endpoint(Recorder, remote_addr=(FAR, 7007))
    assert transport.get_extra_info("peername") == (FAR, 7007)
    host, port = transport.get_extra_info("sockname")
    assert host == "0.0.0.0" and 32768 <= port <= 60999
    for word in (b"one", b"two", b"three"):
        transport.sendto(word)
    got = [await asyncio.wait_for(client.received.get(), 1) for _ in range(3)]
    assert got == [(b"ONE", (FAR, 7007)), (b"TWO", (FAR, 7007)), (b"THREE", (FAR, 7007))]
    transport.close()
    assert await client.lost is None
    names = [name for name, _ in client.calls]
    assert names == ["connection_made"] + ["datagram_received"] * 3 + ["connection_lost"]
    server.close()


async def test_unconnected_endpoint_sends_anywhere(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    _, sink = await far.create_datagram_endpoint(Recorder, local_addr=(None, 9999))
    transport, _ = await near.create_datagram_endpoint(Recorder, local_addr=(NEAR, 5555))
    transport.sendto(b"hello", (FAR, 9999))
    data, addr = await asyncio.wait_for(sink.received.get(), 1)
    assert (data, addr) == (b"hello", (NEAR, 5555))


async def test_port_unreachable_reaches_error_received(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    transport, client = await near.create_datagram_endpoint(Recorder, remote_addr=(FAR, 4444))
    transport.sendto(b"anyone?")
    error = await asyncio.wait_for(client.errors.get(), 1)
    assert isinstance(error, ConnectionRefusedError)
    assert far.statistics()["udp"]["no_port"] == 1


async def test_datagram_larger_than_the_mtu_arrives_in_fragments(
    stacks: tuple[Stack, Stack],
) -> None:
    near, far = stacks
    _, sink = await far.create_datagram_endpoint(Recorder, local_addr=(None, 4444))
    transport, _ = await near.create_datagram_endpoint(Recorder, remote_addr=(FAR, 4444))
    data = bytes(range(256)) * 80  # 20,480 bytes: 14 fragments at MTU 1500
    transport.sendto(data)
    received, _ = await asyncio.wait_for(sink.received.get(), 1)
    assert received == data
    assert near.statistics()["ip"]["fragments_sent"] == 14
    assert far.statistics()["ip"]["reassembled"] == 1


async def test_datagram_larger_than_ip_allows_is_reported_as_emsgsize(
    stacks: tuple[Stack, Stack],
) -> None:
    near, _ = stacks
    transport, client = await near.create_datagram_endpoint(Recorder, remote_addr=(FAR, 4444))
    transport.sendto(bytes(65508))  # 65,535 - 20 - 8 + 1
    error = client.errors.get_nowait()
    assert isinstance(error, OSError) and error.errno == errno.EMSGSIZE


async def test_address_in_use(stacks: tuple[Stack, Stack]) -> None:
    near, _ = stacks
    await near.create_datagram_endpoint(Recorder, local_addr=(None, 6000))
    with pytest.raises(OSError) as caught:
        await near.create_datagram_endpoint(Recorder, local_addr=(NEAR, 6000))
    assert caught.value.errno == errno.EADDRINUSE


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"local_addr": ("198.18.0.2", 70000)}, ValueError),
        ({"local_addr": "198.18.0.2:80"}, TypeError),
        ({"remote_addr": ("example.test", 53)}, socket.gaierror),
        ({"remote_addr": (FAR, 0)}, ValueError),
        ({"reuse_port": True}, ValueError),
    ],
)
async def test_bad_arguments(
    stacks: tuple[Stack, Stack], kwargs: dict[str, object], error: type
) -> None:
    near, _ = stacks
    with pytest.raises(error):
        await near.create_datagram_endpoint(Recorder, **kwargs)  # type: ignore[arg-type]


async def test_protocol_exception_goes_to_the_loop_handler(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    loop = asyncio.get_running_loop()
    seen: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))

    class Broken(Recorder):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            super().datagram_received(data, addr)
            raise RuntimeError("boom")

    _, broken = await far.create_datagram_endpoint(Broken, local_addr=(None, 8000))
    transport, _ = await near.create_datagram_endpoint(Recorder, remote_addr=(FAR, 8000))
    transport.sendto(b"1")
    transport.sendto(b"2")
    for _ in range(2):
        await asyncio.wait_for(broken.received.get(), 1)
    assert [str(c["exception"]) for c in seen] == ["boom", "boom"]
    loop.set_exception_handler(None)

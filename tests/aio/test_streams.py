"""asyncio streams over the stack, and the module-level API on the current stack."""

from __future__ import annotations

import asyncio

import pytest

import aionetstack
from aionetstack import MemoryLink, Stack, StackConfig, TcpConfig
from aionetstack.aio import api

NEAR = "198.18.0.2"
FAR = "198.18.0.1"
WAIT = 5.0
SMALL = StackConfig(tcp=TcpConfig(send_buffer=16 * 1024, receive_buffer=16 * 1024))


async def test_readline_readexactly_readuntil_across_segments(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    lines = [b"line %d " % i + b"x" * (i * 37 % 3000) + b"\n" for i in range(200)]
    blob = bytes(range(256)) * 100

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for line in lines:
            writer.write(line)
        writer.write(blob)
        writer.write(b"head--MARK--tail")
        writer.write_eof()
        await writer.drain()

    server = await far.start_server(talk, FAR, 8100)
    reader, writer = await near.open_connection(FAR, 8100)
    for line in lines:
        assert await asyncio.wait_for(reader.readline(), WAIT) == line
    assert await asyncio.wait_for(reader.readexactly(len(blob)), WAIT) == blob
    assert await asyncio.wait_for(reader.readuntil(b"--MARK--"), WAIT) == b"head--MARK--"
    assert await asyncio.wait_for(reader.read(), WAIT) == b"tail"
    assert reader.at_eof()
    with pytest.raises(asyncio.IncompleteReadError):
        await reader.readexactly(1)
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), WAIT)
    server.close()


async def test_limit_bounds_readline(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"y" * 5000 + b"\n")
        await writer.drain()

    await far.start_server(talk, FAR, 8101)
    reader, writer = await near.open_connection(FAR, 8101, limit=1024)
    with pytest.raises(ValueError, match="limit"):
        await asyncio.wait_for(reader.readline(), WAIT)
    writer.close()


async def test_server_limit_applies_to_its_readers(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"!")
        except (asyncio.LimitOverrunError, ValueError) as error:
            outcome.set_result(error)
        else:
            outcome.set_result(None)
        writer.close()

    await far.start_server(handle, FAR, 8102, limit=100)
    _, writer = await near.open_connection(FAR, 8102)
    writer.write(b"z" * 300 + b"!")
    assert isinstance(await asyncio.wait_for(outcome, WAIT), asyncio.LimitOverrunError)
    writer.close()


async def test_drain_waits_under_back_pressure() -> None:
    near_link, far_link = MemoryLink.pair(mtu=1500)
    async with (
        Stack(far_link, address=f"{FAR}/24", seed=2, config=SMALL) as far,
        Stack(near_link, address=f"{NEAR}/24", seed=1, config=SMALL) as near,
    ):
        release = asyncio.Event()
        received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await release.wait()
            received.set_result(await reader.read())
            writer.close()

        await far.start_server(slow, FAR, 8103)
        reader, writer = await near.open_connection(FAR, 8103)
        payload = bytes(i * 13 & 0xFF for i in range(400_000))
        writer.write(payload)
        drain = asyncio.create_task(writer.drain())
        await asyncio.sleep(0.05)
        assert not drain.done()  # the peer reads nothing: drain must keep waiting
        assert writer.transport.get_write_buffer_size() > 64 * 1024
        release.set()
        await asyncio.wait_for(drain, WAIT)
        assert writer.transport.get_write_buffer_size() <= 16 * 1024
        writer.write_eof()
        assert await asyncio.wait_for(received, WAIT) == payload
        assert await asyncio.wait_for(reader.read(), WAIT) == b""


async def test_wait_closed_and_peer_reset_surface_to_streams(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    writers: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.put_nowait(writer)

    await far.start_server(keep, FAR, 8104)
    reader, writer = await near.open_connection(FAR, 8104)
    server_writer = await asyncio.wait_for(writers.get(), WAIT)
    server_writer.transport.abort()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), WAIT)
    writer.write(b"after reset")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(writer.drain(), WAIT)
    writer.close()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(writer.wait_closed(), WAIT)


async def test_clean_close_of_a_stream(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks

    async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((await reader.read()).upper())
        writer.close()
        await writer.wait_closed()

    await far.start_server(upper, FAR, 8105)
    reader, writer = await near.open_connection(FAR, 8105)
    assert writer.get_extra_info("peername") == (FAR, 8105)
    assert writer.can_write_eof()
    writer.write(b"quiet please")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), WAIT) == b"QUIET PLEASE"
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), WAIT)
    assert writer.is_closing()


# -- module-level API --------------------------------------------------------------------


async def test_module_level_calls_need_a_current_stack() -> None:
    with pytest.raises(RuntimeError, match="no current aionetstack Stack"):
        await api.open_connection(FAR, 80)
    with pytest.raises(RuntimeError, match="no current aionetstack Stack"):
        await api.ping(FAR)


async def test_module_level_calls_act_on_the_innermost_stack() -> None:
    outer_link, outer_peer_link = MemoryLink.pair(mtu=1500)
    inner_link, inner_peer_link = MemoryLink.pair(mtu=1500)
    names = ("open_connection", "start_server", "create_connection", "create_server",
             "create_datagram_endpoint", "ping")  # fmt: skip
    for name in names:
        # ping stays in aionetstack.aio.api: aionetstack.ping is the CLI module.
        assert (name in aionetstack.__all__) == (name != "ping")
        assert getattr(api, name).__module__ == "aionetstack.aio.api"
    assert aionetstack.open_connection is api.open_connection
    assert aionetstack.start_server is api.start_server

    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"from %s" % writer.get_extra_info("sockname")[0].encode())
        writer.close()

    async with (
        Stack(outer_peer_link, address="198.18.1.1/24", seed=3) as outer_peer,
        Stack(inner_peer_link, address="198.18.2.1/24", seed=4) as inner_peer,
        Stack(outer_link, address="198.18.1.2/24", seed=5) as outer,
    ):
        await outer_peer.start_server(hello, None, 80)
        await inner_peer.start_server(hello, None, 80)
        reader, _ = await aionetstack.open_connection("198.18.1.1", 80)
        assert await asyncio.wait_for(reader.read(), WAIT) == b"from 198.18.1.1"
        async with Stack(inner_link, address="198.18.2.2/24", seed=6) as inner:
            assert aionetstack.current_stack() is inner
            reader, _ = await api.open_connection("198.18.2.1", 80)
            assert await asyncio.wait_for(reader.read(), WAIT) == b"from 198.18.2.1"
            transport, _ = await api.create_connection(asyncio.Protocol, "198.18.2.1", 80)
            assert transport.get_extra_info("sockname")[0] == "198.18.2.2"
            transport.close()
            server = await api.start_server(hello, None, 0)
            assert server in inner._servers
            server.close()
            tcp_server = await api.create_server(asyncio.Protocol, None, 0)
            assert tcp_server in inner._servers
            tcp_server.close()
            udp, _ = await api.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=("198.18.2.1", 9)
            )
            assert udp.get_extra_info("sockname") is not None
            udp.close()
            assert await api.ping("198.18.2.1", timeout=WAIT) >= 0
            with pytest.raises(OSError):
                await api.ping("198.18.1.1", timeout=0.5)  # only the outer stack reaches it
        assert aionetstack.current_stack() is outer
        assert await api.ping("198.18.1.1", timeout=WAIT) >= 0

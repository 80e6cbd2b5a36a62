"""The transport contract over a lossy, reordering, duplicating memory link (fixed seeds)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator

import pytest

from aionetstack import Impairment, MemoryLink, Stack, StackConfig, TcpConfig

NEAR = "198.18.0.2"
FAR = "198.18.0.1"
WAIT = 8.0  # retransmission timeouts take real time here
SEEDS = [11, 12]


@contextlib.asynccontextmanager
async def impaired_stacks(
    seed: int, config: StackConfig | None = None
) -> AsyncIterator[tuple[Stack, Stack]]:
    impairment = Impairment(loss=0.02, reorder=0.02, duplicate=0.01, delay=0.002, seed=seed)
    near_link, far_link = MemoryLink.pair(mtu=1500, impairment=impairment)
    async with (
        Stack(far_link, address=f"{FAR}/24", seed=seed + 1, config=config) as far,
        Stack(near_link, address=f"{NEAR}/24", seed=seed + 2, config=config) as near,
    ):
        yield near, far


def blob(size: int, seed: int) -> bytes:
    """Pseudo-random bytes from a seed (SHA-256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d:%d" % (seed, counter)).digest()
        counter += 1
    return bytes(out[:size])


async def exchange(
    near: Stack, far: Stack, port: int, *, simultaneous: bool, seed: int, wait: float = WAIT
) -> None:
    """400 kB up, 300 kB down, byte-exact; the server answers while or after it reads."""
    upstream, downstream = blob(400_000, seed), blob(300_000, seed + 100)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if simultaneous:
            writer.write(downstream)
        received = await reader.read()
        if not simultaneous:
            writer.write(downstream)
        writer.write(hashlib.sha256(received).digest())
        writer.close()

    await far.start_server(serve, FAR, port)
    reader, writer = await near.open_connection(FAR, port)
    writer.write(upstream)
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), wait)
    assert data[:-32] == downstream
    assert data[-32:] == hashlib.sha256(upstream).digest()
    writer.close()
    assert near.statistics()["tcp"]["segments_retransmitted"] > 0  # the loss really happened


@pytest.mark.parametrize("seed", SEEDS)
async def test_bulk_transfer_both_ways_is_byte_exact(seed: int) -> None:
    async with impaired_stacks(seed) as (near, far):
        await exchange(near, far, 9000, simultaneous=False, seed=seed)


async def test_simultaneous_bulk_transfer_both_ways() -> None:
    async with impaired_stacks(SEEDS[0]) as (near, far):
        await exchange(near, far, 9003, simultaneous=True, seed=SEEDS[0], wait=3.0)


@pytest.mark.parametrize("seed", SEEDS)
async def test_half_close_under_impairment(seed: int) -> None:
    async with impaired_stacks(seed) as (near, far):
        request = blob(50_000, seed)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            body = await reader.read()  # until the client's FIN
            assert reader.at_eof()
            writer.write(b"%d\n" % len(body))
            writer.write(hashlib.sha256(body).digest())
            writer.write_eof()
            await writer.drain()
            writer.close()

        await far.start_server(serve, FAR, 9001)
        reader, writer = await near.open_connection(FAR, 9001)
        writer.write(request)
        writer.write_eof()
        assert await asyncio.wait_for(reader.readline(), WAIT) == b"50000\n"
        assert await asyncio.wait_for(reader.read(), WAIT) == hashlib.sha256(request).digest()
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), WAIT)


class Paused(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool:
        self.done.set_result(None)
        return False


class Writer(asyncio.Protocol):
    def __init__(self) -> None:
        self.paused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.resumed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def pause_writing(self) -> None:
        if not self.paused.done():
            self.paused.set_result(None)

    def resume_writing(self) -> None:
        if not self.resumed.done():
            self.resumed.set_result(None)


@pytest.mark.parametrize("seed", SEEDS)
async def test_flow_control_under_impairment(seed: int) -> None:
    config = StackConfig(tcp=TcpConfig(send_buffer=16 * 1024, receive_buffer=16 * 1024))
    async with impaired_stacks(seed, config) as (near, far):
        accepted: asyncio.Queue[Paused] = asyncio.Queue()

        def factory() -> Paused:
            protocol = Paused()
            accepted.put_nowait(protocol)
            return protocol

        await far.create_server(factory, FAR, 9002)
        writer = Writer()
        transport, _ = await asyncio.wait_for(
            near.create_connection(lambda: writer, FAR, 9002), WAIT
        )
        server = await asyncio.wait_for(accepted.get(), WAIT)
        payload = blob(200_000, seed)
        transport.write(payload)
        transport.write_eof()
        await asyncio.wait_for(writer.paused, WAIT)
        assert server.data == b""  # reading is paused: nothing reached the protocol
        assert server.transport is not None
        server.transport.resume_reading()
        await asyncio.wait_for(server.done, WAIT)
        assert server.data == payload
        assert writer.resumed.done()

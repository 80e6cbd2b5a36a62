"""Faults under a running stack: the link going down and up, the link deleted while in
use, and a graceful close of the whole stack with a time limit (SO_LINGER-like).

The TUN versions (real errno values from the kernel) are in tests/tun/test_tun_faults.py.
"""

from __future__ import annotations

import asyncio
import errno

import pytest

from aionetstack import MemoryLink, Stack
from aionetstack.testing.faults import FaultyLink

NEAR = "198.18.0.2"
FAR = "198.18.0.1"


async def echo_pair(link: FaultyLink, far_link: MemoryLink) -> tuple[Stack, Stack]:
    near = Stack(link, address=f"{NEAR}/24", seed=1)  # type: ignore[arg-type]
    far = Stack(far_link, address=f"{FAR}/24", seed=2)
    near.start()
    far.start()
    return near, far


async def test_a_link_down_then_up_loses_nothing() -> None:
    """Down for a while (packets dropped and counted, as a TUN's EIO), then up: TCP
    retransmits and the transfer completes intact."""
    inner, far_link = MemoryLink.pair(mtu=1500)
    link = FaultyLink(inner)
    near, far = await echo_pair(link, far_link)
    received = bytearray()
    done = asyncio.Event()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.extend(await reader.read())
        writer.close()
        done.set()

    await far.start_server(sink, port=9)
    _, writer = await near.open_connection(FAR, 9)
    link.down()
    writer.write(b"a" * 100_000)
    await asyncio.sleep(0.3)  # the link stays down for a while (the fault, not a wait for it)
    assert link.send_link_down > 0
    link.up()
    writer.write_eof()
    await asyncio.wait_for(done.wait(), 30)
    assert bytes(received) == b"a" * 100_000
    await near.aclose()
    await far.aclose()


async def test_a_deleted_link_fails_every_connection_with_enetdown_and_never_spins() -> None:
    inner, far_link = MemoryLink.pair(mtu=1500)
    link = FaultyLink(inner)
    near, far = await echo_pair(link, far_link)

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    await far.start_server(hold, port=9)
    reader, writer = await near.open_connection(FAR, 9)
    link.gone()
    writer.write(b"x")  # the next send finds the device gone
    with pytest.raises(OSError) as caught:
        await asyncio.wait_for(reader.read(), 5)
    assert caught.value.errno == errno.ENETDOWN
    stats = near.statistics()
    assert stats["driver"]["link_errors"] == 1
    assert stats["tcp"]["connections_current"] == 0
    with pytest.raises(OSError) as refused:
        await near.open_connection(FAR, 9)
    assert refused.value.errno == errno.ENETDOWN
    await near.aclose()
    await far.aclose()


async def test_aclose_with_linger_delivers_what_was_written() -> None:
    """aclose(linger=...) sends what applications wrote, then FIN; the peer reads it all
    and a clean EOF, not a reset."""
    near_link, far_link = MemoryLink.pair(mtu=1500)
    async with Stack(far_link, address=f"{FAR}/24", seed=2) as far:
        received = asyncio.get_running_loop().create_future()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.set_result(await reader.read())

        await far.start_server(sink, port=9)
        near = Stack(near_link, address=f"{NEAR}/24", seed=1)
        near.start()
        _, writer = await near.open_connection(FAR, 9)
        writer.write(b"w" * 500_000)
        await near.aclose(linger=30)
        assert await asyncio.wait_for(received, 30) == b"w" * 500_000
        assert near.statistics()["driver"]["closed_drained"] == 1


async def test_aclose_resets_what_the_linger_time_could_not_drain() -> None:
    """The peer never reads (its window closes): after the linger time the connection is
    reset (counted closed_reset) and aclose returns."""
    near_link, far_link = MemoryLink.pair(mtu=1500)
    async with Stack(far_link, address=f"{FAR}/24", seed=2) as far:
        accepted = asyncio.Event()
        hold: list[asyncio.StreamWriter] = []

        async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.transport.pause_reading()
            hold.append(writer)
            accepted.set()

        await far.start_server(stall, port=9)
        near = Stack(near_link, address=f"{NEAR}/24", seed=1, close_timeout=0.3)
        near.start()
        _, writer = await near.open_connection(FAR, 9)
        await accepted.wait()
        writer.write(b"w" * 20_000_000)
        await near.aclose()  # close_timeout
        stats = near.statistics()["driver"]
        assert stats["closed_reset"] == 1 and stats["closed_drained"] == 0


def test_close_timeout_and_linger_must_not_be_negative() -> None:
    near_link, _ = MemoryLink.pair(mtu=1500)
    with pytest.raises(ValueError, match="close_timeout"):
        Stack(near_link, address=f"{NEAR}/24", close_timeout=-1)

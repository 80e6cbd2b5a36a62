"""MemoryLink: an in-process pair that behaves like a device an event loop can watch."""

from __future__ import annotations

import asyncio
import os
import select

import pytest

from aionetstack.link.base import Link
from aionetstack.link.impair import Impairment
from aionetstack.link.memory import MemoryLink


def readable(link: MemoryLink) -> bool:
    ready, _, _ = select.select([link.fileno()], [], [], 0)
    return bool(ready)


def packet(n: int, size: int = 100) -> bytes:
    return n.to_bytes(4, "big") + bytes(size - 4)


def test_pair_round_trip_both_ways() -> None:
    a, b = MemoryLink.pair()
    a.send(b"from a", 0.0)
    b.send(b"from b", 0.0)
    assert b.receive_batch(10, 0.0) == [b"from a"]
    assert a.receive_batch(10, 0.0) == [b"from b"]
    assert a.receive_batch(10, 0.0) == []


def test_ends_satisfy_the_link_protocol() -> None:
    a, b = MemoryLink.pair(mtu=9000)
    assert isinstance(a, Link)
    assert a.mtu == b.mtu == 9000
    assert a.receive_checksums_partial is True  # a perfect wire offloads by default
    assert a.get_timer() is None


def test_offload_is_on_for_a_perfect_wire_and_off_with_impairment() -> None:
    a, b = MemoryLink.pair(mtu=1500)
    assert (a.transmit_offload, a.receive_checksums_partial, a.max_packet_size) == (
        True,
        True,
        65535,
    )
    a.send_offloaded(bytes(60000), 1448, 0.0)
    assert b.receive_batch(8, 0.0) == [bytes(60000)]
    a.send(bytes(1501), 0.0)  # plain sends still respect the MTU
    assert b.receive_batch(8, 0.0) == []
    c, d = MemoryLink.pair(impairment=Impairment(loss=0.1, seed=1))
    assert (c.transmit_offload, d.receive_checksums_partial, c.max_packet_size) == (
        False,
        False,
        1500,
    )
    with pytest.raises(ValueError, match="without offload"):
        c.send_offloaded(bytes(100), 0, 0.0)
    with pytest.raises(ValueError, match="cannot be combined"):
        MemoryLink.pair(impairment=Impairment(loss=0.1, seed=1), offload=True)
    e, _ = MemoryLink.pair(offload=False)
    assert (e.transmit_offload, e.max_packet_size) == (False, 1500)


def test_fd_is_readable_exactly_when_packets_wait() -> None:
    a, b = MemoryLink.pair()
    assert not readable(b)
    a.send(packet(1), 0.0)
    a.send(packet(2), 0.0)
    assert readable(b)
    assert not readable(a)
    assert b.receive_batch(10, 0.0) == [packet(1), packet(2)]
    assert not readable(b)


def test_a_batch_stops_at_the_limit_and_the_fd_stays_readable() -> None:
    a, b = MemoryLink.pair()
    for n in range(5):
        a.send(packet(n), 0.0)
    assert b.receive_batch(2, 0.0) == [packet(0), packet(1)]
    assert readable(b)
    assert b.receive_batch(10, 0.0) == [packet(2), packet(3), packet(4)]
    assert not readable(b)


def test_oversize_packets_are_dropped_and_counted() -> None:
    a, b = MemoryLink.pair(mtu=1500)
    a.send(bytes(1501), 0.0)
    a.send(bytes(1500), 0.0)
    assert b.receive_batch(10, 0.0) == [bytes(1500)]
    stats = a.statistics()
    assert stats["send_dropped_oversize"] == 1
    assert stats["sent_packets"] == 1
    assert stats["sent_bytes"] == 1500


def test_statistics_count_both_ends() -> None:
    a, b = MemoryLink.pair()
    for n in range(3):
        a.send(packet(n, size=60), 0.0)
    b.receive_batch(10, 0.0)
    assert a.statistics()["sent_packets"] == 3
    assert a.statistics()["sent_bytes"] == 180
    assert b.statistics()["received_packets"] == 3
    assert b.statistics()["received_bytes"] == 180
    assert b.statistics()["in_queue_dropped"] == 0


def test_bytearray_and_memoryview_are_copied_on_send() -> None:
    a, b = MemoryLink.pair()
    data = bytearray(b"abcd")
    a.send(memoryview(data), 0.0)
    data[0] = ord("X")
    assert b.receive_batch(1, 0.0) == [b"abcd"]


# -- impairment ---------------------------------------------------------------------------


def test_delayed_packets_wake_the_reader_then_wait_for_their_time() -> None:
    a, b = MemoryLink.pair(impairment=Impairment(delay=0.1))
    a.send(b"late", 5.0)
    # The reader is woken so its driver can arm a timer ...
    assert readable(b)
    assert b.receive_batch(10, 5.05) == []
    assert not readable(b)
    assert b.get_timer() == pytest.approx(5.1)
    # ... and the packet is handed over when it is due.
    assert b.receive_batch(10, 5.1) == [b"late"]
    assert b.get_timer() is None


def test_one_impairment_gives_each_direction_its_own_stream() -> None:
    a, b = MemoryLink.pair(impairment=Impairment(loss=0.5, seed=9))
    for n in range(200):
        a.send(packet(n), 0.0)
        b.send(packet(n), 0.0)
    to_b = b.receive_batch(1000, 0.0)
    to_a = a.receive_batch(1000, 0.0)
    assert 50 < len(to_b) < 150
    assert 50 < len(to_a) < 150
    assert to_a != to_b
    assert b.statistics()["in_lost"] == 200 - len(to_b)


def test_same_seed_same_delivery() -> None:
    def run() -> list[bytes]:
        a, b = MemoryLink.pair(impairment=Impairment(loss=0.3, reorder=0.2, seed=1))
        for n in range(300):
            a.send(packet(n), n * 0.001)
        received = b.receive_batch(1000, 1.0)
        a.close()
        b.close()
        return received

    assert run() == run()


def test_per_direction_impairments() -> None:
    a, b = MemoryLink.pair(impairment=(Impairment(loss=1.0), None))
    a.send(b"lost", 0.0)
    b.send(b"kept", 0.0)
    assert b.receive_batch(10, 0.0) == []
    assert a.receive_batch(10, 0.0) == [b"kept"]
    assert b.statistics()["in_lost"] == 1
    assert "in_lost" not in a.statistics()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mtu": 0}, ValueError, "mtu"),
        ({"mtu": 70000}, ValueError, "mtu"),
        ({"mtu": "1500"}, TypeError, "mtu"),
        ({"mtu": True}, TypeError, "mtu"),
        ({"impairment": "lossy"}, TypeError, "impairment"),
        ({"impairment": (Impairment(),)}, TypeError, "impairment"),
        ({"impairment": (Impairment(), 0.1)}, TypeError, "impairment"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        MemoryLink.pair(**kwargs)  # type: ignore[arg-type]


# -- closing ----------------------------------------------------------------------------------


def test_close_releases_the_fd_and_the_peer_counts_drops() -> None:
    a, b = MemoryLink.pair()
    fd = b.fileno()
    b.close()
    b.close()  # idempotent
    assert b.closed
    with pytest.raises(OSError):
        os.fstat(fd)
    with pytest.raises(ValueError, match="closed"):
        b.fileno()
    with pytest.raises(ValueError, match="closed"):
        b.send(b"x", 0.0)
    with pytest.raises(ValueError, match="closed"):
        b.receive_batch(1, 0.0)
    a.send(b"into the void", 0.0)
    assert a.statistics()["send_dropped_closed"] == 1
    assert b.get_timer() is None
    a.close()


# -- on a real event loop --------------------------------------------------------------------------


async def test_an_event_loop_reader_is_woken_by_the_peer() -> None:
    loop = asyncio.get_running_loop()
    a, b = MemoryLink.pair()
    arrived: asyncio.Future[list[bytes]] = loop.create_future()

    def on_readable() -> None:
        packets = b.receive_batch(16, loop.time())
        if packets and not arrived.done():
            arrived.set_result(packets)

    loop.add_reader(b.fileno(), on_readable)
    try:
        loop.call_soon(a.send, b"ping", loop.time())
        assert await asyncio.wait_for(arrived, timeout=2.0) == [b"ping"]
    finally:
        loop.remove_reader(b.fileno())
        a.close()
        b.close()


async def test_a_loop_driver_gets_delayed_packets_on_time_via_the_timer() -> None:
    """The driver's pattern: wake on the fd, drain, then sleep until ``get_timer()``."""
    loop = asyncio.get_running_loop()
    delay = 0.05
    a, b = MemoryLink.pair(impairment=Impairment(delay=delay))
    arrivals: list[tuple[float, bytes]] = []
    done: asyncio.Future[None] = loop.create_future()
    timer: list[asyncio.TimerHandle] = []

    def pump() -> None:
        now = loop.time()
        arrivals.extend((now, p) for p in b.receive_batch(16, now))
        if len(arrivals) == 2 and not done.done():
            done.set_result(None)
        for handle in timer:
            handle.cancel()
        timer.clear()
        deadline = b.get_timer()
        if deadline is not None:
            timer.append(loop.call_at(deadline, pump))

    loop.add_reader(b.fileno(), pump)
    try:
        sent_at = loop.time()
        a.send(b"one", sent_at)
        a.send(b"two", sent_at)
        await asyncio.wait_for(done, timeout=2.0)
    finally:
        loop.remove_reader(b.fileno())
        for handle in timer:
            handle.cancel()
        a.close()
        b.close()
    assert [p for _, p in arrivals] == [b"one", b"two"]
    assert all(when >= sent_at + delay for when, _ in arrivals)

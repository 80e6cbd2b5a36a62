"""The reassembler (RFC 791 §3.2, RFC 8200 §4.5, RFC 5722): properties and bounds."""

from __future__ import annotations

import random
import struct

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.core.events import EchoReplyReceived
from aionetstack.core.fragments import (
    DEFAULT_MEMORY_BUDGET,
    MAX_DATAGRAM,
    Reassembled,
    Reassembler,
)
from aionetstack.core.stack import StackCore
from aionetstack.wire import icmpv4, ipv4, ipv6

NOW = 10.0


def cut(data: bytes, sizes: list[int]) -> list[tuple[int, bool, bytes]]:
    """Split ``data`` into fragments whose sizes are multiples of 8 (but the last)."""
    pieces: list[tuple[int, bool, bytes]] = []
    offset = 0
    index = 0
    while offset < len(data):
        size = sizes[index % len(sizes)] * 8
        index += 1
        piece = data[offset : offset + size]
        pieces.append((offset, offset + size < len(data), piece))
        offset += size
    return pieces


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=1, max_size=4000),
    st.lists(st.integers(1, 64), min_size=1, max_size=8),
    st.randoms(use_true_random=False),
    st.integers(0, 3),
)
def test_any_fragmentation_in_any_order_with_duplicates_reassembles_exactly(
    data: bytes, sizes: list[int], shuffle: random.Random, duplicates: int
) -> None:
    fragments = cut(data, sizes)
    sent = fragments + [shuffle.choice(fragments) for _ in range(duplicates)]
    shuffle.shuffle(sent)
    reassembler = Reassembler(30.0)
    results = [
        reassembler.add("k", offset, more, piece, NOW, first="hdr" if offset == 0 else None)
        for offset, more, piece in sent
    ]
    done = [r for r in results if r is not None]
    if len(fragments) == 1 and duplicates:
        # A lone fragment completes at once; its duplicates start a new datagram.
        assert done[0] == Reassembled("hdr", data)
        return
    assert done == [Reassembled("hdr", data)]
    assert reassembler.used <= 256 * len(reassembler)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=64, max_size=2000),
    st.lists(st.integers(1, 16), min_size=1, max_size=6),
    st.randoms(use_true_random=False),
    st.integers(1, 7),
)
def test_an_overlapping_fragment_drops_the_whole_datagram(
    data: bytes, sizes: list[int], shuffle: random.Random, shift: int
) -> None:
    fragments = cut(data, sizes)
    if len(fragments) < 2:
        return
    offset = fragments[1][0]
    overlapping = (offset - 8, True, bytes(8 * shift + 8))  # straddles fragments 0 and 1
    sent = [*fragments[:1], overlapping, *fragments[1:]]
    reassembler = Reassembler(30.0)
    results = [reassembler.add("k", o, m, p, NOW) for o, m, p in sent]
    assert all(r is None for r in results)
    assert reassembler.stats["dropped_overlap"] == 1
    assert reassembler.used == 256  # only the tombstone until the deadline
    reassembler.expire(NOW + 30)
    assert reassembler.used == 0 and len(reassembler) == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 8191), st.integers(1, 180)),
                min_size=1, max_size=400))  # fmt: skip
def test_a_fragment_flood_stays_within_the_memory_budget(
    floods: list[tuple[int, int, int]],
) -> None:
    budget = 256 * 1024
    reassembler = Reassembler(30.0, budget=budget, max_datagrams=64)
    now = NOW
    for key, unit, size in floods:
        now += 0.1
        reassembler.add(key, unit * 8, True, bytes(size * 8), now)
        assert reassembler.used <= budget
        assert len(reassembler) <= 64
    reassembler.expire(now + 31)
    assert reassembler.used == 0
    drops = sum(v for k, v in reassembler.stats.items() if k.startswith("dropped_"))
    assert reassembler.stats["fragments_received"] == len(floods) >= drops


def test_timeout_reports_whether_the_first_fragment_came() -> None:
    reassembler = Reassembler(60.0)
    reassembler.add("a", 0, True, bytes(8), NOW, first="first")
    reassembler.add("b", 8, True, bytes(8), NOW + 1)
    assert reassembler.get_timer() == NOW + 60
    assert reassembler.expire(NOW + 59) == []
    [a] = reassembler.expire(NOW + 60)
    assert (a.key, a.first) == ("a", "first")
    [b] = reassembler.expire(NOW + 61)
    assert (b.key, b.first) == ("b", None)
    assert reassembler.get_timer() is None and reassembler.used == 0


def test_too_long_datagram_and_misaligned_fragments_are_refused() -> None:
    reassembler = Reassembler(30.0)
    assert reassembler.add("k", MAX_DATAGRAM - 7, False, bytes(8), NOW) is None
    assert reassembler.add("j", 0, True, bytes(9), NOW) is None
    assert reassembler.stats["dropped_oversized_datagram"] == 1
    assert reassembler.stats["dropped_bad_fragment_length"] == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Reassembler(0)


# -- through StackCore (IPv4) ------------------------------------------------------------

US = bytes([198, 18, 0, 2])
PEER = bytes([198, 18, 0, 1])


def test_ping_s_8000_both_ways_between_two_cores() -> None:
    near = StackCore(["198.18.0.2/24"], rng=random.Random(1))
    far = StackCore(["198.18.0.1/24"], rng=random.Random(2))
    payload = bytes(range(250)) * 32
    near.send_echo_request(PEER, 9, 1, payload)
    fragments = near.packets_to_send(NOW)
    assert len(fragments) == 6
    for fragment in fragments[::-1]:
        far.receive_packet(fragment, NOW)
    for reply in far.packets_to_send(NOW):
        near.receive_packet(reply, NOW)
    event = near.next_event()
    assert isinstance(event, EchoReplyReceived) and event.payload == payload
    assert far.statistics()["ip"]["reassembled"] == 1


def test_ipv4_tiny_fragments_are_refused() -> None:
    core = StackCore(["198.18.0.2/24"], rng=random.Random(1))
    first = ipv4.IPv4Header(PEER, US, ipv4.PROTO_TCP, identification=5, dont_fragment=False,
                            more_fragments=True)  # fmt: skip
    core.receive_packet(ipv4.build_ipv4(first, bytes(8)), NOW)  # under a TCP header
    second = ipv4.IPv4Header(PEER, US, ipv4.PROTO_TCP, identification=6, dont_fragment=False,
                             fragment_offset=8)  # fmt: skip
    core.receive_packet(ipv4.build_ipv4(second, bytes(16)), NOW)  # RFC 1858 §3.2
    ip = core.statistics()["ip"]
    assert ip["dropped_tiny_first_fragment"] == 1 and ip["dropped_tiny_fragment_offset"] == 1


def test_ipv4_reassembly_timeout_sends_time_exceeded() -> None:
    near = StackCore(["198.18.0.2/24"], rng=random.Random(1))
    far = StackCore(["198.18.0.1/24"], rng=random.Random(2))
    near.send_echo_request(PEER, 9, 1, bytes(3000))
    first, _, _ = near.packets_to_send(NOW)
    far.receive_packet(first, NOW)
    far.handle_timer(NOW + 30)
    [error] = far.packets_to_send(NOW + 30)
    ip = dpkt.ip.IP(error)
    assert (ip.data.type, ip.data.code) == (icmpv4.TYPE_TIME_EXCEEDED, 1)
    assert bytes(ip.data.data.data)[:20] == first[:20]


@pytest.mark.parametrize("family", [4, 6])
def test_a_fragment_flood_through_the_stack_is_bounded_and_counted(family: int) -> None:
    """5 MB of never-completing fragments: at most the 4 MB budget is held, the rest counted."""
    core = StackCore(["198.18.0.2/24", "2001:2::2/64"], rng=random.Random(1))
    us6 = bytes.fromhex("20010002000000000000000000000002")
    peer6 = bytes.fromhex("20010002000000000000000000000001")
    chunk = bytes(1000)
    for n in range(5000):
        ident, offset = n % 600, (n // 600) * 1000 + 1000
        if family == 4:
            header = ipv4.IPv4Header(PEER, US, ipv4.PROTO_UDP, identification=ident,
                                     dont_fragment=False, more_fragments=True,
                                     fragment_offset=offset)  # fmt: skip
            core.receive_packet(ipv4.build_ipv4(header, chunk), NOW + n * 0.001)
        else:
            fragment = struct.pack("!BBHI", ipv4.PROTO_UDP, 0, offset | 1, ident) + chunk
            header6 = ipv6.IPv6Header(peer6, us6, ipv6.NEXT_HEADER_FRAGMENT)
            core.receive_packet(ipv6.build_ipv6(header6, fragment), NOW + n * 0.001)
    held = core.fragment_statistics()["ipv4" if family == 4 else "ipv6"]
    assert held["bytes_held"] <= DEFAULT_MEMORY_BUDGET
    assert held["datagrams_in_progress"] == 600
    assert held["fragments_received"] == 5000
    assert held["dropped_memory_budget"] > 0
    assert held["bytes_held"] + held["dropped_memory_budget"] * 1000 >= 5000 * 1000
    layer = core.statistics()["ip" if family == 4 else "ip6"]
    assert layer["fragments_dropped_memory_budget"] == held["dropped_memory_budget"]
    core.handle_timer(NOW + 100)
    assert core.fragment_statistics()["ipv4" if family == 4 else "ipv6"]["bytes_held"] == 0

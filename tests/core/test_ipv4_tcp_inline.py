"""The inline receive path for TCP in plain IPv4 (``StackCore._receive_tcp4_plain``) takes
exactly what the full path takes: the same counters, the same answers, for valid packets
and for every single-byte corruption of one."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.core.stack import StackCore
from aionetstack.testing.segments import make_segment
from aionetstack.wire import ipv4
from aionetstack.wire.checksum import internet_checksum, pseudo_header_sum
from aionetstack.wire.tcp import ACK, PSH, SYN, build_options, parse_tcp

US = bytes([198, 18, 0, 2])
PEER = bytes([198, 18, 0, 1])
NOW = 100.0


def syn_packet(*, ttl: int = 64, source: bytes = PEER, destination: bytes = US) -> bytes:
    segment = make_segment(
        source, destination, 40000, 80, seq=1000, flags=SYN,
        options=build_options(mss=1460, window_scale=7, sack_permitted=True,
                              timestamp=(5, 0)),
    )  # fmt: skip
    return ipv4.build_ipv4(ipv4.IPv4Header(source, destination, ipv4.PROTO_TCP, ttl=ttl), segment)


def ack_packet(options: bytes) -> bytes:
    """A data segment (no connection for it: the answer is a RST) with ``options``."""
    segment = make_segment(
        PEER, US, 40000, 80, seq=1000, ack=5, flags=ACK | PSH, options=options, payload=b"hi"
    )
    return ipv4.build_ipv4(ipv4.IPv4Header(PEER, US, ipv4.PROTO_TCP), segment)


def bad_offset_packet(offset_byte: int) -> bytes:
    """A data segment whose data offset is wrong, its checksums right (so that only the
    offset rule refuses it)."""
    segment = bytearray(make_segment(PEER, US, 40000, 80, seq=1, ack=5, payload=b"hi"))
    segment[12] = offset_byte
    segment[16:18] = b"\x00\x00"
    checksum = internet_checksum(segment, pseudo_header_sum(PEER, US, 6, len(segment)))
    segment[16:18] = checksum.to_bytes(2, "big")
    return ipv4.build_ipv4(ipv4.IPv4Header(PEER, US, ipv4.PROTO_TCP), bytes(segment))


#: NOP NOP TS (RFC 7323 Appendix A): the layout the C classification unpacks itself.
TIMESTAMPS = bytes((1, 1, 8, 10)) + bytes(range(8))
#: An MSS option of length 1: parse_options refuses it (``drops_bad_option``).
MALFORMED = bytes((2, 1, 0, 0))


def fresh_core(verify: bool) -> StackCore:
    """A core listening on port 80; ``verify``: it checks TCP checksums (software GRO
    turns that off for what it merged, having checked each piece)."""
    core = StackCore(["198.18.0.2/24"], rng=random.Random(1))
    core.verify_transport_checksums = verify
    core.tcp.listen(None, 80)
    return core


def outcome(core: StackCore) -> tuple[object, ...]:
    """The core's counters and what it sends now."""
    out = [bytes(p) if isinstance(p, bytes) else bytes(p.packet) for p in core.packets_to_send(NOW)]
    return core.statistics(), out


def run(data: bytes, *, verify: bool = True) -> tuple[object, ...]:
    """The outcome of ``receive_packet`` and of the full checks alone for ``data``, each
    on a fresh core, and whether the inline path takes it (a third core: when it does
    not, it must have changed nothing)."""
    both = []
    for receive in (StackCore.receive_packet, StackCore.receive_packet_checked):
        core = fresh_core(verify)
        receive(core, data, NOW)
        both.append(outcome(core))
    core = fresh_core(verify)
    untouched = outcome(core)
    taken = core._receive_tcp4_plain(data, NOW)
    if not taken:
        assert outcome(core) == untouched
    return both[0], both[1], taken


def test_a_valid_segment_takes_the_inline_path_with_the_full_paths_result() -> None:
    inline, full, taken = run(syn_packet())
    assert taken
    assert inline == full
    assert len(full[1]) == 1  # type: ignore[arg-type]  # the SYN-ACK


@pytest.mark.parametrize(
    ("data", "counter"),
    [
        (syn_packet(), "segments_in"),
        (ack_packet(TIMESTAMPS), "resets_sent"),
        (ack_packet(b""), "resets_sent"),
        (ack_packet(MALFORMED), "drops_bad_option"),
    ],
    ids=["syn-options", "timestamps", "no-options", "malformed-options"],
)
def test_each_option_layout_is_taken_inline_with_the_full_paths_result(
    data: bytes, counter: str
) -> None:
    inline, full, taken = run(data)
    assert taken
    assert inline == full
    assert full[0]["tcp"][counter] == 1  # type: ignore[index]


@pytest.mark.parametrize(
    "data",
    [
        syn_packet(ttl=0),  # RFC 1122 §3.2.1.7
        syn_packet(source=bytes([127, 0, 0, 1])),  # martian
        syn_packet(source=US),  # our own address as a source
        syn_packet(destination=bytes([198, 18, 0, 255])),  # broadcast
        syn_packet(destination=bytes([198, 18, 0, 9])),  # not ours
        syn_packet()[:30],  # truncated below total length
        bad_offset_packet(0x40),  # data offset 4 words: drops_bad_header_length
        bad_offset_packet(0xF0),  # 60 bytes, past the segment: the same
    ],
    ids=[
        "ttl-0",
        "martian-source",
        "own-source",
        "broadcast",
        "not-ours",
        "truncated",
        "offset-4",
        "offset-past-segment",
    ],
)
def test_packets_the_full_path_drops_are_never_taken_inline(data: bytes) -> None:
    inline, full, taken = run(data)
    assert not taken
    assert inline == full


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from([syn_packet(), ack_packet(TIMESTAMPS), ack_packet(MALFORMED)]),
    st.integers(min_value=0, max_value=71),
    st.integers(min_value=0, max_value=255),
    st.booleans(),
)
def test_any_corrupted_byte_gets_the_same_verdict_either_way(
    packet: bytes, position: int, value: int, verify: bool
) -> None:
    """Unverified (as for what software GRO merged), a rewritten byte of the TCP header
    reaches the header rules themselves instead of failing the checksum."""
    data = bytearray(packet)
    data[position % len(data)] = value
    inline, full, _ = run(bytes(data), verify=verify)
    assert inline == full


def test_a_segment_handed_over_as_bytes_has_its_options_parsed() -> None:
    """``receive_segment`` takes a segment's bytes in any buffer (the IP layer gives a
    view; a harness may give ``bytes``): its options are parsed either way."""
    core = StackCore(["198.18.0.2/24"], rng=random.Random(1))
    core.tcp.listen(None, 80)
    segment = make_segment(
        PEER, US, 40000, 80, seq=1000, flags=SYN,
        options=build_options(mss=1000, window_scale=7, sack_permitted=True,
                              timestamp=(5, 0)),
    )  # fmt: skip
    core.tcp.receive_segment(PEER, US, segment, NOW)  # type: ignore[arg-type]
    (synack,) = core.packets_to_send(NOW)
    assert isinstance(synack, bytes)
    answer = parse_tcp(synack[20:])
    assert answer.flags == SYN | ACK
    assert answer.options.timestamp is not None and answer.options.timestamp[1] == 5  # echoed
    assert core.statistics()["tcp"]["segments_in"] == 1

"""Software GSO's C cut (link/_gso.c) against its Python twin, ``cut_tcp``.

``cut_tcp`` is checked against dpkt and RFC arithmetic in test_segmentation.py; here
the C cut must give the same pieces, byte for byte, for every packet drawn: IPv4
(with and without IP options) and IPv6, behind a link header or not, its payload
in the packet or in tail buffers of any split, every flag and sequence number, and
segment sizes from 1 byte up. What ``cut_tcp`` refuses, the C cut refuses with
``ValueError``.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.link import segmentation
from aionetstack.link.segmentation import cut_tcp, cut_tcp_packets
from aionetstack.wire.checksum import ones_complement_sum, pseudo_header_sum
from aionetstack.wire.ipv4 import IPv4Header, build_ipv4
from aionetstack.wire.ipv6 import IPv6Header, build_ipv6
from aionetstack.wire.tcp import build_tcp

needs_c = pytest.mark.skipif(not segmentation.ACCELERATED, reason="link/_gso.c was not built")

SRC4, DST4 = bytes([198, 18, 0, 2]), bytes([198, 18, 0, 1])
SRC6 = bytes.fromhex("20010002000000000000000000000002")
DST6 = bytes.fromhex("20010002000000000000000000000001")


def reference(
    packet: bytes | memoryview, size: int, tail: tuple[bytes | memoryview, ...], offset: int
) -> list[bytes]:
    return [bytes(h) + bytes(p) for h, p in cut_tcp(packet, size, tail, offset)]


def partial_packet(  # noqa: PLR0917
    version: int, payload: bytes, flags: int, seq: int, options: bytes, identification: int,
    ip_options: bytes,
) -> bytes:  # fmt: skip
    """A TCP packet whose checksum field holds the pseudo-header sum alone."""
    source, destination = (SRC4, DST4) if version == 4 else (SRC6, DST6)
    segment = build_tcp(
        40000, 5201, seq, 99, flags, 512, options=options, payload=payload,
        source=source, destination=destination,
    )  # fmt: skip
    pseudo = ones_complement_sum(b"", pseudo_header_sum(source, destination, 6, len(segment)))
    segment = segment[:16] + pseudo.to_bytes(2, "big") + segment[18:]
    if version == 6:
        return build_ipv6(IPv6Header(source, destination, 6), segment)
    packet = build_ipv4(IPv4Header(source, destination, 6, identification=identification), segment)
    if ip_options:  # IHL past 5: the options sit before TCP (checksums are not the cut's input)
        return bytes([0x40 | (20 + len(ip_options)) // 4]) + packet[1:20] + ip_options + packet[20:]
    return packet


@st.composite
def cuts(draw: st.DrawFn) -> tuple[bytes | memoryview, int, tuple[bytes | memoryview, ...], int]:
    version = draw(st.sampled_from([4, 6]))
    payload = random.Random(draw(st.integers(0, 99))).randbytes(
        draw(st.sampled_from([0, 1, 2, 1447, 1448, 1449, 2896, 5000, 65000]))
    )
    packet = partial_packet(
        version,
        payload,
        draw(st.integers(0, 255)),
        draw(st.sampled_from([0, 1000, 0xFFFFFFFF - 700, 0xFFFFFFFF])),
        draw(st.sampled_from([b"", bytes((1, 1, 8, 10)) + bytes(8), bytes((1,)) * 4])),
        draw(st.sampled_from([0, 7, 0xFFFF])),
        draw(st.sampled_from([b"", b"\x01\x01\x01\x00"])) if version == 4 else b"",
    )
    offset = draw(st.sampled_from([0, 14]))
    packet = bytes(range(offset)) + packet
    header_end = len(packet) - len(payload)
    cut_at = draw(st.integers(header_end, len(packet)))
    pieces = draw(st.integers(0, 3))
    rest = packet[cut_at:]
    marks = sorted(draw(st.lists(st.integers(0, len(rest)), min_size=pieces, max_size=pieces)))
    tail = tuple(rest[a:b] for a, b in zip([0, *marks], [*marks, len(rest)], strict=True))
    head: bytes | memoryview = packet[:cut_at]
    if draw(st.booleans()):
        head = memoryview(b"\xee" + head + b"\xee")[1:-1]
    size = draw(st.sampled_from([1, 3, 536, 1448, 1500, 9000, 70000]))
    return head, size, tail, offset


@needs_c
@settings(max_examples=400, deadline=None)
@given(cuts())
def test_the_c_cut_equals_the_python_one(
    case: tuple[bytes | memoryview, int, tuple[bytes | memoryview, ...], int],
) -> None:
    packet, size, tail, offset = case
    got = cut_tcp_packets(packet, size, tail, offset)
    assert got == reference(packet, size, tail, offset)
    assert all(type(piece) is bytes for piece in got)


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=90), st.sampled_from([0, 14]), st.sampled_from([1, 1448]))
def test_arbitrary_bytes_are_cut_alike_or_refused_alike(
    data: bytes, offset: int, size: int
) -> None:
    try:
        expected = reference(data, size, (), offset)
    except (ValueError, IndexError):
        with pytest.raises(ValueError):
            cut_tcp_packets(data, size, (), offset)
        return
    assert cut_tcp_packets(data, size, (), offset) == expected


@needs_c
def test_arguments_that_are_not_a_cut_are_refused() -> None:
    packet = partial_packet(4, b"x" * 3000, 0x18, 1, b"", 1, b"")
    cut = segmentation._native_cut
    assert cut is not None
    with pytest.raises(ValueError, match="segment_size must be >= 1"):
        cut(packet, 0, (), 0)
    with pytest.raises(ValueError, match="offset must be >= 0"):
        cut(packet, 1448, (), -1)
    with pytest.raises(TypeError):
        cut(packet, 1448, [b"x"], 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cut(packet, 1448, ("text",), 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cut("text", 1448, (), 0)  # type: ignore[arg-type]
    assert len(cut(packet, 1448, (), 0)) == 3
    # A piece longer than the IP length field can say (found in review): refused alike.
    small = partial_packet(4, bytes(1000), 0x18, 1, b"", 0, b"")
    for implementation in (cut, reference):
        with pytest.raises(ValueError, match="longer than the IP length field"):
            implementation(small, 100_000, (bytes(70_000),), 0)
        assert [len(p) for p in implementation(small, 65_495, (bytes(64_495),), 0)] == [65_535]
        with pytest.raises(ValueError, match="longer than the IP length field"):
            implementation(small, 65_496, (bytes(64_536),), 0)
    short_header = packet[:32] + bytes([0x40]) + packet[33:]  # TCP data offset 4: 16 bytes
    with pytest.raises(ValueError, match="TCP header truncated"):
        reference(short_header, 1448, (), 0)
    with pytest.raises(ValueError, match="TCP header truncated"):
        cut(short_header, 1448, (), 0)


def test_without_the_c_cut_the_pieces_come_from_cut_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segmentation, "_native_cut", None)
    packet = partial_packet(6, bytes(range(256)) * 12, 0x19, 5, b"", 0, b"")
    tail = (memoryview(b"abc"),)
    pieces = cut_tcp_packets(packet, 1000, tail, 0)
    assert pieces == reference(packet, 1000, tail, 0)
    assert [len(p) for p in pieces] == [1060, 1060, 1060, 135]
    assert all(type(piece) is bytes for piece in pieces)


def test_the_c_cut_is_built_where_required() -> None:
    """CI (AIONETSTACK_REQUIRE_ACCEL=1) has a compiler: a silent fallback is a failure."""
    if not os.environ.get("AIONETSTACK_REQUIRE_ACCEL"):
        pytest.skip("AIONETSTACK_REQUIRE_ACCEL is not set")
    assert segmentation.ACCELERATED, "link/_gso.c was not built: is a C compiler installed?"

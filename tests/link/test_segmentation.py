"""Software GSO (link/segmentation.py): pieces checked by dpkt and our own parsers."""

from __future__ import annotations

import random

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.link.segmentation import complete_checksum, cut_tcp
from aionetstack.wire.checksum import internet_checksum, ones_complement_sum, pseudo_header_sum
from aionetstack.wire.ipv4 import IPv4Header, build_ipv4, parse_ipv4
from aionetstack.wire.ipv6 import IPv6Header, build_ipv6
from aionetstack.wire.tcp import ACK, CWR, ECE, FIN, PSH, build_tcp, parse_tcp
from aionetstack.wire.udp import build_udp

SRC4, DST4 = bytes([198, 18, 0, 2]), bytes([198, 18, 0, 1])
SRC6 = bytes.fromhex("20010002000000000000000000000002")
DST6 = bytes.fromhex("20010002000000000000000000000001")
TS = bytes((1, 1, 8, 10)) + (123456).to_bytes(4, "big") + (654321).to_bytes(4, "big")


def partial(source: bytes, destination: bytes, segment: bytes) -> bytes:
    """``segment`` with its checksum field holding only the pseudo-header sum."""
    pseudo = ones_complement_sum(b"", pseudo_header_sum(source, destination, 6, len(segment)))
    return segment[:16] + pseudo.to_bytes(2, "big") + segment[18:]


def super_packet(
    payload: bytes, *, flags: int = ACK | PSH, seq: int = 1000, version: int = 4,
    identification: int = 7,
) -> bytes:  # fmt: skip
    source, destination = (SRC4, DST4) if version == 4 else (SRC6, DST6)
    segment = build_tcp(
        40000, 5201, seq, 99, flags, 512, options=TS, payload=payload,
        source=source, destination=destination,
    )  # fmt: skip
    segment = partial(source, destination, segment)
    if version == 4:
        header = IPv4Header(source, destination, 6, identification=identification)
        return build_ipv4(header, segment)
    return build_ipv6(IPv6Header(source, destination, 6), segment)


def pieces(packet: bytes, size: int, tail: tuple[bytes, ...] = ()) -> list[bytes]:
    return [bytes(headers) + bytes(payload) for headers, payload in cut_tcp(packet, size, tail)]


def test_pieces_are_valid_packets_in_dpkt() -> None:
    payload = random.Random(1).randbytes(10_000)
    out = pieces(super_packet(payload, flags=ACK | PSH | FIN | CWR | ECE), 1448)
    assert len(out) == 7
    data = b""
    for index, raw in enumerate(out):
        ip = dpkt.ip.IP(raw)
        assert len(raw) <= 1500
        assert ip.id == 7 + index and ip.df
        tcp = ip.data
        assert isinstance(tcp, dpkt.tcp.TCP)
        assert tcp.seq == 1000 + 1448 * index
        assert tcp.opts == TS
        last = index == len(out) - 1
        assert bool(tcp.flags & FIN) == last and bool(tcp.flags & PSH) == last
        assert bool(tcp.flags & CWR) == (index == 0)
        assert tcp.flags & (ACK | ECE) == ACK | ECE
        # Checksums: the IP header, and TCP over the pseudo-header.
        assert internet_checksum(raw[:20]) == 0
        pseudo = pseudo_header_sum(SRC4, DST4, 6, len(raw) - 20)
        assert internet_checksum(raw[20:], pseudo) == 0
        # dpkt recomputes on pack: the bytes must come out the same.
        ip.sum = 0
        tcp.sum = 0
        assert bytes(ip) == raw
        data += tcp.data
    assert data == payload


def test_ipv6_pieces_and_a_tail() -> None:
    payload = random.Random(2).randbytes(5000)
    packet = super_packet(payload, version=6)
    header_end = 40 + 32
    tail = (payload[:1000], payload[1000:])
    out = pieces(packet[:header_end], 1000, tail)
    assert len(out) == 5
    data = b""
    for index, raw in enumerate(out):
        ip6 = dpkt.ip6.IP6(raw)
        assert ip6.plen == len(raw) - 40
        pseudo = pseudo_header_sum(SRC6, DST6, 6, len(raw) - 40)
        assert internet_checksum(raw[40:], pseudo) == 0
        segment = parse_tcp(raw[40:])
        assert segment.seq == 1000 + 1000 * index
        data += bytes(segment.payload)
    assert data == payload


def test_odd_sizes_and_a_short_last_piece() -> None:
    payload = random.Random(3).randbytes(1001)
    out = pieces(super_packet(payload), 333)
    assert [len(raw) - 52 for raw in out] == [333, 333, 333, 2]
    for raw in out:
        header, tcp = parse_ipv4(raw)
        pseudo = pseudo_header_sum(SRC4, DST4, 6, len(tcp))
        assert internet_checksum(tcp, pseudo) == 0, header


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 3000),
    length=st.integers(0, 9000),
    seq=st.integers(0, 2**32 - 1),
    identification=st.integers(0, 0xFFFF),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_cut_verifies_and_reassembles(
    size: int, length: int, seq: int, identification: int, seed: int
) -> None:
    payload = random.Random(seed).randbytes(length)
    packet = super_packet(payload, seq=seq, identification=identification)
    data = b""
    out = pieces(packet, size)
    for index, raw in enumerate(out):
        header, tcp = parse_ipv4(raw)  # verifies the header checksum
        assert header.identification == (identification + index) & 0xFFFF
        pseudo = pseudo_header_sum(SRC4, DST4, 6, len(tcp))
        assert internet_checksum(tcp, pseudo) == 0
        segment = parse_tcp(tcp)
        assert segment.seq == (seq + len(data)) & 0xFFFFFFFF
        data += bytes(segment.payload)
    assert data == payload
    assert len(out) == max(1, -(-length // size))


def test_complete_checksum_tcp_and_udp() -> None:
    payload = b"hello, world"
    tcp = complete_checksum(super_packet(payload))
    _header, segment = parse_ipv4(tcp)
    assert internet_checksum(segment, pseudo_header_sum(SRC4, DST4, 6, len(segment))) == 0
    datagram = build_udp(5353, 53, payload, SRC4, DST4)
    pseudo = ones_complement_sum(b"", pseudo_header_sum(SRC4, DST4, 17, len(datagram)))
    datagram = datagram[:6] + pseudo.to_bytes(2, "big") + datagram[8:]
    packet = build_ipv4(IPv4Header(SRC4, DST4, 17), datagram)
    done = complete_checksum(packet[:28], (packet[28:],))
    assert internet_checksum(done[20:], pseudo_header_sum(SRC4, DST4, 17, len(datagram))) == 0
    assert dpkt.ip.IP(bytes(done)).data.data == payload


def test_not_cuttable_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not an IP packet"):
        list(cut_tcp(b"\x00" * 60, 100))
    with pytest.raises(ValueError, match="segment_size"):
        list(cut_tcp(super_packet(b"x"), 0))
    udp = build_ipv4(IPv4Header(SRC4, DST4, 17), build_udp(1, 2, b"x", SRC4, DST4))
    with pytest.raises(ValueError, match="only TCP"):
        list(cut_tcp(udp, 100))

"""IPv4 header parse/build (RFC 791): golden bytes, dpkt cross-checks, rejections, fuzzing."""

from __future__ import annotations

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.wire.checksum import internet_checksum
from aionetstack.wire.error import WireError
from aionetstack.wire.ipv4 import (
    PROTO_ICMP,
    PROTO_UDP,
    IPv4Header,
    build_ipv4,
    build_ipv4_header,
    parse_ipv4,
)

SETTINGS = settings(max_examples=300, deadline=None)
HOST = bytes([198, 18, 0, 2])
PEER = bytes([198, 18, 0, 1])

# Hand-assembled from RFC 791 §3.1: version 4, IHL 5, TOS 0, total length 28,
# id 0x1234, DF, offset 0, TTL 64, protocol 17, checksum 9c75, then addresses
# and 8 bytes of payload. The checksum was worked out by hand (and dpkt agrees).
GOLDEN = bytes.fromhex("4500001c1234400040119c75c6120002c6120001") + b"x" * 8


def with_checksum(header: bytearray) -> bytes:
    header[10:12] = b"\x00\x00"
    header[10:12] = internet_checksum(header).to_bytes(2, "big")
    return bytes(header)


def test_parse_golden() -> None:
    header, payload = parse_ipv4(GOLDEN)
    assert header == IPv4Header(
        source=HOST,
        destination=PEER,
        protocol=PROTO_UDP,
        ttl=64,
        tos=0,
        identification=0x1234,
        dont_fragment=True,
        more_fragments=False,
        fragment_offset=0,
        total_length=28,
        header_length=20,
        checksum=0x9C75,
        options=b"",
    )
    assert bytes(payload) == b"x" * 8
    assert not header.is_fragment


def test_build_golden() -> None:
    header = IPv4Header(HOST, PEER, PROTO_UDP, ttl=64, identification=0x1234)
    assert build_ipv4(header, b"x" * 8) == GOLDEN
    assert build_ipv4_header(header, 8) == GOLDEN[:20]


def test_link_padding_past_total_length_is_trimmed() -> None:
    header, payload = parse_ipv4(GOLDEN + bytes(18))
    assert header.total_length == 28
    assert bytes(payload) == b"x" * 8


def test_options_are_skipped_by_ihl() -> None:
    # IHL 6: one 4-byte option word (router alert, RFC 2113: 94 04 0000).
    raw = bytearray.fromhex("4600001c 00004000 0102 0000 c6120002 c6120001 94040000")
    packet = with_checksum(raw) + b"ping"
    header, payload = parse_ipv4(packet)
    assert header.header_length == 24
    assert header.options == bytes.fromhex("94040000")
    assert header.protocol == 2
    assert bytes(payload) == b"ping"


def test_build_with_options_round_trips() -> None:
    header = IPv4Header(HOST, PEER, PROTO_ICMP, options=bytes.fromhex("94040000" + "01010100"))
    packet = build_ipv4(header, b"data")
    parsed, payload = parse_ipv4(packet)
    assert parsed.header_length == 28
    assert parsed.options == header.options
    assert bytes(payload) == b"data"
    assert dpkt.ip.IP(packet).opts == header.options


def test_fragment_fields() -> None:
    header = IPv4Header(
        HOST, PEER, PROTO_UDP, dont_fragment=False, more_fragments=True, fragment_offset=1480
    )
    parsed, _ = parse_ipv4(build_ipv4(header, b"\x00" * 16))
    assert parsed.is_fragment
    assert (parsed.dont_fragment, parsed.more_fragments, parsed.fragment_offset) == (
        False,
        True,
        1480,
    )


def mutate(offset: int, value: int, *, fix_checksum: bool = True) -> bytes:
    raw = bytearray(GOLDEN)
    raw[offset] = value
    header = with_checksum(raw[:20]) if fix_checksum else bytes(raw[:20])
    return header + bytes(raw[20:])


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (GOLDEN[:19], "truncated"),
        (mutate(0, 0x65), "bad_version"),
        (mutate(0, 0x44), "bad_header_length"),
        (mutate(0, 0x4F), "truncated"),  # IHL 15 = 60 bytes, only 28 here
        (mutate(3, 19), "bad_length"),  # total length below the header length
        (mutate(3, 29), "truncated"),  # total length past the bytes received
        (mutate(8, 63, fix_checksum=False), "bad_checksum"),
    ],
    ids=["short", "version", "ihl", "ihl-long", "total-small", "total-large", "checksum"],
)
def test_rejections_have_their_own_reason(packet: bytes, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_ipv4(packet)
    assert caught.value.reason == reason


def test_checksum_check_can_be_skipped() -> None:
    header, _ = parse_ipv4(mutate(8, 63, fix_checksum=False), verify_checksum=False)
    assert header.ttl == 63


@pytest.mark.parametrize(
    "header",
    [
        IPv4Header(HOST, PEER, PROTO_UDP, options=b"\x01\x01"),
        IPv4Header(HOST, PEER, PROTO_UDP, options=bytes(44)),
        IPv4Header(HOST, PEER, PROTO_UDP, fragment_offset=100),
        IPv4Header(HOST, PEER, PROTO_UDP, fragment_offset=65536),
        IPv4Header(HOST + HOST, PEER, PROTO_UDP),
        IPv4Header(HOST, PEER[:3], PROTO_UDP),
        IPv4Header(HOST, PEER, 256),
        IPv4Header(HOST, PEER, PROTO_UDP, ttl=-1),
        IPv4Header(HOST, PEER, PROTO_UDP, tos=300),
    ],
    ids=[
        "options-odd",
        "options-long",
        "offset-unaligned",
        "offset-large",
        "source-length",
        "destination-length",
        "protocol",
        "ttl",
        "tos",
    ],
)
def test_build_rejects_bad_headers(header: IPv4Header) -> None:
    with pytest.raises(ValueError):
        build_ipv4(header, b"")


def test_build_rejects_oversized_payload() -> None:
    with pytest.raises(ValueError):
        build_ipv4_header(IPv4Header(HOST, PEER, PROTO_UDP), 65516)


headers = st.builds(
    IPv4Header,
    source=st.binary(min_size=4, max_size=4),
    destination=st.binary(min_size=4, max_size=4),
    protocol=st.integers(0, 255),
    ttl=st.integers(0, 255),
    tos=st.integers(0, 255),
    identification=st.integers(0, 0xFFFF),
    dont_fragment=st.booleans(),
    more_fragments=st.booleans(),
    fragment_offset=st.integers(0, 0x1FFF).map(lambda units: units * 8),
    options=st.integers(0, 10).map(lambda words: b"\x01" * (4 * words)),
)


@SETTINGS
@given(header=headers, payload=st.binary(max_size=64))
def test_round_trip_and_dpkt_agree(header: IPv4Header, payload: bytes) -> None:
    packet = build_ipv4(header, payload)
    parsed, parsed_payload = parse_ipv4(packet)
    assert bytes(parsed_payload) == payload
    expected_length = 20 + len(header.options)
    assert parsed.header_length == expected_length
    assert parsed.total_length == expected_length + len(payload)
    for field in ("source", "destination", "protocol", "ttl", "tos", "identification",
                  "dont_fragment", "more_fragments", "fragment_offset", "options"):  # fmt: skip
        assert getattr(parsed, field) == getattr(header, field)
    theirs = dpkt.ip.IP(packet)
    assert (theirs.src, theirs.dst, theirs.p, theirs.ttl, theirs.tos, theirs.id) == (
        header.source,
        header.destination,
        header.protocol,
        header.ttl,
        header.tos,
        header.identification,
    )
    assert (bool(theirs.df), bool(theirs.mf), theirs.offset * 8) == (
        header.dont_fragment,
        header.more_fragments,
        header.fragment_offset,
    )
    assert theirs.sum == parsed.checksum
    assert theirs.hl * 4 == parsed.header_length


@SETTINGS
@given(
    ttl=st.integers(0, 255),
    identification=st.integers(0, 0xFFFF),
    protocol=st.sampled_from([1, 6, 17, 47]),
    payload=st.binary(max_size=64),
)
def test_parses_what_dpkt_builds(
    ttl: int, identification: int, protocol: int, payload: bytes
) -> None:
    theirs = dpkt.ip.IP(
        src=HOST, dst=PEER, p=protocol, ttl=ttl, id=identification, df=1, data=payload
    )
    packet = bytes(theirs)
    header, parsed_payload = parse_ipv4(packet)
    assert (header.ttl, header.identification, header.protocol) == (ttl, identification, protocol)
    assert header.checksum == theirs.sum
    assert bytes(parsed_payload) == payload


@SETTINGS
@given(data=st.binary(max_size=80))
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    try:
        parse_ipv4(data)
    except WireError:
        pass


@SETTINGS
@given(cut=st.integers(0, len(GOLDEN)), bit=st.integers(0, 8 * len(GOLDEN) - 1))
def test_mutated_packets_raise_only_wire_error(cut: int, bit: int) -> None:
    flipped = bytearray(GOLDEN)
    flipped[bit // 8] ^= 1 << (bit % 8)
    for candidate in (GOLDEN[:cut], bytes(flipped)):
        for verify in (True, False):
            try:
                header, payload = parse_ipv4(candidate, verify_checksum=verify)
            except WireError:
                continue
            assert len(payload) == header.total_length - header.header_length


def test_a_flipped_header_bit_is_always_caught() -> None:
    for bit in range(8 * 20):
        flipped = bytearray(GOLDEN)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(WireError):
            parse_ipv4(bytes(flipped))

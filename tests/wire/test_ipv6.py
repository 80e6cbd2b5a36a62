"""IPv6 (RFC 8200): fixed header, extension-header walk, fragment report, dpkt, fuzzing."""

from __future__ import annotations

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.wire.error import WireError
from aionetstack.wire.ipv6 import (
    NEXT_HEADER_DESTINATION_OPTIONS,
    NEXT_HEADER_FRAGMENT,
    NEXT_HEADER_HOP_BY_HOP,
    NEXT_HEADER_NONE,
    NEXT_HEADER_ROUTING,
    FragmentHeader,
    IPv6Header,
    build_ipv6,
    build_ipv6_header,
    parse_ipv6,
    skip_extension_headers,
)

SETTINGS = settings(max_examples=300, deadline=None)
HOST6 = bytes.fromhex("fd00" + "00" * 13 + "02")
PEER6 = bytes.fromhex("fd00" + "00" * 13 + "01")
UDP_PROTOCOL = 17
# An 8-byte UDP header, ports 1 -> 2, length 8, checksum left zero (never verified here).
UDP_STUB = bytes.fromhex("0001000200080000")
# 8-byte options header: next header, Hdr Ext Len 0, PadN option of 4 zero bytes (RFC 8200 §4.2).
PADDED_OPTIONS = bytes.fromhex("00000104 00000000")


def options_header(next_header: int, units: int = 0) -> bytes:
    """An options header of ``units + 1`` 8-byte units, padded with PadN."""
    body = bytes((next_header, units)) + bytes.fromhex("01") + bytes((4 + 8 * units,))
    return body + bytes(4 + 8 * units)


# Hand-assembled: version 6, traffic class 0xb8 (EF), flow label 0x12345,
# payload length 24, next header 0 (hop-by-hop), hop limit 64.
GOLDEN_FIXED = bytes.fromhex("6b812345 0018 00 40") + HOST6 + PEER6
GOLDEN = (
    GOLDEN_FIXED
    + options_header(NEXT_HEADER_DESTINATION_OPTIONS)
    + options_header(UDP_PROTOCOL)
    + UDP_STUB
)


def test_parse_golden_fixed_header() -> None:
    header, payload = parse_ipv6(GOLDEN)
    assert header == IPv6Header(
        source=HOST6,
        destination=PEER6,
        next_header=NEXT_HEADER_HOP_BY_HOP,
        hop_limit=64,
        traffic_class=0xB8,
        flow_label=0x12345,
        payload_length=24,
    )
    assert bytes(payload) == GOLDEN[40:]


def test_build_golden_fixed_header() -> None:
    header = IPv6Header(HOST6, PEER6, NEXT_HEADER_HOP_BY_HOP, 64, 0xB8, 0x12345)
    assert build_ipv6_header(header, 24) == GOLDEN_FIXED
    assert build_ipv6(header, GOLDEN[40:]) == GOLDEN


def test_extension_headers_are_skipped_to_the_upper_layer() -> None:
    header, payload = parse_ipv6(GOLDEN)
    chain = skip_extension_headers(header.next_header, payload)
    assert chain.protocol == UDP_PROTOCOL
    assert chain.header_length == 16
    assert bytes(chain.payload) == UDP_STUB
    assert chain.fragment is None
    theirs = dpkt.ip6.IP6(GOLDEN)
    assert theirs.p == chain.protocol
    assert set(theirs.extension_hdrs) >= {NEXT_HEADER_HOP_BY_HOP, NEXT_HEADER_DESTINATION_OPTIONS}


def test_longer_extension_headers_use_their_length_field() -> None:
    # Routing header (type 0 layout does not matter for skipping) of 3 units.
    payload = options_header(NEXT_HEADER_ROUTING, 1) + options_header(6, 2) + b"tcp!"
    chain = skip_extension_headers(NEXT_HEADER_DESTINATION_OPTIONS, payload)
    assert (chain.protocol, chain.header_length, bytes(chain.payload)) == (6, 40, b"tcp!")


def test_no_extension_headers() -> None:
    chain = skip_extension_headers(UDP_PROTOCOL, UDP_STUB)
    assert (chain.protocol, chain.header_length, bytes(chain.payload)) == (17, 0, UDP_STUB)


def test_no_next_header_stops_the_walk() -> None:
    chain = skip_extension_headers(NEXT_HEADER_HOP_BY_HOP, options_header(NEXT_HEADER_NONE))
    assert (chain.protocol, len(chain.payload)) == (NEXT_HEADER_NONE, 0)


def test_fragment_header_is_reported() -> None:
    # RFC 8200 §4.5: next header, reserved, offset 185 (1480 bytes) << 3 | M, id.
    fragment = bytes.fromhex("1100 05c9 deadbeef")
    assert bytes(dpkt.ip6.IP6FragmentHeader(nxt=17, frag_off=185, m_flag=1, id=0xDEADBEEF)) == (
        fragment
    )
    chain = skip_extension_headers(
        NEXT_HEADER_HOP_BY_HOP, options_header(NEXT_HEADER_FRAGMENT) + fragment + b"data"
    )
    assert chain.fragment == FragmentHeader(17, 1480, True, 0xDEADBEEF)
    assert (chain.protocol, chain.header_length, bytes(chain.payload)) == (17, 16, b"data")


@pytest.mark.parametrize(
    ("next_header", "payload", "reason"),
    [
        (NEXT_HEADER_HOP_BY_HOP, b"\x11", "truncated"),
        (NEXT_HEADER_HOP_BY_HOP, options_header(17)[:7], "truncated"),
        (NEXT_HEADER_ROUTING, options_header(17, 1)[:15], "truncated"),
        (NEXT_HEADER_FRAGMENT, bytes(7), "truncated"),
        (NEXT_HEADER_DESTINATION_OPTIONS, options_header(0) + options_header(17), "bad_extension"),
    ],
    ids=["one-byte", "short-options", "short-routing", "short-fragment", "late-hop-by-hop"],
)
def test_extension_rejections(next_header: int, payload: bytes, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        skip_extension_headers(next_header, payload)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (GOLDEN[:39], "truncated"),
        (b"\x4b" + GOLDEN[1:], "bad_version"),
        (GOLDEN[:-1], "truncated"),
    ],
    ids=["short", "version", "payload-length"],
)
def test_fixed_header_rejections(packet: bytes, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_ipv6(packet)
    assert caught.value.reason == reason


def test_link_padding_past_payload_length_is_trimmed() -> None:
    _, payload = parse_ipv6(GOLDEN + bytes(10))
    assert len(payload) == 24


@pytest.mark.parametrize(
    ("header", "length"),
    [
        (IPv6Header(HOST6[:4], PEER6, 17), 0),
        (IPv6Header(HOST6, PEER6, 17), 65536),
        (IPv6Header(HOST6, PEER6, 17, traffic_class=256), 0),
        (IPv6Header(HOST6, PEER6, 17, flow_label=1 << 20), 0),
        (IPv6Header(HOST6, PEER6, 256), 0),
        (IPv6Header(HOST6, PEER6, 17, hop_limit=-1), 0),
    ],
)
def test_build_rejects_bad_headers(header: IPv6Header, length: int) -> None:
    with pytest.raises(ValueError):
        build_ipv6_header(header, length)


headers = st.builds(
    IPv6Header,
    source=st.binary(min_size=16, max_size=16),
    destination=st.binary(min_size=16, max_size=16),
    next_header=st.integers(0, 255),
    hop_limit=st.integers(0, 255),
    traffic_class=st.integers(0, 255),
    flow_label=st.integers(0, 0xFFFFF),
)


@SETTINGS
@given(header=headers, payload=st.binary(max_size=64))
def test_round_trip_and_dpkt_agree(header: IPv6Header, payload: bytes) -> None:
    packet = build_ipv6(header, payload)
    parsed, parsed_payload = parse_ipv6(packet)
    header.payload_length = len(payload)
    assert parsed == header
    assert bytes(parsed_payload) == payload
    theirs = dpkt.ip6.IP6()
    # Only dpkt's fixed-header fields: its own unpack would decode the random payload.
    dpkt.Packet.unpack(theirs, packet)
    assert (theirs.src, theirs.dst, theirs.nxt, theirs.hlim, theirs.plen) == (
        header.source,
        header.destination,
        header.next_header,
        header.hop_limit,
        len(payload),
    )
    assert (theirs.fc, theirs.flow) == (header.traffic_class, header.flow_label)


@SETTINGS
@given(
    hop_limit=st.integers(0, 255),
    flow=st.integers(0, 0xFFFFF),
    traffic_class=st.integers(0, 255),
    payload=st.binary(max_size=64),
)
def test_parses_what_dpkt_builds(
    hop_limit: int, flow: int, traffic_class: int, payload: bytes
) -> None:
    theirs = dpkt.ip6.IP6(
        src=HOST6, dst=PEER6, nxt=NEXT_HEADER_NONE, hlim=hop_limit, fc=traffic_class, flow=flow
    )
    theirs.data = payload
    theirs.plen = len(payload)
    header, parsed_payload = parse_ipv6(bytes(theirs))
    assert (header.hop_limit, header.flow_label, header.traffic_class) == (
        hop_limit,
        flow,
        traffic_class,
    )
    assert bytes(parsed_payload) == payload


@SETTINGS
@given(data=st.binary(max_size=120))
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    try:
        header, payload = parse_ipv6(data)
        chain = skip_extension_headers(header.next_header, payload)
    except WireError:
        return
    assert chain.header_length + len(chain.payload) == header.payload_length


@SETTINGS
@given(next_header=st.integers(0, 255), payload=st.binary(max_size=120))
def test_arbitrary_extension_chains_raise_only_wire_error(next_header: int, payload: bytes) -> None:
    try:
        chain = skip_extension_headers(next_header, payload)
    except WireError:
        return
    assert chain.header_length + len(chain.payload) == len(payload)


@SETTINGS
@given(cut=st.integers(0, len(GOLDEN)), bit=st.integers(0, 8 * len(GOLDEN) - 1))
def test_mutated_packets_raise_only_wire_error(cut: int, bit: int) -> None:
    flipped = bytearray(GOLDEN)
    flipped[bit // 8] ^= 1 << (bit % 8)
    for candidate in (GOLDEN[:cut], bytes(flipped)):
        try:
            header, payload = parse_ipv6(candidate)
            skip_extension_headers(header.next_header, payload)
        except WireError:
            continue

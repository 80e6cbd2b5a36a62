"""ICMPv6 (RFC 4443) and neighbour discovery (RFC 4861): golden bytes, dpkt, fuzzing."""

from __future__ import annotations

import ipaddress

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.wire.error import WireError
from aionetstack.wire.icmpv6 import (
    CODE_PORT_UNREACHABLE,
    TYPE_DESTINATION_UNREACHABLE,
    TYPE_ECHO_REPLY,
    TYPE_ECHO_REQUEST,
    TYPE_NEIGHBOR_ADVERTISEMENT,
    TYPE_NEIGHBOR_SOLICITATION,
    TYPE_PACKET_TOO_BIG,
    TYPE_TIME_EXCEEDED,
    Icmpv6Message,
    NeighborAdvertisement,
    NeighborSolicitation,
    build_echo,
    build_error,
    build_icmpv6,
    build_neighbor_advertisement,
    build_neighbor_solicitation,
    parse_icmpv6,
    parse_neighbor_advertisement,
    parse_neighbor_solicitation,
    solicited_node_address,
)
from aionetstack.wire.ipv6 import NEXT_HEADER_NONE, IPv6Header, build_ipv6

SETTINGS = settings(max_examples=300, deadline=None)
HOST6 = bytes.fromhex("fd00" + "00" * 13 + "02")
PEER6 = bytes.fromhex("fd00" + "00" * 13 + "01")
LINK_LOCAL = bytes.fromhex("fe80" + "00" * 13 + "02")
TARGET = bytes.fromhex("fe80" + "00" * 13 + "01")
SOLICITED = bytes.fromhex("ff02" + "00" * 9 + "01ff000001")
HOST_MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")

# RFC 4443 §4.1 echo request fd00::2 -> fd00::1, id 1, seq 2, "abc"; the checksum
# c14f covers the RFC 8200 §8.1 pseudo-header (dpkt's IP6 computes the same).
GOLDEN_ECHO = bytes.fromhex("8000c14f00010002616263")


def dpkt_checksum(
    source: bytes, destination: bytes, icmp_type: int, body: bytes, code: int = 0
) -> int:
    """Let dpkt's IP6 compute the ICMPv6 checksum of ``body`` (what follows the checksum)."""
    message = dpkt.icmp6.ICMP6(type=icmp_type, code=code, data=body)
    packet = dpkt.ip6.IP6(
        src=source, dst=destination, nxt=58, hlim=255, data=message, plen=4 + len(body)
    )
    bytes(packet)
    return int(message.sum)


def test_build_golden_echo() -> None:
    raw = build_echo(HOST6, PEER6, reply=False, identifier=1, sequence=2, payload=b"abc")
    assert raw == GOLDEN_ECHO


def test_parse_golden_echo() -> None:
    message = parse_icmpv6(GOLDEN_ECHO, HOST6, PEER6)
    assert message == Icmpv6Message(TYPE_ECHO_REQUEST, 0, 0x0001_0002, b"abc", 0xC14F)
    assert (message.identifier, message.sequence, message.is_error) == (1, 2, False)


def test_checksum_covers_the_pseudo_header() -> None:
    with pytest.raises(WireError) as caught:
        parse_icmpv6(GOLDEN_ECHO, HOST6, HOST6)
    assert caught.value.reason == "bad_checksum"
    assert parse_icmpv6(GOLDEN_ECHO, HOST6, HOST6, verify_checksum=False).payload == b"abc"


def test_truncated_message() -> None:
    with pytest.raises(WireError) as caught:
        parse_icmpv6(GOLDEN_ECHO[:7], HOST6, PEER6)
    assert caught.value.reason == "truncated"


def test_echo_reply() -> None:
    raw = build_echo(PEER6, HOST6, reply=True, identifier=0xBEEF, sequence=0xFFFF)
    message = parse_icmpv6(raw, PEER6, HOST6)
    assert (message.type, message.identifier, message.sequence) == (TYPE_ECHO_REPLY, 0xBEEF, 0xFFFF)


def test_packet_too_big_carries_a_32_bit_mtu() -> None:
    # The quote is a real IPv6 packet (dpkt decodes it): fixed header, "no next header".
    original = build_ipv6(IPv6Header(HOST6, PEER6, NEXT_HEADER_NONE), bytes(60))
    raw = build_error(TYPE_PACKET_TOO_BIG, 0, original, PEER6, HOST6, body=1280)
    message = parse_icmpv6(raw, PEER6, HOST6)
    assert (message.is_error, message.mtu, message.payload) == (True, 1280, original)
    theirs = dpkt.icmp6.ICMP6(raw)
    assert (theirs.type, theirs.data.mtu) == (TYPE_PACKET_TOO_BIG, 1280)


@pytest.mark.parametrize(
    ("icmp_type", "code"),
    [(TYPE_DESTINATION_UNREACHABLE, CODE_PORT_UNREACHABLE), (TYPE_TIME_EXCEEDED, 0)],
)
def test_errors_quote_at_most_what_fits_in_1280_bytes(icmp_type: int, code: int) -> None:
    raw = build_error(icmp_type, code, bytes(range(256)) * 8, PEER6, HOST6)
    assert 40 + len(raw) == 1280
    message = parse_icmpv6(raw, PEER6, HOST6)
    assert (message.type, message.code, message.payload) == (
        icmp_type,
        code,
        (bytes(range(256)) * 8)[:1232],
    )
    assert dpkt_checksum(PEER6, HOST6, icmp_type, raw[4:], code) == message.checksum


def test_error_builder_refuses_informational_types() -> None:
    with pytest.raises(ValueError):
        build_error(TYPE_ECHO_REQUEST, 0, b"", HOST6, PEER6)


def test_builder_wants_ipv6_addresses() -> None:
    with pytest.raises(ValueError):
        build_icmpv6(Icmpv6Message(TYPE_ECHO_REQUEST, 0), HOST6[:4], PEER6[:4])


@pytest.mark.parametrize("message", [Icmpv6Message(256, 0), Icmpv6Message(128, 256)])
def test_builder_rejects_out_of_range_type_and_code(message: Icmpv6Message) -> None:
    with pytest.raises(ValueError):
        build_icmpv6(message, HOST6, PEER6)


# RFC 4861 §4.3 neighbour solicitation fe80::2 -> ff02::1:ff00:1 for fe80::1,
# with a source link-layer address option (type 1, length 1, 6-byte MAC).
GOLDEN_NS_BODY = bytes(4) + TARGET + bytes.fromhex("0101") + HOST_MAC


def test_neighbor_solicitation_golden() -> None:
    solicitation = NeighborSolicitation(TARGET, HOST_MAC)
    raw = build_neighbor_solicitation(solicitation, LINK_LOCAL, SOLICITED)
    checksum = dpkt_checksum(LINK_LOCAL, SOLICITED, TYPE_NEIGHBOR_SOLICITATION, GOLDEN_NS_BODY)
    assert raw == bytes((135, 0)) + checksum.to_bytes(2, "big") + GOLDEN_NS_BODY
    message = parse_icmpv6(raw, LINK_LOCAL, SOLICITED)
    assert parse_neighbor_solicitation(message) == solicitation


def test_neighbor_solicitation_without_option() -> None:
    # Duplicate address detection (RFC 4862 §5.4.2): from ::, no source option.
    unspecified = bytes(16)
    raw = build_neighbor_solicitation(NeighborSolicitation(TARGET), unspecified, SOLICITED)
    assert len(raw) == 24
    parsed = parse_neighbor_solicitation(parse_icmpv6(raw, unspecified, SOLICITED))
    assert parsed == NeighborSolicitation(TARGET, None)


def test_neighbor_advertisement_golden() -> None:
    advertisement = NeighborAdvertisement(TARGET, solicited=True, override=True,
                                          target_link_address=PEER_MAC)  # fmt: skip
    raw = build_neighbor_advertisement(advertisement, TARGET, LINK_LOCAL)
    # Flags word: R=0, S=1, O=1 -> 0x60000000; option type 2 (target link-layer).
    body = bytes.fromhex("60000000") + TARGET + bytes.fromhex("0201") + PEER_MAC
    checksum = dpkt_checksum(TARGET, LINK_LOCAL, TYPE_NEIGHBOR_ADVERTISEMENT, body)
    assert raw == bytes((136, 0)) + checksum.to_bytes(2, "big") + body
    parsed = parse_neighbor_advertisement(parse_icmpv6(raw, TARGET, LINK_LOCAL))
    assert parsed == advertisement


def test_router_flag_and_unknown_options_are_skipped() -> None:
    # An unknown option (type 14, 2 units) before the target link-layer option.
    payload = TARGET + bytes((14, 2)) + bytes(14) + bytes.fromhex("0201") + PEER_MAC
    message = Icmpv6Message(TYPE_NEIGHBOR_ADVERTISEMENT, 0, 0x8000_0000, payload)
    parsed = parse_neighbor_advertisement(message)
    assert parsed == NeighborAdvertisement(TARGET, router=True, target_link_address=PEER_MAC)


def nd(icmp_type: int, payload: bytes, code: int = 0) -> Icmpv6Message:
    return Icmpv6Message(icmp_type, code, 0, payload)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (nd(TYPE_NEIGHBOR_ADVERTISEMENT, TARGET), "bad_type"),
        (nd(TYPE_NEIGHBOR_SOLICITATION, TARGET, code=1), "bad_code"),
        (nd(TYPE_NEIGHBOR_SOLICITATION, TARGET[:15]), "truncated"),
        (nd(TYPE_NEIGHBOR_SOLICITATION, SOLICITED), "bad_target"),
        (nd(TYPE_NEIGHBOR_SOLICITATION, TARGET + bytes.fromhex("0100") + HOST_MAC), "bad_option"),
        (nd(TYPE_NEIGHBOR_SOLICITATION, TARGET + bytes.fromhex("0102") + HOST_MAC), "bad_option"),
        (nd(TYPE_NEIGHBOR_SOLICITATION, TARGET + b"\x01"), "bad_option"),
    ],
    ids=["type", "code", "short", "multicast-target", "zero-length", "overlong", "one-byte"],
)
def test_neighbor_solicitation_rejections(message: Icmpv6Message, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_neighbor_solicitation(message)
    assert caught.value.reason == reason


def test_solicited_node_address() -> None:
    # RFC 4291 §2.7.1: ff02::1:ff + the low 24 bits.
    assert solicited_node_address(TARGET) == SOLICITED
    packed = ipaddress.IPv6Address("2001:db8::aa:1234:5678").packed
    assert str(ipaddress.IPv6Address(solicited_node_address(packed))) == "ff02::1:ff34:5678"
    with pytest.raises(ValueError):
        solicited_node_address(TARGET[:4])


@SETTINGS
@given(
    reply=st.booleans(),
    identifier=st.integers(0, 0xFFFF),
    sequence=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=100),
)
def test_echo_round_trip_and_dpkt_agree(
    reply: bool, identifier: int, sequence: int, payload: bytes
) -> None:
    raw = build_echo(
        HOST6, PEER6, reply=reply, identifier=identifier, sequence=sequence, payload=payload
    )
    ours = parse_icmpv6(raw, HOST6, PEER6)
    assert (ours.identifier, ours.sequence, ours.payload) == (identifier, sequence, payload)
    theirs = dpkt.icmp6.ICMP6(raw)
    assert (theirs.type, theirs.data.id, theirs.data.seq, bytes(theirs.data.data)) == (
        TYPE_ECHO_REPLY if reply else TYPE_ECHO_REQUEST,
        identifier,
        sequence,
        payload,
    )
    body = raw[4:]
    assert dpkt_checksum(HOST6, PEER6, theirs.type, body) == ours.checksum


@SETTINGS
@given(
    target=st.binary(min_size=16, max_size=16).filter(lambda address: address[0] != 0xFF),
    link_address=st.none() | st.binary(min_size=1, max_size=20),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_neighbor_messages_round_trip(
    target: bytes, link_address: bytes | None, flags: tuple[bool, bool, bool]
) -> None:
    solicitation = NeighborSolicitation(target, link_address)
    raw = build_neighbor_solicitation(solicitation, LINK_LOCAL, SOLICITED)
    assert len(raw) % 8 == 0
    parsed = parse_neighbor_solicitation(parse_icmpv6(raw, LINK_LOCAL, SOLICITED))
    assert parsed.target == target
    if link_address is None:
        assert parsed.source_link_address is None
    else:
        # Options pad to 8-byte units; the padding is part of the option data.
        assert parsed.source_link_address is not None
        assert parsed.source_link_address.rstrip(b"\x00") == link_address.rstrip(b"\x00")
    router, solicited, override = flags
    advertisement = NeighborAdvertisement(target, router, solicited, override, link_address)
    raw = build_neighbor_advertisement(advertisement, LINK_LOCAL, PEER6)
    parsed_na = parse_neighbor_advertisement(parse_icmpv6(raw, LINK_LOCAL, PEER6))
    assert (parsed_na.router, parsed_na.solicited, parsed_na.override) == flags


@SETTINGS
@given(data=st.binary(max_size=80), verify=st.booleans())
def test_arbitrary_bytes_raise_only_wire_error(data: bytes, verify: bool) -> None:
    try:
        message = parse_icmpv6(data, HOST6, PEER6, verify_checksum=verify)
    except WireError:
        return
    for parse in (parse_neighbor_solicitation, parse_neighbor_advertisement):
        try:
            parse(message)
        except WireError:
            pass


@SETTINGS
@given(options=st.binary(max_size=64), icmp_type=st.sampled_from([135, 136]))
def test_arbitrary_options_raise_only_wire_error(options: bytes, icmp_type: int) -> None:
    message = nd(icmp_type, TARGET + options)
    parse = parse_neighbor_solicitation if icmp_type == 135 else parse_neighbor_advertisement
    try:
        parse(message)
    except WireError:
        pass


@SETTINGS
@given(bit=st.integers(0, 8 * len(GOLDEN_ECHO) - 1))
def test_a_flipped_bit_fails_the_checksum(bit: int) -> None:
    flipped = bytearray(GOLDEN_ECHO)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(WireError):
        parse_icmpv6(bytes(flipped), HOST6, PEER6)

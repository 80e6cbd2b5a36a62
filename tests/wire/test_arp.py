"""ARP for IPv4 over Ethernet (RFC 826): golden bytes, replies, dpkt cross-checks, fuzzing."""

from __future__ import annotations

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.wire.arp import (
    OPERATION_REPLY,
    OPERATION_REQUEST,
    ArpPacket,
    build_arp,
    build_arp_reply,
    build_arp_request,
    parse_arp,
)
from aionetstack.wire.error import WireError

SETTINGS = settings(max_examples=300, deadline=None)
HOST_MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")
HOST = bytes([198, 18, 0, 2])
PEER = bytes([198, 18, 0, 1])

# RFC 826: hrd 1 (Ethernet), pro 0800, hln 6, pln 4, op 1, sha, spa, tha 0, tpa.
GOLDEN_REQUEST = bytes.fromhex("0001 0800 06 04 0001 020000000002 c6120002 000000000000 c6120001")


def test_build_golden_request() -> None:
    assert build_arp_request(HOST_MAC, HOST, PEER) == GOLDEN_REQUEST


def test_parse_golden_request() -> None:
    packet = parse_arp(GOLDEN_REQUEST)
    assert packet == ArpPacket(OPERATION_REQUEST, HOST_MAC, HOST, bytes(6), PEER)
    assert packet.is_request


def test_reply_swaps_sender_and_target() -> None:
    reply = parse_arp(build_arp_reply(parse_arp(GOLDEN_REQUEST), PEER_MAC))
    assert reply == ArpPacket(OPERATION_REPLY, PEER_MAC, PEER, HOST_MAC, HOST)
    assert not reply.is_request


def test_ethernet_padding_is_ignored() -> None:
    assert parse_arp(GOLDEN_REQUEST + bytes(18)) == parse_arp(GOLDEN_REQUEST)


def replace(offset: int, value: bytes) -> bytes:
    return GOLDEN_REQUEST[:offset] + value + GOLDEN_REQUEST[offset + len(value) :]


@pytest.mark.parametrize(
    "data",
    [
        replace(0, b"\x00\x06"),  # IEEE 802 hardware
        replace(2, b"\x86\xdd"),  # IPv6 protocol
        replace(4, b"\x08"),  # hardware length 8
        replace(5, b"\x10"),  # protocol length 16
        replace(6, b"\x00\x03"),  # RARP request
    ],
    ids=["hardware", "protocol", "hardware-length", "protocol-length", "operation"],
)
def test_unsupported_packets(data: bytes) -> None:
    with pytest.raises(WireError) as caught:
        parse_arp(data)
    assert caught.value.reason == "unsupported_arp"


def test_truncated() -> None:
    with pytest.raises(WireError) as caught:
        parse_arp(GOLDEN_REQUEST[:27])
    assert caught.value.reason == "truncated"


@pytest.mark.parametrize(
    "packet",
    [
        ArpPacket(3, HOST_MAC, HOST, PEER_MAC, PEER),
        ArpPacket(OPERATION_REPLY, HOST_MAC[:5], HOST, PEER_MAC, PEER),
        ArpPacket(OPERATION_REPLY, HOST_MAC, HOST, PEER_MAC, PEER + b"\x00"),
    ],
)
def test_build_rejects_bad_packets(packet: ArpPacket) -> None:
    with pytest.raises(ValueError):
        build_arp(packet)


macs = st.binary(min_size=6, max_size=6)
ipv4s = st.binary(min_size=4, max_size=4)
packets = st.builds(
    ArpPacket, st.sampled_from([OPERATION_REQUEST, OPERATION_REPLY]), macs, ipv4s, macs, ipv4s
)


@SETTINGS
@given(packet=packets)
def test_round_trip_and_dpkt_agree(packet: ArpPacket) -> None:
    raw = build_arp(packet)
    assert parse_arp(raw) == packet
    theirs = dpkt.arp.ARP(raw)
    assert (theirs.hrd, theirs.pro, theirs.hln, theirs.pln, theirs.op) == (
        1,
        0x0800,
        6,
        4,
        packet.operation,
    )
    assert (theirs.sha, theirs.spa, theirs.tha, theirs.tpa) == (
        packet.sender_hardware,
        packet.sender_protocol,
        packet.target_hardware,
        packet.target_protocol,
    )
    rebuilt = dpkt.arp.ARP(
        op=packet.operation,
        sha=packet.sender_hardware,
        spa=packet.sender_protocol,
        tha=packet.target_hardware,
        tpa=packet.target_protocol,
    )
    assert bytes(rebuilt) == raw


@SETTINGS
@given(data=st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    try:
        packet = parse_arp(data)
    except WireError:
        return
    assert build_arp(packet) == data[:28]

"""Ethernet II headers: golden bytes, 802.1Q, MAC helpers, dpkt cross-checks, fuzzing."""

from __future__ import annotations

import ipaddress

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.wire.error import WireError
from aionetstack.wire.ethernet import (
    BROADCAST_MAC,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    EthernetHeader,
    build_ethernet,
    format_mac,
    ipv4_multicast_mac,
    ipv6_multicast_mac,
    parse_ethernet,
    parse_mac,
)

SETTINGS = settings(max_examples=300, deadline=None)
HOST_MAC = bytes.fromhex("020000000002")
# Destination broadcast, source 02:00:00:00:00:02, type 0x0806 (ARP), payload "x".
GOLDEN = bytes.fromhex("ffffffffffff 020000000002 0806") + b"x"


def test_build_golden() -> None:
    assert build_ethernet(BROADCAST_MAC, HOST_MAC, ETHERTYPE_ARP, b"x") == GOLDEN


def test_parse_golden() -> None:
    header, payload = parse_ethernet(GOLDEN)
    assert header == EthernetHeader(BROADCAST_MAC, HOST_MAC, ETHERTYPE_ARP, None)
    assert bytes(payload) == b"x"


def test_padding_to_the_minimum_frame() -> None:
    frame = build_ethernet(BROADCAST_MAC, HOST_MAC, ETHERTYPE_ARP, b"x", pad=True)
    assert len(frame) == 14 + 46
    assert frame[15:] == bytes(45)
    long_payload = bytes(100)
    assert len(build_ethernet(BROADCAST_MAC, HOST_MAC, ETHERTYPE_IPV4, long_payload, pad=True)) == (
        114
    )


def test_vlan_tag_is_read() -> None:
    # 802.1Q: TPID 8100, TCI priority 0 / VLAN 100, then the inner EtherType.
    frame = bytes.fromhex("ffffffffffff 020000000002 8100 0064 0800") + b"E" * 20
    header, payload = parse_ethernet(frame)
    assert (header.vlan, header.ethertype, bytes(payload)) == (100, ETHERTYPE_IPV4, b"E" * 20)
    theirs = dpkt.ethernet.Ethernet(frame)
    assert [tag.id for tag in theirs.vlan_tags] == [header.vlan]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (GOLDEN[:13], "truncated"),
        (bytes.fromhex("ffffffffffff 020000000002 8100 00"), "truncated"),
        (bytes.fromhex("ffffffffffff 020000000002 002e") + bytes(46), "not_ethernet_ii"),
    ],
    ids=["short", "short-vlan", "802.3-length"],
)
def test_rejections(frame: bytes, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_ethernet(frame)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("destination", "source", "ethertype"),
    [(b"\x01" * 5, HOST_MAC, ETHERTYPE_IPV4), (BROADCAST_MAC, HOST_MAC, 0x05FF)],
)
def test_build_rejects_bad_arguments(destination: bytes, source: bytes, ethertype: int) -> None:
    with pytest.raises(ValueError):
        build_ethernet(destination, source, ethertype, b"")


def test_mac_text_round_trip() -> None:
    assert format_mac(HOST_MAC) == "02:00:00:00:00:02"
    assert parse_mac("02:00:00:00:00:02") == HOST_MAC
    assert parse_mac("0A-1b-2C-3d-4E-5f") == bytes.fromhex("0a1b2c3d4e5f")


@pytest.mark.parametrize(
    "text", ["02:00:00:00:00", "02:00:00:00:00:02:03", "2:00:00:00:00:02", "+f:00:00:00:00:02"]
)
def test_parse_mac_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a MAC"):
        parse_mac(text)


def test_multicast_macs() -> None:
    # RFC 1112 §6.4: 01:00:5e + low 23 bits; RFC 2464 §7: 33:33 + low 32 bits.
    assert ipv4_multicast_mac(ipaddress.IPv4Address("224.129.2.3").packed) == bytes.fromhex(
        "01005e010203"
    )
    solicited = ipaddress.IPv6Address("ff02::1:ff00:1").packed
    assert ipv6_multicast_mac(solicited) == bytes.fromhex("3333ff000001")
    with pytest.raises(ValueError):
        ipv6_multicast_mac(b"\xff\x02")
    with pytest.raises(ValueError):
        ipv4_multicast_mac(solicited)


macs = st.binary(min_size=6, max_size=6)


@SETTINGS
@given(
    destination=macs,
    source=macs,
    ethertype=st.sampled_from([ETHERTYPE_IPV4, ETHERTYPE_ARP, ETHERTYPE_IPV6, 0x88B5]),
    payload=st.binary(max_size=80),
)
def test_round_trip_and_dpkt_agree(
    destination: bytes, source: bytes, ethertype: int, payload: bytes
) -> None:
    frame = build_ethernet(destination, source, ethertype, payload)
    header, parsed = parse_ethernet(frame)
    assert header == EthernetHeader(destination, source, ethertype)
    assert bytes(parsed) == payload
    theirs = dpkt.ethernet.Ethernet()
    dpkt.Packet.unpack(theirs, frame)  # fixed fields only: the payload is random bytes
    assert (theirs.dst, theirs.src, theirs.type) == (destination, source, ethertype)
    built = dpkt.ethernet.Ethernet(dst=destination, src=source, type=ethertype, data=payload)
    assert bytes(built) == frame


@SETTINGS
@given(text=st.text(max_size=20))
def test_parse_mac_raises_only_value_error(text: str) -> None:
    try:
        mac = parse_mac(text)
    except ValueError:
        return
    assert len(mac) == 6
    assert parse_mac(format_mac(mac)) == mac


@SETTINGS
@given(data=st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    try:
        header, payload = parse_ethernet(data)
    except WireError:
        return
    assert len(payload) == len(data) - (14 if header.vlan is None else 18)

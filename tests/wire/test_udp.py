"""UDP (RFC 768) over IPv4 and IPv6: golden bytes, checksum rules, dpkt cross-checks, fuzzing."""

from __future__ import annotations

import dpkt
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aionetstack.wire.checksum import internet_checksum, pseudo_header_sum
from aionetstack.wire.error import WireError
from aionetstack.wire.udp import PROTO_UDP, UdpHeader, build_udp, parse_udp, udp_checksum

SETTINGS = settings(max_examples=300, deadline=None)
HOST = bytes([198, 18, 0, 2])
PEER = bytes([198, 18, 0, 1])
HOST6 = bytes.fromhex("fd00" + "00" * 13 + "02")
PEER6 = bytes.fromhex("fd00" + "00" * 13 + "01")

# 198.18.0.2:5000 -> 198.18.0.1:80, "hello world!": ports 1388/0050, length 20,
# checksum over pseudo-header + datagram = cdd6 (dpkt computes the same).
GOLDEN = bytes.fromhex("138800500014cdd6") + b"hello world!"


def test_build_golden() -> None:
    assert build_udp(5000, 80, b"hello world!", HOST, PEER) == GOLDEN


def test_parse_golden_with_checksum() -> None:
    header, payload = parse_udp(GOLDEN, source_address=HOST, destination_address=PEER)
    assert header == UdpHeader(5000, 80, 20, 0xCDD6)
    assert bytes(payload) == b"hello world!"


def test_bytes_past_the_length_field_are_ignored() -> None:
    header, payload = parse_udp(GOLDEN + b"pad", source_address=HOST, destination_address=PEER)
    assert header.length == 20
    assert bytes(payload) == b"hello world!"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (GOLDEN[:7], "truncated"),
        (GOLDEN[:4] + b"\x00\x07" + GOLDEN[6:], "bad_length"),
        (GOLDEN[:4] + b"\x00\x00" + GOLDEN[6:], "bad_length"),
        (GOLDEN[:4] + b"\x00\x15" + GOLDEN[6:], "truncated"),
        (GOLDEN[:-1] + b"?", "bad_checksum"),
    ],
    ids=["short", "length-7", "length-0", "length-past-end", "checksum"],
)
def test_rejections(data: bytes, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_udp(data, source_address=HOST, destination_address=PEER)
    assert caught.value.reason == reason


def test_checksum_is_not_checked_without_addresses() -> None:
    _, payload = parse_udp(GOLDEN[:-1] + b"?")
    assert bytes(payload) == b"hello world?"


def test_checksum_covers_the_pseudo_header() -> None:
    with pytest.raises(WireError) as caught:
        parse_udp(GOLDEN, source_address=HOST, destination_address=bytes([198, 18, 0, 3]))
    assert caught.value.reason == "bad_checksum"


def test_zero_checksum_means_none_over_ipv4() -> None:
    # RFC 768: an all-zero checksum field means the sender computed none.
    unchecked = GOLDEN[:6] + b"\x00\x00" + b"anything at all"[:12]
    header, payload = parse_udp(unchecked, source_address=HOST, destination_address=PEER)
    assert header.checksum == 0
    assert bytes(payload) == b"anything at "


def test_zero_checksum_is_invalid_over_ipv6() -> None:
    # RFC 8200 §8.1: IPv6 receivers must discard UDP packets with a zero checksum.
    raw = bytearray(build_udp(5000, 80, b"data", HOST6, PEER6))
    raw[6:8] = b"\x00\x00"
    with pytest.raises(WireError) as caught:
        parse_udp(raw, source_address=HOST6, destination_address=PEER6)
    assert caught.value.reason == "missing_checksum"


@pytest.mark.parametrize(("source", "destination"), [(HOST, PEER), (HOST6, PEER6)])
def test_computed_zero_is_sent_as_ffff(source: bytes, destination: bytes) -> None:
    # With a 2-byte payload equal to the checksum of the zero-payload datagram,
    # everything sums to 0xFFFF and the computed checksum is 0 (RFC 768).
    empty_checksum = build_udp(1, 2, b"\x00\x00", source, destination)[6:8]
    raw = build_udp(1, 2, empty_checksum, source, destination)
    assert raw[6:8] == b"\xff\xff"
    header, _ = parse_udp(raw, source_address=source, destination_address=destination)
    assert header.checksum == 0xFFFF


def test_udp_checksum_helper_never_returns_zero() -> None:
    assert udp_checksum(bytes.fromhex("ffff"), 0) == 0xFFFF
    assert udp_checksum(bytes.fromhex("0001"), 0) == 0xFFFE


def test_partial_checksum_holds_the_pseudo_header_sum() -> None:
    raw = build_udp(5000, 80, b"hello world!", HOST, PEER, checksum_partial=True)
    expected = pseudo_header_sum(HOST, PEER, PROTO_UDP, 20)
    assert int.from_bytes(raw[6:8], "big") == expected
    # Completing it as a NIC would (checksum over the datagram, seeded with the
    # field's contents) gives the full checksum.
    assert internet_checksum(raw) == 0xCDD6


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((70000, 80, b"", HOST, PEER), "source port"),
        ((1, -1, b"", HOST, PEER), "destination port"),
        ((1, 2, b"", HOST, PEER6), "same family"),
        ((1, 2, b"", b"\x01\x02", b"\x01\x02"), "4 or 16"),
        ((1, 2, bytes(65528), HOST, PEER), "exceeds"),
    ],
)
def test_build_rejects_bad_arguments(
    arguments: tuple[int, int, bytes, bytes, bytes], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_udp(*arguments)


ports = st.integers(0, 0xFFFF)


@SETTINGS
@given(source_port=ports, destination_port=ports, payload=st.binary(max_size=200))
def test_ipv4_round_trip_and_dpkt_agree(
    source_port: int, destination_port: int, payload: bytes
) -> None:
    raw = build_udp(source_port, destination_port, payload, HOST, PEER)
    header, parsed = parse_udp(raw, source_address=HOST, destination_address=PEER)
    assert (header.source_port, header.destination_port, bytes(parsed)) == (
        source_port,
        destination_port,
        payload,
    )
    packet = dpkt.ip.IP(src=HOST, dst=PEER, p=17, data=raw)
    theirs = dpkt.ip.IP(bytes(packet)).data
    assert (theirs.sport, theirs.dport, theirs.ulen, bytes(theirs.data)) == (
        source_port,
        destination_port,
        8 + len(payload),
        payload,
    )
    # dpkt recomputes the checksum when asked; it must match ours.
    theirs.sum = 0
    rebuilt = dpkt.ip.IP(src=HOST, dst=PEER, p=17, data=theirs)
    assert bytes(rebuilt)[20:] == raw


@SETTINGS
@given(source_port=ports, destination_port=ports, payload=st.binary(max_size=200))
@example(source_port=0, destination_port=1490, payload=bytes(4))  # the sum comes to 0
def test_ipv6_round_trip_and_dpkt_agree(
    source_port: int, destination_port: int, payload: bytes
) -> None:
    theirs = dpkt.udp.UDP(
        sport=source_port, dport=destination_port, ulen=8 + len(payload), data=payload
    )
    packet = bytes(dpkt.ip6.IP6(src=HOST6, dst=PEER6, nxt=17, hlim=64, data=theirs))
    ours = build_udp(source_port, destination_port, payload, HOST6, PEER6)
    # A computed checksum of 0 goes out as 0xFFFF (RFC 768; mandatory over IPv6,
    # RFC 8200 §8.1); dpkt leaves it 0, which an IPv6 receiver must drop.
    expected_sum = theirs.sum or 0xFFFF
    assert ours == packet[40:46] + expected_sum.to_bytes(2, "big") + packet[48:]
    header, parsed = parse_udp(ours, source_address=HOST6, destination_address=PEER6)
    assert header.checksum == expected_sum
    assert bytes(parsed) == payload


@SETTINGS
@given(data=st.binary(max_size=40), family=st.sampled_from([(HOST, PEER), (HOST6, PEER6)]))
def test_arbitrary_bytes_raise_only_wire_error(data: bytes, family: tuple[bytes, bytes]) -> None:
    source, destination = family
    try:
        header, payload = parse_udp(data, source_address=source, destination_address=destination)
    except WireError:
        return
    assert 8 <= header.length <= len(data)
    assert len(payload) == header.length - 8


@SETTINGS
@given(cut=st.integers(0, len(GOLDEN) - 1), bit=st.integers(0, 8 * len(GOLDEN) - 1))
def test_mutations_are_rejected(cut: int, bit: int) -> None:
    flipped = bytearray(GOLDEN)
    flipped[bit // 8] ^= 1 << (bit % 8)
    for candidate in (GOLDEN[:cut], bytes(flipped)):
        with pytest.raises(WireError):
            parse_udp(candidate, source_address=HOST, destination_address=PEER)

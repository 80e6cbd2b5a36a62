"""ICMPv4 messages (RFC 792): golden bytes, dpkt cross-checks, error quoting, fuzzing."""

from __future__ import annotations

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.wire.error import WireError
from aionetstack.wire.icmpv4 import (
    CODE_FRAGMENTATION_NEEDED,
    CODE_PORT_UNREACHABLE,
    TYPE_DESTINATION_UNREACHABLE,
    TYPE_ECHO_REPLY,
    TYPE_ECHO_REQUEST,
    TYPE_TIME_EXCEEDED,
    IcmpMessage,
    build_echo,
    build_error,
    build_icmpv4,
    parse_icmpv4,
)

SETTINGS = settings(max_examples=300, deadline=None)

# RFC 792 echo: type 8, code 0, checksum, identifier 1, sequence 2, data "abc".
# Checksum by hand: ~(0x0800 + 0x0001 + 0x0002 + 0x6162 + 0x6300) = 0x339a.
GOLDEN_ECHO = bytes.fromhex("0800339a00010002616263")


def test_parse_golden_echo_request() -> None:
    message = parse_icmpv4(GOLDEN_ECHO)
    assert message == IcmpMessage(TYPE_ECHO_REQUEST, 0, 1, 2, b"abc", 0x339A)
    assert not message.is_error


def test_build_golden_echo_request() -> None:
    assert build_echo(reply=False, identifier=1, sequence=2, payload=b"abc") == GOLDEN_ECHO


def test_echo_reply_type() -> None:
    reply = parse_icmpv4(build_echo(reply=True, identifier=7, sequence=9, payload=b"x"))
    assert (reply.type, reply.identifier, reply.sequence, reply.payload) == (
        TYPE_ECHO_REPLY,
        7,
        9,
        b"x",
    )


def test_bad_checksum_and_truncation_are_rejected() -> None:
    damaged = bytearray(GOLDEN_ECHO)
    damaged[-1] ^= 0x01
    with pytest.raises(WireError) as caught:
        parse_icmpv4(damaged)
    assert caught.value.reason == "bad_checksum"
    assert parse_icmpv4(damaged, verify_checksum=False).payload == b"abb"
    with pytest.raises(WireError) as caught:
        parse_icmpv4(GOLDEN_ECHO[:7])
    assert caught.value.reason == "truncated"


def test_fragmentation_needed_carries_the_mtu() -> None:
    # The quote: an IPv4 header (198.18.0.2 -> 198.18.0.1, UDP) plus 8 bytes.
    original = bytes.fromhex("4500001c1234400040119c75c6120002c6120001") + b"x" * 8
    raw = build_error(
        TYPE_DESTINATION_UNREACHABLE, CODE_FRAGMENTATION_NEEDED, original, next_hop_mtu=1400
    )
    message = parse_icmpv4(raw)
    assert message.is_error
    assert (message.code, message.sequence, message.payload) == (4, 1400, original)
    theirs = dpkt.icmp.ICMP(raw)
    assert (theirs.type, theirs.code, theirs.data.mtu) == (3, 4, 1400)
    assert bytes(theirs.data.data) == original  # dpkt parses the quote as IP


def test_error_quote_fits_in_576_bytes() -> None:
    raw = build_error(TYPE_TIME_EXCEEDED, 0, bytes(2000))
    assert 20 + len(raw) == 576
    assert parse_icmpv4(raw).payload == bytes(548)


@pytest.mark.parametrize("message", [IcmpMessage(256, 0), IcmpMessage(8, -1)])
def test_builder_rejects_out_of_range_type_and_code(message: IcmpMessage) -> None:
    with pytest.raises(ValueError):
        build_icmpv4(message)


def test_error_builder_refuses_non_error_types() -> None:
    with pytest.raises(ValueError):
        build_error(TYPE_ECHO_REQUEST, 0, b"")


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
    raw = build_echo(reply=reply, identifier=identifier, sequence=sequence, payload=payload)
    ours = parse_icmpv4(raw)
    assert (ours.identifier, ours.sequence, ours.payload) == (identifier, sequence, payload)
    theirs = dpkt.icmp.ICMP(raw)
    assert theirs.type == (0 if reply else 8)
    assert (theirs.data.id, theirs.data.seq, bytes(theirs.data.data)) == (
        identifier,
        sequence,
        payload,
    )
    assert theirs.sum == ours.checksum


@SETTINGS
@given(
    identifier=st.integers(0, 0xFFFF),
    sequence=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=100),
)
def test_parses_what_dpkt_builds(identifier: int, sequence: int, payload: bytes) -> None:
    echo = dpkt.icmp.ICMP.Echo(id=identifier, seq=sequence, data=payload)
    theirs = dpkt.icmp.ICMP(type=8, code=0, data=echo)
    raw = bytes(theirs)
    ours = parse_icmpv4(raw)
    assert (ours.type, ours.identifier, ours.sequence, ours.payload) == (
        8,
        identifier,
        sequence,
        payload,
    )
    assert ours.checksum == theirs.sum


def test_port_unreachable_parses_from_dpkt() -> None:
    quote = bytes(range(28))
    unreachable = dpkt.icmp.ICMP.Unreach(data=quote)
    raw = bytes(dpkt.icmp.ICMP(type=3, code=3, data=unreachable))
    message = parse_icmpv4(raw)
    assert (message.type, message.code, message.payload) == (3, CODE_PORT_UNREACHABLE, quote)


@SETTINGS
@given(data=st.binary(max_size=64), verify=st.booleans())
def test_arbitrary_bytes_raise_only_wire_error(data: bytes, verify: bool) -> None:
    try:
        message = parse_icmpv4(data, verify_checksum=verify)
    except WireError:
        return
    assert build_icmpv4(message)[4:] == data[4:]


@SETTINGS
@given(cut=st.integers(0, len(GOLDEN_ECHO)), bit=st.integers(0, 8 * len(GOLDEN_ECHO) - 1))
def test_mutations_are_rejected(cut: int, bit: int) -> None:
    flipped = bytearray(GOLDEN_ECHO)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(WireError):
        parse_icmpv4(bytes(flipped))
    if cut < 8:
        with pytest.raises(WireError):
            parse_icmpv4(GOLDEN_ECHO[:cut])

"""The send path's plain IPv4 headers (``wire/ipv4_send.py``, compiled by mypyc): the
same bytes ``build_ipv4_header`` makes for every field value, one at a time or in a row."""

from __future__ import annotations

import dpkt
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.wire.ipv4 import PROTO_UDP, IPv4Header, build_ipv4_header
from aionetstack.wire.ipv4_send import simple_ipv4_header, simple_ipv4_headers

SETTINGS = settings(max_examples=300, deadline=None)
addresses = st.binary(min_size=4, max_size=4)
bytes8 = st.integers(0, 255)
words = st.integers(0, 0xFFFF)
lengths = st.integers(0, 0xFFFF - 20)


#: source, destination, protocol, TTL, identification
fields = st.tuples(addresses, addresses, bytes8, bytes8, words)


def _reference(field_values: tuple[bytes, bytes, int, int, int], length: int) -> bytes:
    source, destination, protocol, ttl, ident = field_values
    header = IPv4Header(
        source, destination, protocol, ttl=ttl, identification=ident, dont_fragment=True
    )
    return build_ipv4_header(header, length)


def test_golden_header_matches_an_independent_parser() -> None:
    source, destination = bytes([198, 18, 0, 2]), bytes([198, 18, 0, 1])
    header = simple_ipv4_header(source, destination, PROTO_UDP, 8, ttl=64, identification=0x1234)
    assert header == bytes.fromhex("4500001c1234400040119c75c6120002c6120001")
    parsed = dpkt.ip.IP(header + bytes(8))
    assert parsed.sum == dpkt.ip.IP(bytes(parsed)).sum  # dpkt recomputes the same sum


@SETTINGS
@given(fields, lengths)
def test_one_header_is_what_build_ipv4_header_makes(
    field_values: tuple[bytes, bytes, int, int, int], length: int
) -> None:
    source, destination, protocol, ttl, ident = field_values
    got = simple_ipv4_header(source, destination, protocol, length, ttl=ttl, identification=ident)
    assert got == _reference(field_values, length)


@SETTINGS
@given(fields, st.lists(lengths, max_size=8))
def test_headers_in_a_row_count_the_identification_up_and_wrap(
    field_values: tuple[bytes, bytes, int, int, int], row: list[int]
) -> None:
    source, destination, protocol, ttl, ident = field_values
    got = simple_ipv4_headers(source, destination, protocol, row, ttl=ttl, identification=ident)
    expected = [
        _reference((source, destination, protocol, ttl, (ident + i) & 0xFFFF), length)
        for i, length in enumerate(row)
    ]
    assert got == expected

"""The send path's plain IPv4 headers (``wire/ipv4_send.py``: ``wire/_headers.c`` and
its Python twin, compiled by mypyc): the same bytes ``build_ipv4_header`` makes for
every field value, one at a time or in a row; a field out of range is a ValueError."""

from __future__ import annotations

import os
from collections.abc import Callable

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.wire import ipv4_send
from aionetstack.wire.ipv4 import PROTO_UDP, IPv4Header, build_ipv4_header
from aionetstack.wire.ipv4_send import simple_ipv4_header_python, simple_ipv4_headers

Builder = Callable[[bytes, bytes, int, int, int, int], bytes]
BUILDERS: list[Builder] = [simple_ipv4_header_python]
if ipv4_send.ACCELERATED:
    from aionetstack.wire import _headers

    BUILDERS.append(_headers.ipv4_header)

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


@pytest.mark.parametrize("build", BUILDERS)
def test_golden_header_matches_an_independent_parser(build: Builder) -> None:
    source, destination = bytes([198, 18, 0, 2]), bytes([198, 18, 0, 1])
    header = build(source, destination, PROTO_UDP, 8, 64, 0x1234)
    assert header == bytes.fromhex("4500001c1234400040119c75c6120002c6120001")
    parsed = dpkt.ip.IP(header + bytes(8))
    assert parsed.sum == dpkt.ip.IP(bytes(parsed)).sum  # dpkt recomputes the same sum


@SETTINGS
@given(fields, lengths)
def test_one_header_is_what_build_ipv4_header_makes(
    field_values: tuple[bytes, bytes, int, int, int], length: int
) -> None:
    source, destination, protocol, ttl, ident = field_values
    for build in BUILDERS:
        got = build(source, destination, protocol, length, ttl, ident)
        assert got == _reference(field_values, length)


@SETTINGS
@given(fields, st.lists(lengths, max_size=8))
def test_headers_in_a_row_count_the_identification_up_and_wrap(
    field_values: tuple[bytes, bytes, int, int, int], row: list[int]
) -> None:
    source, destination, protocol, ttl, ident = field_values
    got = simple_ipv4_headers(source, destination, protocol, row, ttl, ident)
    expected = [
        _reference((source, destination, protocol, ttl, (ident + i) & 0xFFFF), length)
        for i, length in enumerate(row)
    ]
    assert got == expected


@pytest.mark.skipif(not ipv4_send.ACCELERATED, reason="wire/_headers.c was not built")
@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((b"\x01\x02\x03", b"\x00" * 4, 6, 0, 64, 0), ValueError, "source must be 4 bytes"),
        ((bytearray(4), b"\x00" * 4, 6, 0, 64, 0), TypeError, "source must be bytes"),
        ((b"\x00" * 4, b"\x00" * 5, 6, 0, 64, 0), ValueError, "destination"),
        ((b"\x00" * 4, b"\x00" * 4, 256, 0, 64, 0), ValueError, "protocol"),
        ((b"\x00" * 4, b"\x00" * 4, 6, 65516, 64, 0), ValueError, "payload_length"),
        ((b"\x00" * 4, b"\x00" * 4, 6, -1, 64, 0), ValueError, "payload_length"),
        ((b"\x00" * 4, b"\x00" * 4, 6, 0, 64, 1 << 16), ValueError, "identification"),
        ((b"\x00" * 4, b"\x00" * 4, 6, 0, 64.0, 0), TypeError, "integer"),
    ],
)
def test_the_c_header_refuses_fields_out_of_range(
    args: tuple[object, ...], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        _headers.ipv4_header(*args)


def test_the_c_module_was_built_where_required() -> None:
    """CI (AIONETSTACK_REQUIRE_ACCEL=1) has a compiler: a silent fallback is a failure."""
    if not os.environ.get("AIONETSTACK_REQUIRE_ACCEL"):
        pytest.skip("AIONETSTACK_REQUIRE_ACCEL is not set")
    assert ipv4_send.ACCELERATED, "wire/_headers.c was not built: is a C compiler installed?"

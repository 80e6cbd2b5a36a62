"""The send path's TCP header with the timestamps alone (``wire/tcp_send.py``:
``wire/_headers.c`` and its Python twin): what ``build_tcp`` makes with the same fields
and options, read back alike by dpkt; a field out of range is a ValueError."""

from __future__ import annotations

import os
from collections.abc import Callable

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.wire import tcp_send
from aionetstack.wire.tcp import ACK, PSH, build_options, build_tcp
from aionetstack.wire.tcp_send import TIMESTAMP_HEADER_LENGTH, timestamp_header_python

Builder = Callable[[int, int, int, int, int, int, int, int, int], bytes]
BUILDERS: list[Builder] = [timestamp_header_python]
if tcp_send.ACCELERATED:
    from aionetstack.wire import _headers

    BUILDERS.append(_headers.tcp_timestamp_header)

words = st.integers(0, 0xFFFF)
longs = st.integers(0, 0xFFFFFFFF)


@pytest.mark.parametrize("build", BUILDERS)
def test_a_header_reads_back_through_an_independent_parser(build: Builder) -> None:
    header = build(40000, 80, 1, 2, ACK | PSH, 502, 0x1234, 7, 9)
    assert len(header) == TIMESTAMP_HEADER_LENGTH
    parsed = dpkt.tcp.TCP(header)
    assert (parsed.sport, parsed.dport, parsed.seq, parsed.ack) == (40000, 80, 1, 2)
    assert (parsed.flags, parsed.win, parsed.sum, parsed.off) == (ACK | PSH, 502, 0x1234, 8)
    options = dict(dpkt.tcp.parse_opts(parsed.opts))
    assert options[dpkt.tcp.TCP_OPT_TIMESTAMP] == (7).to_bytes(4, "big") + (9).to_bytes(4, "big")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    ports=st.tuples(words, words),
    numbers=st.tuples(longs, longs, longs, longs),
    flags=st.integers(0, 0xFF),
    window=words,
    checksum=words,
)
def test_every_field_value_packs_as_build_tcp_does(
    ports: tuple[int, int],
    numbers: tuple[int, int, int, int],
    flags: int,
    window: int,
    checksum: int,
) -> None:
    seq, ack, tsval, tsecr = numbers
    reference = bytearray(
        build_tcp(*ports, seq, ack, flags, window, options=build_options(timestamp=(tsval, tsecr)))
    )
    reference[16:18] = checksum.to_bytes(2, "big")  # written as given, not computed
    for build in BUILDERS:
        assert build(*ports, seq, ack, flags, window, checksum, tsval, tsecr) == reference


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize(
    "fields",
    [
        (1 << 16, 80, 1, 2, ACK, 1, 0, 0, 0),
        (1, 80, 1 << 32, 2, ACK, 1, 0, 0, 0),
        (1, 80, 1, 2, 0x100, 1, 0, 0, 0),
        (1, 80, 1, 2, ACK, 1, 0x10000, 0, 0),
        (1, 80, 1, 2, ACK, 1, 0, -1, 0),
        (1, 80, 1, 2, ACK, 1, 0, 0, 1 << 32),
    ],
)
def test_a_field_out_of_range_is_refused(build: Builder, fields: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        build(*fields)  # type: ignore[arg-type]


def test_the_c_module_was_built_where_required() -> None:
    """CI (AIONETSTACK_REQUIRE_ACCEL=1) has a compiler: a silent fallback is a failure."""
    if not os.environ.get("AIONETSTACK_REQUIRE_ACCEL"):
        pytest.skip("AIONETSTACK_REQUIRE_ACCEL is not set")
    assert tcp_send.ACCELERATED, "wire/_headers.c was not built: is a C compiler installed?"

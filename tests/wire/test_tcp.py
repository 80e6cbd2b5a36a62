"""wire/tcp.py: golden bytes, round trips, dpkt cross-checks, sequence arithmetic, fuzzing."""

from __future__ import annotations

import struct

import dpkt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aionetstack.wire.checksum import internet_checksum, pseudo_header_sum
from aionetstack.wire.error import WireError
from aionetstack.wire.tcp import (
    ACK,
    FIN,
    PSH,
    SYN,
    TcpOptions,
    build_options,
    build_tcp,
    flags_text,
    parse_options,
    parse_tcp,
    seq_add,
    seq_diff,
    seq_geq,
    seq_gt,
    seq_leq,
    seq_lt,
)

SRC = bytes([198, 18, 0, 1])
DST = bytes([198, 18, 0, 2])

# A Linux SYN: MSS 1460, SACK-permitted, TS, NOP, WS 7 (option layout as the kernel sends it).
LINUX_SYN_OPTIONS = bytes.fromhex("020405b40402080a0001e2400000000001030307")


def test_syn_options_golden_bytes() -> None:
    built = build_options(mss=1460, sack_permitted=True, timestamp=(123456, 0), window_scale=7)
    assert built == LINUX_SYN_OPTIONS


def test_data_segment_timestamp_layout_golden_bytes() -> None:
    assert build_options(timestamp=(1, 2)) == bytes.fromhex("0101080a0000000100000002")


def test_sack_blocks_golden_bytes() -> None:
    built = build_options(timestamp=(1, 2), sack_blocks=[(10, 20)])
    assert built == bytes.fromhex("0101080a00000001000000020101050a0000000a00000014")


def test_header_golden_bytes() -> None:
    raw = build_tcp(0x1234, 80, 1, 2, SYN | ACK, 0xFFFF)
    assert raw == bytes.fromhex("1234005000000001000000025012ffff00000000")


def test_checksum_verifies_over_pseudo_header() -> None:
    raw = build_tcp(1000, 80, 7, 9, ACK | PSH, 512, payload=b"hello", source=SRC, destination=DST)
    assert internet_checksum(raw, pseudo_header_sum(SRC, DST, 6, len(raw))) == 0
    raw6 = build_tcp(
        1000, 80, 7, 9, ACK, 512, payload=b"odd", source=bytes(16), destination=bytes(15) + b"\x01"
    )
    assert (
        internet_checksum(raw6, pseudo_header_sum(bytes(16), bytes(15) + b"\x01", 6, len(raw6)))
        == 0
    )


def test_parse_round_trip() -> None:
    options = build_options(mss=1400, window_scale=3, sack_permitted=True, timestamp=(5, 6))
    raw = build_tcp(40000, 443, 0xFFFFFFFF, 17, SYN, 1000, options=options, payload=b"xyz")
    segment = parse_tcp(raw)
    assert (segment.source_port, segment.destination_port, segment.seq, segment.ack) == (
        40000,
        443,
        0xFFFFFFFF,
        17,
    )
    assert segment.flags == SYN and segment.window == 1000
    assert segment.options == TcpOptions(
        mss=1400, window_scale=3, sack_permitted=True, timestamp=(5, 6)
    )
    assert bytes(segment.payload) == b"xyz"
    assert segment.sequence_length == 4


def test_sequence_length_counts_syn_and_fin() -> None:
    assert parse_tcp(build_tcp(1, 2, 0, 0, SYN | FIN, 0, payload=b"ab")).sequence_length == 4


@pytest.mark.parametrize(
    "options",
    [
        {"mss": 536},
        {"window_scale": 14, "sack_permitted": True},
        {"timestamp": (0xFFFFFFFF, 1)},
        {"timestamp": (9, 8), "sack_blocks": [(1, 2), (3, 4), (5, 6)]},
        {"sack_blocks": [(1, 2), (3, 4), (5, 6), (7, 8)]},
        {"mss": 1460, "sack_permitted": True, "timestamp": (1, 0), "window_scale": 7},
    ],
)
def test_options_cross_check_with_dpkt(options: dict[str, object]) -> None:
    raw = build_options(**options)  # type: ignore[arg-type]
    ours = parse_options(raw)
    theirs = dict(dpkt.tcp.parse_opts(raw))
    if "mss" in options:
        assert struct.unpack("!H", theirs[dpkt.tcp.TCP_OPT_MSS])[0] == ours.mss
    if "window_scale" in options:
        assert theirs[dpkt.tcp.TCP_OPT_WSCALE][0] == ours.window_scale
    if options.get("sack_permitted"):
        assert dpkt.tcp.TCP_OPT_SACKOK in theirs and ours.sack_permitted
    if "timestamp" in options:
        assert struct.unpack("!II", theirs[dpkt.tcp.TCP_OPT_TIMESTAMP]) == ours.timestamp
    if "sack_blocks" in options:
        body = theirs[dpkt.tcp.TCP_OPT_SACK]
        edges = struct.unpack(f"!{len(body) // 4}I", body)
        assert tuple(zip(edges[::2], edges[1::2], strict=True)) == ours.sack_blocks


def test_header_cross_check_with_dpkt() -> None:
    options = build_options(timestamp=(77, 88))
    raw = build_tcp(
        5555,
        80,
        1_000_000,
        2_000_000,
        ACK | PSH,
        4321,
        options=options,
        payload=b"data!",
        source=SRC,
        destination=DST,
    )
    theirs = dpkt.tcp.TCP(raw)
    ours = parse_tcp(raw)
    assert (theirs.sport, theirs.dport, theirs.seq, theirs.ack) == (5555, 80, 1_000_000, 2_000_000)
    assert theirs.flags == ours.flags and theirs.win == ours.window and theirs.sum == ours.checksum
    assert theirs.data == bytes(ours.payload) and theirs.opts == options


def test_dpkt_built_segment_parses() -> None:
    theirs = dpkt.tcp.TCP(
        sport=1,
        dport=2,
        seq=3,
        ack=4,
        flags=dpkt.tcp.TH_SYN,
        win=5,
        opts=b"\x02\x04\x05\xb4\x01\x01\x04\x02",
        data=b"",
    )
    theirs.off = (20 + len(theirs.opts)) // 4
    ours = parse_tcp(bytes(theirs))
    assert ours.options.mss == 1460 and ours.options.sack_permitted and ours.flags == SYN


def test_unknown_option_skipped_by_length() -> None:
    raw = bytes([30, 6, 1, 2, 3, 4]) + bytes([2, 4, 0x05, 0xB4])
    assert parse_options(raw).mss == 1460


def test_eol_stops_parsing() -> None:
    assert parse_options(bytes([0, 2, 4, 5, 0xB4])).mss is None


@pytest.mark.parametrize(
    "raw",
    [
        bytes([2]),  # kind without length
        bytes([2, 1]),  # length below 2
        bytes([2, 6, 0, 0]),  # past the end
        bytes([2, 3, 5]),  # MSS of the wrong size
        bytes([8, 6, 0, 0, 0, 0]),  # timestamp of the wrong size
        bytes([5, 2]),  # SACK with no blocks
        bytes([5, 6, 0, 0, 0, 0]),  # SACK with a partial block
    ],
)
def test_malformed_options_raise_wire_error(raw: bytes) -> None:
    with pytest.raises(WireError) as info:
        parse_options(raw)
    assert info.value.reason == "bad_option"


def test_truncated_and_bad_offset() -> None:
    with pytest.raises(WireError, match="shorter") as info:
        parse_tcp(b"\x00" * 19)
    assert info.value.reason == "truncated"
    bad = bytearray(build_tcp(1, 2, 0, 0, ACK, 0))
    bad[12] = 0x40
    with pytest.raises(WireError) as info:
        parse_tcp(bad)
    assert info.value.reason == "bad_header_length"
    bad[12] = 0xF0
    with pytest.raises(WireError) as info:
        parse_tcp(bad)
    assert info.value.reason == "truncated"


def test_window_scale_above_14_is_clamped() -> None:
    """RFC 7323 §2.3: a shift count above 14 is used as 14."""
    assert parse_options(bytes([3, 3, 20, 1])).window_scale == 14


def test_build_rejects_oversized_options() -> None:
    with pytest.raises(ValueError, match="exceed 40"):
        build_options(timestamp=(1, 2), sack_blocks=[(1, 2)] * 4)
    with pytest.raises(ValueError):
        build_tcp(1, 2, 0, 0, 0, 0, options=b"\x01")


def test_flags_text() -> None:
    assert flags_text(SYN | ACK) == "S."
    assert flags_text(0) == "none"


# --- sequence arithmetic ---------------------------------------------------------------


def test_seq_comparisons_across_wrap() -> None:
    top = 0xFFFFFFF0
    assert seq_lt(top, 5) and seq_gt(5, top)
    assert seq_leq(5, 5) and seq_geq(5, 5) and not seq_lt(5, 5)
    assert seq_add(top, 0x20) == 0x10
    assert seq_diff(0x10, top) == 0x20 and seq_diff(top, 0x10) == -0x20


@given(st.integers(0, 2**32 - 1), st.integers(-(2**31) + 1, 2**31 - 1))
def test_seq_diff_inverts_seq_add(a: int, n: int) -> None:
    b = seq_add(a, n)
    assert seq_diff(b, a) == n
    assert seq_lt(a, b) == (n > 0)
    assert seq_leq(a, b) == (n >= 0)
    assert seq_gt(b, a) == (n > 0)
    assert seq_geq(b, a) == (n >= 0)


@given(st.binary(max_size=80))
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    try:
        parse_tcp(data)
    except WireError:
        pass


@given(st.binary(max_size=40))
def test_arbitrary_options_raise_only_wire_error(data: bytes) -> None:
    try:
        parse_options(data)
    except WireError:
        pass


@given(
    st.integers(0, 65535),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.integers(0, 65535),
    st.binary(max_size=100),
    st.one_of(st.none(), st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))),
)
def test_build_parse_round_trip(  # noqa: PLR0917
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    payload: bytes,
    timestamp: tuple[int, int] | None,
) -> None:
    raw = build_tcp(
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        options=build_options(timestamp=timestamp),
        payload=payload,
        source=SRC,
        destination=DST,
    )
    segment = parse_tcp(raw)
    assert (segment.source_port, segment.destination_port, segment.seq, segment.ack) == (
        sport,
        dport,
        seq,
        ack,
    )
    assert (segment.flags, segment.window, bytes(segment.payload)) == (flags, window, payload)
    assert segment.options.timestamp == timestamp
    assert internet_checksum(raw, pseudo_header_sum(SRC, DST, 6, len(raw))) == 0


@given(
    st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
    st.integers(0, 255),
)  # fmt: skip
def test_the_syn_layout_parses_the_same_by_the_fast_path(
    mss: int, tsval: int, tsecr: int, shift: int
) -> None:
    raw = struct.pack("!BBHBBBBIIBBBB", 2, 4, mss, 4, 2, 8, 10, tsval, tsecr, 1, 3, 3, shift)
    fast = parse_options(raw)
    general = parse_options(raw + b"\x01\x01\x01\x01")  # NOPs: the general loop's answer
    assert fast == general
    assert fast.mss == mss and fast.timestamp == (tsval, tsecr) and fast.sack_permitted

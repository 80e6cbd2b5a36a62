"""Software GRO's C pass (core/_gro.c) against its Python twin, ``coalesce_python``.

For every batch drawn, both must return the same items in the same order (a packet
passed on as the very object given, a merged segment with the same bytes and count)
and count the same merges and thinned ACKs. The batches are made of flows' data
segments in and out of order, pure ACKs, control segments, bad checksums, other
protocols and junk, as ``bytes``, ``bytearray`` and views into larger buffers (as a
TUN link lends them), then bytes overwritten at drawn offsets.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aionetstack.core import gro
from aionetstack.core.gro import Coalescer, MergedSegment
from aionetstack.testing.segments import make_segment
from aionetstack.wire import ipv4, ipv6
from aionetstack.wire.tcp import ACK, FIN, PSH, RST, SYN, URG, build_options
from aionetstack.wire.udp import build_udp

needs_c = pytest.mark.skipif(not gro.ACCELERATED, reason="core/_gro.c was not built")

HOSTS4 = [bytes([198, 18, 0, n]) for n in (1, 2, 3)]
HOSTS6 = [bytes.fromhex(f"2001000200000000000000000000000{n}") for n in (1, 2, 3)]
UDP_PACKET = ipv4.build_ipv4(
    ipv4.IPv4Header(HOSTS4[0], HOSTS4[2], 17), build_udp(1, 2, b"x" * 30, HOSTS4[0], HOSTS4[2])
)
OPTION_LAYOUTS = [
    b"",
    build_options(timestamp=(7, 9)),
    build_options(timestamp=(8, 9)),
    build_options(timestamp=(7, 9), sack_blocks=[(100, 200)]),
]


def packet(  # noqa: PLR0917
    version: int, flow: int, seq: int, size: int, flags: int, ack: int, window: int,
    options: bytes, ttl: int,
) -> bytes:  # fmt: skip
    """A segment of ``flow`` (0-2: its ports and hosts) with correct checksums."""
    hosts = HOSTS4 if version == 4 else HOSTS6
    source, destination = hosts[flow % 2], hosts[2]
    payload = random.Random(seq ^ size).randbytes(size)
    segment = make_segment(
        source, destination, 40000 + flow, 80, seq=seq & 0xFFFFFFFF, ack=ack, flags=flags,
        window=window, options=options, payload=payload,
    )  # fmt: skip
    if version == 4:
        header = ipv4.IPv4Header(source, destination, ipv4.PROTO_TCP, ttl=ttl)
        return ipv4.build_ipv4(header, segment)
    return ipv6.build_ipv6(
        ipv6.IPv6Header(source, destination, ipv4.PROTO_TCP, hop_limit=ttl), segment
    )


@st.composite
def batches(draw: st.DrawFn) -> list[bytes]:
    """Packets of one to three flows of IPv4, IPv6 or both, mostly in order, with
    variations in every field a run or an ACK run compares."""
    versions = draw(st.sampled_from([[4], [6], [4, 6]]))
    flows = draw(st.sampled_from([[0], [0, 1], [0, 1, 2]]))
    next_seq: dict[tuple[int, int], int] = {}
    acks: dict[tuple[int, int], int] = {}
    out: list[bytes] = []
    for _ in range(draw(st.integers(0, 40))):
        version = draw(st.sampled_from(versions))
        flow = draw(st.sampled_from(flows))
        key = (version, flow)
        seq = next_seq.setdefault(key, draw(st.sampled_from([1000, 0xFFFFF000])))
        kind = draw(st.sampled_from(KINDS))
        if kind == "other":
            out.append(draw(st.sampled_from([UDP_PACKET, b"", bytes(45)])))
            continue
        ack = acks.get(key, 5000)
        size = draw(st.sampled_from([1448, 1448, 1448, 700, 0, 9000]))
        flags = ACK | (PSH if draw(st.integers(0, 5)) == 0 else 0)
        if kind == "ack":
            size = 0
            ack = acks[key] = (ack + draw(st.sampled_from([0, 1, 1448, -1]))) & 0xFFFFFFFF
        elif kind == "control":
            flags = draw(st.sampled_from([SYN, FIN | ACK, RST, ACK | URG, 0]))
        elif kind == "reorder":
            seq = (seq - draw(st.sampled_from([1448, 2896]))) & 0xFFFFFFFF
        elif draw(st.integers(0, 7)) == 0:
            ack += 1  # data acknowledging more than the run's first
        window = draw(st.sampled_from([4000, 4000, 4000, 4001]))
        options = draw(st.sampled_from(OPTION_LAYOUTS[:2] * 3 + OPTION_LAYOUTS))
        ttl = draw(st.sampled_from([64, 64, 64, 63]))
        made = packet(version, flow, seq, size, flags, ack, window, options, ttl)
        if kind == "odd":  # a header field no run takes, or a seq off by one
            made = draw(st.sampled_from(list(odd_variants(made, version))))
        out.append(made)
        if kind == "data":
            next_seq[key] = (seq + size) & 0xFFFFFFFF
    for _ in range(draw(st.integers(0, 2))):  # a byte overwritten anywhere
        if out:
            index = draw(st.integers(0, len(out) - 1))
            raw = bytearray(out[index])
            if raw:
                raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
            out[index] = bytes(raw)
    return out


KINDS = ["data"] * 8 + ["ack"] * 4 + ["reorder", "control", "other", "odd"]


def odd_variants(made: bytes, version: int) -> list[bytes]:
    """``made`` with one field a run or an ACK run must notice: AccECN's reserved bits,
    the sequence number one off, and for IPv4 the MF bit, a trailing pad byte and a
    header with options; for IPv6 another next header. Checksums are not fixed up."""
    ip_length = 20 if version == 4 else 40
    variants = []
    raw = bytearray(made)
    raw[ip_length + 12] |= 0x01
    variants.append(bytes(raw))
    raw = bytearray(made)
    raw[ip_length + 7] ^= 0x01
    variants.append(bytes(raw))
    if version == 4:
        raw = bytearray(made)
        raw[6] |= 0x20
        variants += [bytes(raw), made + b"\x00", b"\x46" + made[1:20] + bytes(4) + made[20:]]
    else:
        raw = bytearray(made)
        raw[6] = 0
        variants.append(bytes(raw))
    return variants


def as_given(packets: list[bytes], form: str) -> list[bytes | bytearray | memoryview]:
    """The batch as a link might hand it over."""
    if form == "bytes":
        return list(packets)
    if form == "bytearray":
        return [bytearray(p) for p in packets]
    # Views past a 10-byte virtio_net_hdr into larger buffers, as TunLink lends them.
    return [memoryview(bytes(10) + p + bytes(7))[10 : 10 + len(p)] for p in packets]


def both(
    packets: Sequence[bytes | bytearray | memoryview], *, verify: bool, thin: bool = False
) -> tuple[Coalescer, list[object], Coalescer, list[object]]:
    """The C pass and its Python twin on ``packets``: ``coalesce`` and
    ``coalesce_python``, or with ``thin`` the ACK-only ``thin_acks`` and
    ``thin_acks_python``."""
    native, python = Coalescer(None, verify=verify), Coalescer(None, verify=verify)  # type: ignore[arg-type]
    if thin:
        return native, native.thin_acks(packets), python, python.thin_acks_python(packets)  # type: ignore[return-value]
    return native, native.coalesce(packets), python, python.coalesce_python(packets)  # type: ignore[return-value]


def assert_same(
    packets: Sequence[object], native: Coalescer, got: list[object], python: Coalescer,
    expected: list[object],
) -> None:  # fmt: skip
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        if isinstance(theirs, MergedSegment):
            assert isinstance(mine, MergedSegment)
            assert mine.packet == theirs.packet
            assert mine.count == theirs.count
            assert type(mine.packet) is bytes
        else:
            assert mine is theirs, "a packet passed on must be the object given"
            assert any(mine is p for p in packets)
    assert native.statistics() == python.statistics()


@needs_c
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.sampled_from(["bytes", "bytearray", "view"]), st.booleans())
def test_the_c_pass_equals_the_python_one(packets: list[bytes], form: str, verify: bool) -> None:
    given_packets = as_given(packets, form)
    assert_same(given_packets, *both(given_packets, verify=verify))


@needs_c
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.sampled_from(["bytes", "bytearray", "view"]), st.booleans())
def test_the_c_ack_pass_equals_the_python_one(
    packets: list[bytes], form: str, verify: bool
) -> None:
    """The ACK-only pass of an offload link (``thin_acks``): the same items and count."""
    given_packets = as_given(packets, form)
    assert_same(given_packets, *both(given_packets, verify=verify, thin=True))


@needs_c
@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=80), max_size=30), st.booleans())
def test_the_c_pass_equals_the_python_one_on_arbitrary_bytes(
    packets: list[bytes], verify: bool
) -> None:
    assert_same(packets, *both(packets, verify=verify))
    assert_same(packets, *both(packets, verify=verify, thin=True))


@needs_c
def test_a_run_is_merged_and_the_batch_order_kept() -> None:
    """A hand-checked batch: a merge, a reordered segment alone, a thinned ACK run."""
    data = [packet(4, 0, 1000 + i * 1448, 1448, ACK, 5000, 4000, b"", 64) for i in range(4)]
    late = packet(4, 0, 1000 - 1448, 1448, ACK, 5000, 4000, b"", 64)
    pure = [packet(4, 1, 1, 0, ACK, 100 + n, 4000, b"", 64) for n in range(4)]
    batch = [*data, late, *pure]
    native, got, python, expected = both(batch, verify=True)
    assert_same(batch, native, got, python, expected)
    first = got[0]
    assert isinstance(first, MergedSegment) and first.count == 4
    assert len(first.packet) == 20 + 20 + 4 * 1448
    assert got[1:] == [late, pure[0], pure[3]]  # ACKs 101 and 102 left out: 103 stands
    assert native.statistics() == {"merged": 1, "segments_merged": 4, "acks_thinned": 2}


def data(number: int, *, flags: int = ACK, size: int = 1448, version: int = 4) -> bytes:
    """Flow 0's data segment ``number`` (1,448 bytes each from seq 1000)."""
    return packet(version, 0, 1000 + number * 1448, size, flags, 5000, 4000, b"", 64)


def pure_ack(ack: int, *, seq: int = 1, options: bytes = b"") -> bytes:
    return packet(4, 1, seq, 0, ACK, ack, 4000, options, 64)


def edited(made: bytes, *changes: tuple[int, int]) -> bytes:
    """``made`` with bytes set (offset, value) and checksums left as they were."""
    raw = bytearray(made)
    for offset, value in changes:
        raw[offset] = value
    return bytes(raw)


def offset_checksums(made: bytes) -> bytes:
    """An IPv4 header checksum one too high and a TCP checksum one too low: the sum over
    the whole packet is right, the header's alone is not."""
    raw = bytearray(made)
    ip_checksum = (raw[10] << 8 | raw[11]) + 1
    tcp_checksum = (raw[36] << 8 | raw[37]) - 1
    raw[10:12] = (ip_checksum % 0xFFFF).to_bytes(2, "big")
    raw[36:38] = (tcp_checksum % 0xFFFF).to_bytes(2, "big")
    return bytes(raw)


#: (name, batch, verify, the items expected: "M<n>" a merge of n, an int the batch's
#: packet at that index passed on as it is).
SCENARIOS: list[tuple[str, list[bytes], bool, list[object]]] = [
    (
        "a packet of no flow ends every ACK run",
        [pure_ack(1), pure_ack(2), UDP_PACKET, pure_ack(3), pure_ack(4)],
        True,
        [0, 1, 2, 3, 4],
    ),
    (
        "a segment alone moves its flow's end",
        [data(0), data(1), data(0), data(2), data(3)],
        True,
        ["M2", 2, 3, 4],
    ),
    (
        "AccECN's reserved bit ends a run",
        [data(0), edited(data(1), (32, 0x51)), data(2)],
        False,
        [0, 1, 2],
    ),
    (
        "a segment with PSH closes its run",
        [data(0), data(1, flags=ACK | PSH), data(2)],
        True,
        ["M2", 2],
    ),
    (
        "a shorter segment closes its run",
        [
            data(0),
            data(1, size=700),
            packet(4, 0, 1000 + 1448 + 700, 1448, ACK, 5000, 4000, b"", 64),
        ],
        True,
        ["M2", 2],
    ),
    ("an IPv4 pad byte is not payload", [data(0) + b"\x00", data(1), data(2)], False, [0, "M2"]),
    (
        "IPv4 fragments are not merged",
        [edited(data(0), (6, 0x20)), edited(data(1), (6, 0x20)), data(2)],
        False,
        [0, 1, 2],
    ),
    (
        "an ACK run is of one sequence number",
        [pure_ack(1), pure_ack(2), pure_ack(3, seq=2), pure_ack(4, seq=2)],
        True,
        [0, 1, 2, 3],
    ),
    (
        "an ACK with options other than the timestamps is never thinned",
        [pure_ack(n, options=b"\x01\x01\x01\x01") for n in (1, 2, 3)],
        True,
        [0, 1, 2],
    ),
    (
        "a wrong IPv4 header checksum is caught on its own",
        [offset_checksums(data(0)), data(1), data(2)],
        True,
        [0, "M2"],
    ),
    (
        "thinning: the first and the newest stay",
        [pure_ack(1), pure_ack(2), pure_ack(3), pure_ack(4)],
        True,
        [0, 3],
    ),
    ("IPv6 runs", [data(n, version=6) for n in range(3)], True, ["M3"]),
]


@needs_c
@pytest.mark.parametrize(
    ("batch", "verify", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in SCENARIOS],
)
def test_each_rule_alike(batch: list[bytes], verify: bool, expected: list[object]) -> None:
    """Each rule of gro.py's docstring, in a batch where breaking it changes the output."""
    native, got, python, want = both(batch, verify=verify)
    assert_same(batch, native, got, python, want)
    shape = [
        f"M{item.count}" if isinstance(item, MergedSegment)
        else next(i for i, p in enumerate(batch) if p is item)
        for item in want
    ]  # fmt: skip
    assert shape == expected


def pure_ack6(ack: int, *, options: bytes = b"") -> bytes:
    return packet(6, 1, 1, 0, ACK, ack, 4000, options, 64)


def flipped(made: bytes, offset: int) -> bytes:
    """``made`` with the byte at ``offset`` inverted (checksums left as they were)."""
    return edited(made, (offset, made[offset] ^ 0xFF))


def bad_ip_header(made: bytes) -> bytes:
    """An IPv4 packet whose header checksum is one off (its TCP checksum still right)."""
    raw = bytearray(made)
    raw[10:12] = (((raw[10] << 8 | raw[11]) + 1) % 0xFFFF).to_bytes(2, "big")
    return bytes(raw)


TS_OPTIONS = build_options(timestamp=(7, 9))
#: The ACK-only pass (thin_acks): (name, batch, verify, expected as in SCENARIOS).
THIN_SCENARIOS: list[tuple[str, list[bytes], bool, list[object]]] = [
    ("IPv4: the first and the newest stay",
     [pure_ack(n) for n in (1, 2, 3, 4)], True, [0, 3]),
    ("IPv4 with timestamps", [pure_ack(n, options=TS_OPTIONS) for n in (1, 2, 3)], True, [0, 2]),
    ("IPv6: the first and the newest stay", [pure_ack6(n) for n in (1, 2, 3, 4)], True, [0, 3]),
    ("IPv6 with timestamps", [pure_ack6(n, options=TS_OPTIONS) for n in (1, 2, 3)], True, [0, 2]),
    ("any other packet ends every run",
     [pure_ack(1), pure_ack(2), data(0), pure_ack(3), pure_ack(4)], True, [0, 1, 2, 3, 4]),
    ("a wrong IPv4 header checksum is never thinned, verifying or not",
     [pure_ack(1), pure_ack(2), bad_ip_header(pure_ack(3))], False, [0, 1, 2]),
    ("reserved bits keep an ACK",
     [pure_ack(1), pure_ack(2), edited(pure_ack(3), (32, 0x51))], False, [0, 1, 2]),
    ("an IPv6 ACK with SACK blocks is kept",
     [pure_ack6(1), pure_ack6(2),
      pure_ack6(3, options=build_options(timestamp=(7, 9), sack_blocks=[(100, 200)]))],
     True, [0, 1, 2]),
    ("an ACK run is of one sequence number",
     [pure_ack(1), pure_ack(2), pure_ack(3, seq=2), pure_ack(4, seq=2)], True, [0, 1, 2, 3]),
    ("a TCP checksum is checked when verifying",
     [pure_ack(1), pure_ack(2), flipped(pure_ack(3), 36)], True, [0, 1, 2]),
    ("IPv6: a TCP checksum is checked when verifying",
     [pure_ack6(1), pure_ack6(2), flipped(pure_ack6(3), 56)], True, [0, 1, 2]),
    ("IPv6: reserved bits keep an ACK",
     [pure_ack6(1), pure_ack6(2), edited(pure_ack6(3), (52, 0x51))], False, [0, 1, 2]),
    ("IPv6: another next header is not TCP",
     [pure_ack6(1), pure_ack6(2), edited(pure_ack6(3), (6, 0))], False, [0, 1, 2]),
    ("IPv6: the payload length must match",
     [pure_ack6(1), pure_ack6(2), edited(pure_ack6(3), (5, 19))], False, [0, 1, 2]),
]  # fmt: skip


@needs_c
@pytest.mark.parametrize(
    ("batch", "verify", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in THIN_SCENARIOS],
)
def test_each_ack_rule_alike(batch: list[bytes], verify: bool, expected: list[object]) -> None:
    """Each rule of ``thin_acks``, in a batch where breaking it changes the output."""
    native, got, python, want = both(batch, verify=verify, thin=True)
    assert_same(batch, native, got, python, want)
    assert [next(i for i, p in enumerate(batch) if p is item) for item in want] == expected


@needs_c
def test_a_bad_checksum_is_not_merged_when_verifying() -> None:
    good = [packet(6, 0, 1000 + i * 1448, 1448, ACK, 5000, 4000, b"", 64) for i in range(3)]
    bad = bytearray(good[1])
    bad[-1] ^= 0xFF
    batch = [good[0], bytes(bad), good[2]]
    native, got, python, expected = both(batch, verify=True)
    assert_same(batch, native, got, python, expected)
    assert got == batch  # nothing merged: the bad one cuts the run, the next is a gap
    native, got, python, expected = both(batch, verify=False)
    assert_same(batch, native, got, python, expected)
    assert len(got) == 1 and isinstance(got[0], MergedSegment)  # trusted (partial sums)


@needs_c
def test_arguments_that_are_not_packets_are_refused() -> None:
    coalesce = gro._native_coalesce
    assert coalesce is not None
    with pytest.raises(TypeError):
        coalesce(["text"], True, MergedSegment)
    with pytest.raises(TypeError):
        coalesce(5, True, MergedSegment)
    with pytest.raises(TypeError):
        coalesce([], True)  # type: ignore[call-arg]
    with pytest.raises(BufferError):
        coalesce([memoryview(bytes(80))[::2]], True, MergedSegment)  # not contiguous


def test_the_c_pass_is_built_where_required() -> None:
    """CI (AIONETSTACK_REQUIRE_ACCEL=1) has a compiler: a silent fallback is a failure."""
    if not os.environ.get("AIONETSTACK_REQUIRE_ACCEL"):
        pytest.skip("AIONETSTACK_REQUIRE_ACCEL is not set")
    assert gro.ACCELERATED, "core/_gro.c was not built: is a C compiler installed?"

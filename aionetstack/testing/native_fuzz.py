"""One fuzz input against each C module and its Python twin (``core/_gro.c`` against
``Coalescer.coalesce_python`` and ``thin_acks_python``, ``link/_gso.c`` against
``cut_tcp``, ``wire/_plain_tcp4.c`` against ``parse_plain_tcp4_python``).

:func:`check_native` splits an input into a batch of packets and compares what both
implementations make of it; a difference raises :class:`NativeMismatchError`. It runs
under atheris (``tests/fuzz/atheris_native.py``) and hypothesis
(``tests/fuzz/test_fuzz_native.py``). Input layout: one byte of switches (bit 0: GRO
and the classification verify TCP checksums; bit 1: packets as views into one buffer;
bit 2: the cut's IP header after a 14-byte link header; bit 3: the classification
verifies IP header checksums), two bytes of the cut's segment size, then
packets, each a two-byte big-endian length and that many bytes (a length past the
end takes what is left).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..core import gro
from ..core.gro import Coalescer, MergedSegment
from ..link import segmentation
from ..wire import plain_tcp4

__all__ = ["NativeMismatchError", "check_native", "comparable_answer", "native_input"]


class NativeMismatchError(AssertionError):
    """A C module and its Python twin disagreed."""


def native_input(packets: list[bytes], *, verify: bool = True, segment_size: int = 1448,
                 views: bool = False, link_header: bool = False,
                 verify_header: bool = True) -> bytes:  # fmt: skip
    """The input that :func:`check_native` splits into ``packets`` (a corpus seed)."""
    switches = verify | views << 1 | link_header << 2 | verify_header << 3
    parts = [bytes([switches]), segment_size.to_bytes(2, "big")]
    parts += [len(p).to_bytes(2, "big") + p for p in packets]
    return b"".join(parts)


def _split(data: bytes) -> tuple[int, int, list[bytes | memoryview]]:
    if len(data) < 3:
        return 0, 1, []
    switches, segment_size = data[0], int.from_bytes(data[1:3], "big")
    packets: list[bytes | memoryview] = []
    view = memoryview(data) if switches & 2 else None
    at = 3
    while at + 2 <= len(data):
        length = int.from_bytes(data[at : at + 2], "big")
        start, at = at + 2, min(at + 2 + length, len(data))
        packets.append(view[start:at] if view is not None else data[start:at])
    return switches, segment_size, packets


def check_native(data: bytes) -> None:
    """Compare both modules with their twins on ``data``; raise :class:`NativeMismatchError`."""
    switches, segment_size, packets = _split(data)
    if gro.ACCELERATED:
        _check_gro(packets, verify=bool(switches & 1))
    if segmentation.ACCELERATED and packets:
        _check_gso(packets[0], segment_size, offset=14 if switches & 4 else 0)
    if plain_tcp4.ACCELERATED:
        for packet in packets:
            _check_classification(packet, bool(switches & 8), bool(switches & 1))


#: The classification's sets: both ends of the seeds' packets (198.18.0.1 and .2) are
#: "ours", so the other rules decide; 198.18.0.9 is a refused source.
_OURS: Final = frozenset([bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])])
_REFUSED: Final = frozenset([bytes([198, 18, 0, 9])])


def _check_classification(
    packet: bytes | memoryview, verify_header: bool, verify_transport: bool
) -> None:
    arguments = (packet, verify_header, verify_transport, _OURS, _REFUSED)
    got = plain_tcp4.parse_plain_tcp4(*arguments)
    expected = plain_tcp4.parse_plain_tcp4_python(*arguments)
    if comparable_answer(got) != comparable_answer(expected):
        raise NativeMismatchError(f"classification: {got!r}; Python {expected!r}")


def comparable_answer(answer: plain_tcp4.PlainTcp4 | None) -> object:
    """A classification's answer with each view as ``("view", its bytes)``, comparable
    with ``==`` (views compare by content only when their formats agree)."""
    if answer is None:
        return None
    return tuple(
        ("view", field.tobytes()) if isinstance(field, memoryview) else field for field in answer
    )


def _check_gro(packets: list[bytes | memoryview], *, verify: bool) -> None:
    # The passes need no core.
    native, python = Coalescer(None, verify=verify), Coalescer(None, verify=verify)  # type: ignore[arg-type]
    _compare(native.coalesce(packets), native, python.coalesce_python(packets), python)
    native, python = Coalescer(None, verify=verify), Coalescer(None, verify=verify)  # type: ignore[arg-type]
    _compare(native.thin_acks(packets), native, python.thin_acks_python(packets), python)


def _compare(
    got: Sequence[object], native: Coalescer, expected: Sequence[object], python: Coalescer
) -> None:
    if len(got) != len(expected) or native.statistics() != python.statistics():
        raise NativeMismatchError(f"GRO: {len(got)} items, {native.statistics()}; "
                                  f"Python {len(expected)}, {python.statistics()}")  # fmt: skip
    for index, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        if isinstance(theirs, MergedSegment):
            same = (
                isinstance(mine, MergedSegment)
                and mine.packet == theirs.packet
                and mine.count == theirs.count
            )
        else:
            same = mine is theirs
        if not same:
            raise NativeMismatchError(f"GRO: item {index} differs")


def _check_gso(packet: bytes | memoryview, segment_size: int, *, offset: int) -> None:
    if len(packet) > offset and segment_size and -(-len(packet) // segment_size) > 4096:
        return  # a 1-byte cut of a 64 KB packet: valid, but slow for a fuzzer's input
    try:
        expected = [
            bytes(h) + bytes(p) for h, p in segmentation.cut_tcp(packet, segment_size, (), offset)
        ]
    except (ValueError, IndexError):
        try:
            segmentation.cut_tcp_packets(packet, segment_size, (), offset)
        except ValueError:
            return
        raise NativeMismatchError("GSO: the C cut took what cut_tcp refuses") from None
    if segmentation.cut_tcp_packets(packet, segment_size, (), offset) != expected:
        raise NativeMismatchError("GSO: pieces differ")

"""The out-of-order queue of a receiving connection and the SACK blocks it yields (RFC 2018).

Positions are unwrapped stream offsets (plain ints that never wrap), so sorting
and merging need no modular arithmetic; the connection converts at its edge.
"""

from __future__ import annotations

from typing import Final

__all__ = ["Reassembly"]

#: RFC 2018 §3: at most 4 blocks fit (3 alongside a timestamp option).
MAX_SACK_BLOCKS: Final = 4


class _Range:
    __slots__ = ("data", "end", "stamp", "start")

    def __init__(self, start: int, data: bytearray, stamp: int) -> None:
        self.start = start
        self.end = start + len(data)
        self.data = data
        self.stamp = stamp


class Reassembly:
    """Disjoint, non-adjacent ranges of bytes received ahead of RCV.NXT, bounded in size."""

    __slots__ = ("_clock", "_ranges", "bytes_held", "limit")

    def __init__(self, limit: int) -> None:
        self._ranges: list[_Range] = []
        self.bytes_held = 0
        self.limit = limit
        self._clock = 0

    def __bool__(self) -> bool:
        return bool(self._ranges)

    @property
    def range_count(self) -> int:
        """Number of disjoint ranges held (each one a potential SACK block)."""
        return len(self._ranges)

    @property
    def highest_end(self) -> int | None:
        """The end of the last range, or None when empty."""
        return self._ranges[-1].end if self._ranges else None

    def add(self, start: int, data: memoryview | bytes) -> bool:
        """Store ``data`` at ``start`` (the caller has trimmed it to the window).

        Returns False (and stores nothing) when the queue would exceed its limit.
        """
        end = start + len(data)
        ranges = self._ranges
        self._clock += 1
        first = 0
        while first < len(ranges) and ranges[first].end < start:
            first += 1
        last = first
        while last < len(ranges) and ranges[last].start <= end:
            last += 1
        if first == last:
            if self.bytes_held + len(data) > self.limit:
                return False
            ranges.insert(first, _Range(start, bytearray(data), self._clock))
            self.bytes_held += len(data)
            return True
        head = ranges[first]
        tail = ranges[last - 1]
        if head.start <= start and end <= head.end:
            head.stamp = self._clock  # a duplicate of bytes we hold
            return True
        new_start = min(head.start, start)
        new_end = max(tail.end, end)
        held_before = sum(r.end - r.start for r in ranges[first:last])
        if self.bytes_held - held_before + (new_end - new_start) > self.limit:
            return False
        if head.start <= start:
            merged = head.data
            position = head.end
        else:
            merged = bytearray(data[: head.start - start])
            position = head.start
        for index in range(first, last):
            piece = ranges[index]
            if piece is head and head.start <= start:
                continue
            if piece.start > position:
                merged += data[position - start : piece.start - start]
                position = piece.start
            if piece.end > position:
                merged += piece.data[position - piece.start :]
                position = piece.end
        if end > position:
            merged += data[position - start :]
        ranges[first:last] = [_Range(new_start, merged, self._clock)]
        self.bytes_held += (new_end - new_start) - held_before
        return True

    def pop_ready(self, offset: int) -> bytearray | None:
        """Remove and return the bytes from ``offset`` on, if the first range reaches it."""
        ranges = self._ranges
        while ranges and ranges[0].start <= offset:
            head = ranges.pop(0)
            self.bytes_held -= head.end - head.start
            if head.end > offset:
                if head.start == offset:
                    return head.data
                return head.data[offset - head.start :]
        return None

    def sack_blocks(self, count: int) -> list[tuple[int, int]]:
        """Up to ``count`` (start, end) ranges, the most recently changed first (RFC 2018 §4)."""
        if len(self._ranges) <= 1:
            return [(r.start, r.end) for r in self._ranges]
        recent = sorted(self._ranges, key=lambda r: r.stamp, reverse=True)[:count]
        return [(r.start, r.end) for r in recent]

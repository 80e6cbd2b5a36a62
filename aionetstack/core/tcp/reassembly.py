"""The out-of-order queue of a receiving connection and the SACK blocks it yields (RFC 2018).

Positions are unwrapped stream offsets (plain ints that never wrap), so sorting
and merging need no modular arithmetic; the connection converts at its edge.

The queue is the SegmentSmack defence (CVE-2018-5390, FreeBSD CVE-2018-6922): a
peer that sends many tiny segments with holes between them must not make each
segment cost work that grows with what is already queued. So:

- ranges are kept sorted in parallel lists of starts and ends, and a segment
  finds its place with :func:`bisect` (logarithmic); it then merges with the
  neighbours it touches, and every range it merges away was created by an
  earlier segment, so merging is constant work per segment when amortised;
- bytes are kept as *pieces* (owned ``bytearray`` s): data that extends a range
  at its end is appended in place, and joining two ranges concatenates their
  piece lists, so no byte is copied more than once before delivery;
- the queue is capped in bytes **and** in pieces (the analogue of Linux's skb
  count, charged by truesize): past either cap the ranges with the highest
  sequence numbers, beyond the arriving segment, are dropped to make room
  (Linux ``tcp_prune_ofo_queue``), and when even that is not enough the segment
  is refused;
- the RFC 2018 §4 "most recent first" order for SACK blocks comes from a list of
  at most :data:`MAX_SACK_BLOCKS` recently changed ranges, not from sorting them all.

:attr:`Reassembly.work` counts the steps taken (one per call, plus one per range
merged, popped, pruned or reported), so tests and the fuzzer can bound the cost
of an operation in counted work rather than in seconds.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import pairwise
from typing import Final

__all__ = ["DEFAULT_MAX_SEGMENTS", "MAX_SACK_BLOCKS", "Reassembly"]

#: RFC 2018 §3: at most 4 blocks fit (3 alongside a timestamp option).
MAX_SACK_BLOCKS: Final = 4
#: Default cap on pieces held (see ``TcpConfig.out_of_order_segments``): Linux charges
#: every queued skb at least about 1 KiB of truesize, so its default 4 MiB-class
#: receive buffer holds a few thousand out-of-order segments at most.
DEFAULT_MAX_SEGMENTS: Final = 4096
#: Data arriving just below a range joins its first piece (one copy) while the two
#: together stay under this many bytes, so a right-to-left trickle of tiny segments
#: does not pile up pieces (Linux collapses such runs in ``tcp_collapse_ofo_queue``).
COALESCE: Final = 2048


class _Range:
    """A run of contiguous bytes ``[start, end)`` made of owned pieces in order."""

    __slots__ = ("end", "pieces", "start")

    def __init__(self, start: int, end: int, pieces: list[bytearray]) -> None:
        self.start = start
        self.end = end
        self.pieces = pieces


class Reassembly:
    """Disjoint, non-adjacent ranges of bytes received ahead of RCV.NXT, bounded in size.

    ``limit`` caps the bytes held, ``max_segments`` the pieces (one per stored
    segment that could not be appended to a neighbour).
    """

    __slots__ = (
        "_ends",
        "_ranges",
        "_recent",
        "_starts",
        "bytes_held",
        "limit",
        "max_segments",
        "pruned_bytes",
        "pruned_ranges",
        "segments_held",
        "work",
    )

    def __init__(self, limit: int, max_segments: int = DEFAULT_MAX_SEGMENTS) -> None:
        if limit < 1 or max_segments < 1:
            raise ValueError("limit and max_segments must be >= 1")
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._ranges: list[_Range] = []
        self._recent: list[_Range] = []
        self.bytes_held = 0
        self.segments_held = 0
        self.limit = limit
        self.max_segments = max_segments
        #: Ranges and bytes dropped from the top to make room (``tcp_prune_ofo_queue``).
        self.pruned_ranges = 0
        self.pruned_bytes = 0
        #: Steps taken so far (see the module docstring).
        self.work = 0

    def __bool__(self) -> bool:
        return bool(self._ranges)

    @property
    def range_count(self) -> int:
        """Number of disjoint ranges held (each one a potential SACK block)."""
        return len(self._ranges)

    @property
    def highest_end(self) -> int | None:
        """The end of the last range, or None when empty."""
        return self._ends[-1] if self._ends else None

    def add(self, start: int, data: memoryview | bytes) -> bool:
        """Store ``data`` at ``start`` (the caller has trimmed it to the window).

        Returns False (and stores nothing) when the queue cannot hold it even after
        pruning the ranges above it. Data already held is never replaced.
        """
        length = len(data)
        self.work += 1
        if not length:
            return True
        end = start + length
        # Ranges that overlap or touch [start, end): ends >= start and starts <= end.
        first = bisect_left(self._ends, start)
        last = bisect_right(self._starts, end)
        if first == last:
            if not self._make_room(length, 1, last):
                return False
            new = _Range(start, end, [bytearray(data)])
            self._starts.insert(first, start)
            self._ends.insert(first, end)
            self._ranges.insert(first, new)
            self.bytes_held += length
            self.segments_held += 1
            self._touch(new)
            return True
        ranges = self._ranges
        head = ranges[first]
        if head.start <= start and end <= head.end:
            self._touch(head)  # a duplicate of bytes we hold: only recency changes
            return True
        if last - first == 1 and head.start <= start:
            # The common case: data extending one range at its end, appended in place.
            grow = end - head.end
            if not self._make_room(grow, 0, last):
                return False
            head.pieces[-1] += data[head.end - start :]
            head.end = end
            self._ends[first] = end
            self.bytes_held += grow
            self._touch(head)
            return True
        # The general case: the new bytes fill gaps between (and around) several ranges.
        held = 0
        for index in range(first, last):
            piece = ranges[index]
            held += piece.end - piece.start
        self.work += last - first
        tail = ranges[last - 1]
        new_start = min(head.start, start)
        new_end = max(tail.end, end)
        grow = (new_end - new_start) - held
        # Bytes before the head become a new first piece, unless both are small (then
        # they are copied together: at most COALESCE bytes). Other gaps append in place.
        prefix = head.start - start
        gaps = 1 if prefix > 0 and prefix + len(head.pieces[0]) > COALESCE else 0
        if not self._make_room(grow, gaps, last):
            return False
        pieces = head.pieces
        if gaps:
            pieces.insert(0, bytearray(data[:prefix]))
        elif prefix > 0:
            pieces[0] = bytearray(data[:prefix]) + pieces[0]
        position = head.end
        for index in range(first + 1, last):
            piece = ranges[index]
            pieces[-1] += data[position - start : piece.start - start]  # fill the gap
            pieces.extend(piece.pieces)
            position = piece.end
        if end > position:
            pieces[-1] += data[position - start :]
        merged = _Range(new_start, new_end, pieces)
        removed = ranges[first:last]
        self._starts[first:last] = [new_start]
        self._ends[first:last] = [new_end]
        ranges[first:last] = [merged]
        self.bytes_held += grow
        self.segments_held += gaps
        self._forget(removed)
        self._touch(merged)
        return True

    def _make_room(self, grow: int, pieces: int, above: int) -> bool:
        """Make room for ``grow`` bytes and ``pieces`` pieces, pruning from index ``above`` up.

        Only ranges wholly above the arriving data are dropped, highest first (data near
        RCV.NXT is the most useful; Linux ``tcp_prune_ofo_queue``). When pruning them all
        would not be enough nothing is dropped and the caller refuses the segment.
        """
        over_bytes = self.bytes_held + grow - self.limit
        over_pieces = self.segments_held + pieces - self.max_segments
        if over_bytes <= 0 and over_pieces <= 0:
            return True
        ranges = self._ranges
        cut = len(ranges)
        while cut > above and (over_bytes > 0 or over_pieces > 0):
            cut -= 1
            victim = ranges[cut]
            over_bytes -= victim.end - victim.start
            over_pieces -= len(victim.pieces)
        self.work += len(ranges) - cut
        if over_bytes > 0 or over_pieces > 0:
            return False
        removed = ranges[cut:]
        for victim in removed:
            size = victim.end - victim.start
            self.bytes_held -= size
            self.segments_held -= len(victim.pieces)
            self.pruned_bytes += size
        self.pruned_ranges += len(removed)
        del ranges[cut:]
        del self._starts[cut:]
        del self._ends[cut:]
        self._forget(removed)
        return True

    def _touch(self, piece: _Range) -> None:
        """Make ``piece`` the most recently changed range (RFC 2018 §4)."""
        recent = self._recent
        if recent and recent[0] is piece:
            return
        for index, other in enumerate(recent):
            if other is piece:
                del recent[index]
                break
        recent.insert(0, piece)
        del recent[MAX_SACK_BLOCKS:]

    def _forget(self, removed: list[_Range]) -> None:
        """Drop ranges that no longer exist from the recency list."""
        if removed:
            gone = {id(piece) for piece in removed}
            self._recent = [piece for piece in self._recent if id(piece) not in gone]

    def pop_ready(self, offset: int) -> bytes | bytearray | None:
        """Remove and return the bytes from ``offset`` on, if the first range reaches it."""
        ranges = self._ranges
        popped: list[_Range] = []
        result: bytes | bytearray | None = None
        while ranges and ranges[0].start <= offset:
            head = ranges.pop(0)
            del self._starts[0]
            del self._ends[0]
            popped.append(head)
            self.bytes_held -= head.end - head.start
            self.segments_held -= len(head.pieces)
            if head.end > offset:
                data = head.pieces[0] if len(head.pieces) == 1 else b"".join(head.pieces)
                result = data if head.start == offset else data[offset - head.start :]
                break
        self.work += 1 + len(popped)
        self._forget(popped)
        return result

    def sack_blocks(self, count: int) -> list[tuple[int, int]]:
        """Up to ``count`` (start, end) ranges, the most recently changed first (RFC 2018 §4).

        Past the few recent ones, further ranges follow in sequence order.
        """
        self.work += 1
        blocks = [(piece.start, piece.end) for piece in self._recent[:count]]
        if len(blocks) < count and len(blocks) < len(self._ranges):
            chosen = {id(piece) for piece in self._recent}
            for piece in self._ranges:
                if len(blocks) >= count:
                    break
                if id(piece) not in chosen:
                    blocks.append((piece.start, piece.end))
                    self.work += 1
        return blocks

    def check(self) -> list[str]:
        """Problems with the queue's bookkeeping (empty when consistent); for tests and fuzzing."""
        problems: list[str] = []
        ranges = self._ranges
        if [r.start for r in ranges] != self._starts or [r.end for r in ranges] != self._ends:
            problems.append("start/end index out of step with the ranges")
        for before, after in pairwise(ranges):
            if not before.end < after.start:
                problems.append(f"ranges {before.start}-{before.end} and {after.start}-{after.end}")
        for piece in ranges:
            if sum(len(p) for p in piece.pieces) != piece.end - piece.start or not piece.pieces:
                problems.append(f"range {piece.start}-{piece.end} holds the wrong byte count")
        if sum(r.end - r.start for r in ranges) != self.bytes_held:
            problems.append("bytes_held differs from the ranges")
        if sum(len(r.pieces) for r in ranges) != self.segments_held:
            problems.append("segments_held differs from the ranges")
        if self.bytes_held > self.limit or self.segments_held > self.max_segments:
            problems.append("over a cap")
        if any(all(piece is not r for r in ranges) for piece in self._recent):
            problems.append("a recent range is no longer held")
        return problems

"""Reassembly of IP fragments (RFC 791 §3.2, RFC 8200 §4.5), bounded and sans-I/O.

One :class:`Reassembler` serves one family. Fragments are kept per datagram
key until the whole datagram is there, its timer runs out, or something about
it is wrong. The bounds:

* a datagram of at most 65,535 bytes of payload (RFC 791 §3.1; RFC 8200 §4.5
  for the fragmentable part), else every fragment of it is dropped;
* a memory budget over all datagrams (Linux ``ipfrag_high_thresh``, 4 MB): a
  fragment that would exceed it is dropped, and so is a new datagram beyond
  ``max_datagrams``;
* a timeout per datagram from its first fragment (RFC 791: 15 s at least,
  Linux 30 s for IPv4; RFC 8200 §4.5: 60 s for IPv6).

Overlapping fragments drop the whole datagram, and later fragments of it are
dropped until its timer runs out (RFC 5722, RFC 8200 §4.5; here for IPv4 too,
as Linux does). An exact duplicate is dropped alone (RFC 8200 §4.5 allows it).
Every drop is counted in ``stats`` under its own name.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Final

from .counts import Counts

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "IPV4_TIMEOUT",
    "IPV6_TIMEOUT",
    "MAX_DATAGRAM",
    "Expired",
    "Reassembled",
    "Reassembler",
]

#: RFC 791 §3.1: the total length field is 16 bits, so no datagram exceeds 65,535.
MAX_DATAGRAM: Final = 65535
#: Linux ``net.ipv4.ipfrag_time`` (RFC 791 §3.2 suggests 15 s as a lower bound).
IPV4_TIMEOUT: Final = 30.0
#: RFC 8200 §4.5: reassembly is abandoned 60 s after the first-arriving fragment.
IPV6_TIMEOUT: Final = 60.0
#: Linux ``ipfrag_high_thresh`` (4 MB): fragments held by all datagrams together.
DEFAULT_MEMORY_BUDGET: Final = 4 * 1024 * 1024
#: Bytes charged per datagram in progress besides its data (bookkeeping).
_DATAGRAM_OVERHEAD: Final = 256
_DEFAULT_MAX_DATAGRAMS: Final = 1024
#: RFC 791 §3.1 / RFC 8200 §4.5: offsets count 8-octet units.
_UNIT: Final = 8


@dataclass(slots=True)
class _Datagram:
    deadline: float
    pieces: dict[int, bytes] = field(default_factory=dict)
    #: Sorted starts of the pieces: the overlap check is a bisection (no O(n) scan).
    starts: list[int] = field(default_factory=list)
    #: The end of the highest piece so far.
    highest: int = 0
    size: int = 0
    total: int | None = None
    first: object = None
    poisoned: bool = False
    serial: int = 0


@dataclass(frozen=True, slots=True)
class Reassembled:
    """A complete datagram: ``first`` is what the caller gave with its first fragment."""

    first: object
    payload: bytes


@dataclass(frozen=True, slots=True)
class Expired:
    """A datagram given up at its deadline; ``first`` is None if fragment 0 never came."""

    key: Hashable
    first: object


class Reassembler:
    """Bounded fragment reassembly for one IP family. See the module docstring."""

    __slots__ = (
        "_datagrams", "_max_datagrams", "_serial", "budget", "deadlines", "stats", "timeout",
        "used",
    )  # fmt: skip

    def __init__(
        self,
        timeout: float,
        *,
        budget: int = DEFAULT_MEMORY_BUDGET,
        max_datagrams: int = _DEFAULT_MAX_DATAGRAMS,
    ) -> None:
        if timeout <= 0 or budget < MAX_DATAGRAM or max_datagrams < 1:
            raise ValueError("timeout must be > 0, budget >= 65535, max_datagrams >= 1")
        self.timeout = timeout
        self.budget = budget
        self._max_datagrams = max_datagrams
        self._datagrams: dict[Hashable, _Datagram] = {}
        self._serial = 0
        #: A heap of (deadline, serial, key), stale entries included (deleted lazily):
        #: empty means no timer (readers may test it; only this class changes it).
        self.deadlines: list[tuple[float, int, Hashable]] = []
        #: Bytes held now (data plus per-datagram overhead); never above ``budget``.
        self.used = 0
        self.stats = Counts()

    def __len__(self) -> int:
        """Datagrams in progress (poisoned ones included until their deadline)."""
        return len(self._datagrams)

    def add(
        self,
        key: Hashable,
        offset: int,
        more: bool,
        data: bytes | bytearray | memoryview,
        now: float,
        *,
        first: object = None,
    ) -> Reassembled | None:
        """Take one fragment; return the datagram when this one completes it.

        ``offset`` is in bytes (a multiple of 8); ``more`` the more-fragments
        flag; ``first`` the caller's record of the datagram (header), given with
        the fragment at offset 0. Bad fragments are dropped and counted.
        """
        stats = self.stats
        stats["fragments_received"] += 1
        self.expire(now)
        length = len(data)
        end = offset + length
        if more and (length == 0 or length % _UNIT):
            stats["dropped_bad_fragment_length"] += 1  # RFC 8200 §4.5: all but the last x8
            return None
        if end > MAX_DATAGRAM:
            stats["dropped_oversized_datagram"] += 1
            self._poison(key, now)
            return None
        datagram = self._datagrams.get(key)
        if datagram is None:
            if len(self._datagrams) >= self._max_datagrams:
                stats["dropped_too_many_datagrams"] += 1
                return None
            if self.used + _DATAGRAM_OVERHEAD + length > self.budget:
                stats["dropped_memory_budget"] += 1
                return None
            self._serial += 1
            datagram = _Datagram(deadline=now + self.timeout, serial=self._serial)
            self._datagrams[key] = datagram
            self.used += _DATAGRAM_OVERHEAD
            heapq.heappush(self.deadlines, (datagram.deadline, datagram.serial, key))
        if datagram.poisoned:
            stats["dropped_after_overlap"] += 1
            return None
        existing = datagram.pieces.get(offset)
        if existing is not None and existing == bytes(data) and (more or datagram.total == end):
            stats["dropped_duplicate"] += 1
            return None
        if self._overlaps(datagram, offset, end) or self._inconsistent(datagram, end, more):
            stats["dropped_overlap"] += 1  # RFC 5722: the whole datagram goes
            self._discard(datagram, poison=True)
            return None
        if self.used + length > self.budget:
            stats["dropped_memory_budget"] += 1
            return None
        datagram.pieces[offset] = bytes(data)
        bisect.insort(datagram.starts, offset)
        datagram.highest = max(datagram.highest, end)
        datagram.size += length
        self.used += length
        if not more:
            datagram.total = end
        if offset == 0:
            datagram.first = first
        if datagram.total is None or datagram.size != datagram.total:
            return None
        payload = b"".join(datagram.pieces[o] for o in sorted(datagram.pieces))
        first_record = datagram.first
        self._discard(datagram, poison=False)
        del self._datagrams[key]
        stats["reassembled"] += 1
        return Reassembled(first_record, payload)

    @staticmethod
    def _overlaps(datagram: _Datagram, start: int, end: int) -> bool:
        starts = datagram.starts
        index = bisect.bisect_right(starts, start)
        if index and starts[index - 1] + len(datagram.pieces[starts[index - 1]]) > start:
            return True
        return index < len(starts) and starts[index] < end

    @staticmethod
    def _inconsistent(datagram: _Datagram, end: int, more: bool) -> bool:
        """A second, different end, or data past the end: as bad as an overlap."""
        total = datagram.total
        if total is not None and (end > total or (not more and end != total)):
            return True
        return not more and end < datagram.highest

    def _poison(self, key: Hashable, now: float) -> None:
        datagram = self._datagrams.get(key)
        if datagram is not None:
            self._discard(datagram, poison=True)

    def _discard(self, datagram: _Datagram, *, poison: bool) -> None:
        """Free a datagram's fragments; a poisoned one stays (empty) until its deadline."""
        self.used -= datagram.size
        datagram.pieces = {}
        datagram.starts = []
        datagram.size = 0
        datagram.poisoned = poison
        if not poison:
            self.used -= _DATAGRAM_OVERHEAD

    def get_timer(self) -> float | None:
        """The earliest reassembly deadline, or None."""
        while self.deadlines:
            deadline, ident, key = self.deadlines[0]
            datagram = self._datagrams.get(key)
            if datagram is not None and datagram.serial == ident:
                return deadline
            heapq.heappop(self.deadlines)  # completed or replaced: lazy deletion
        return None

    def expire(self, now: float) -> list[Expired]:
        """Give up every datagram whose deadline is reached; return them (RFC 792 / 4443)."""
        expired: list[Expired] = []
        while self.deadlines and self.deadlines[0][0] <= now:
            _, ident, key = heapq.heappop(self.deadlines)
            datagram = self._datagrams.get(key)
            if datagram is None or datagram.serial != ident:
                continue
            del self._datagrams[key]
            if not datagram.poisoned:
                self.stats["timed_out"] += 1
                expired.append(Expired(key, datagram.first))
            self.used -= datagram.size + _DATAGRAM_OVERHEAD
        return expired

"""Seeded network impairments: loss, duplication, reordering, corruption, delay, rate.

:class:`Impairment` describes what a path does to packets; :class:`ImpairedPath`
applies one to one direction. The engine is sans-clock and sans-I/O: the caller
says what time it is on every call, so the same seed and the same sequence of
``submit``/``release`` calls give exactly the same outcome. It is shared by
:class:`~aionetstack.link.memory.MemoryLink` and the virtual-time TCP simulator.

Each submitted packet goes through these stages, in this order (the random
draws happen in the same order, and only for impairments that are switched on)::

    loss -> queue limit (tail drop) -> rate (serialisation) -> delay +/- jitter
         -> duplicate -> corrupt -> reorder (hold back behind the next packet)

The model follows Linux ``netem`` where it has an answer: the queue limit counts
every packet the path holds, delayed ones included, so size it above the
bandwidth-delay product when simulating a long path.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = ["DEFAULT_QUEUE_LIMIT", "ImpairedPath", "Impairment"]

#: Packets a path holds before tail drop (the ``netem`` default ``limit``).
DEFAULT_QUEUE_LIMIT: Final = 1000
#: Longest a held-back packet waits, past its own due time, for a later one to overtake it.
DEFAULT_REORDER_HOLD: Final = 0.01

_PROBABILITIES: Final = ("loss", "duplicate", "reorder", "corrupt")
_DURATIONS: Final = ("delay", "jitter", "reorder_hold", "rate")


def _check_real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number):
        raise ValueError(f"{name} must not be NaN")
    return number


@dataclass(frozen=True, slots=True)
class Impairment:
    """What one direction of a path does to packets. All randomness comes from ``seed``.

    * ``loss``, ``duplicate``, ``corrupt``: probability per packet of dropping it,
      delivering a second copy right after it, or flipping one random bit in it.
    * ``reorder``: probability that a packet is held back and delivered right
      after the next packet that follows it, provided that one is submitted
      before ``reorder_hold`` seconds past the held packet's own due time;
      otherwise it goes out at that deadline, in order.
    * ``delay`` (seconds) plus a uniform ``jitter`` in ``[-jitter, +jitter]``,
      never earlier than the packet leaves the queue (large jitter reorders).
    * ``rate``: bottleneck bandwidth in bits per second (0: unlimited); a packet
      waits for the ones before it to be serialised.
    * ``queue_limit``: packets the path may hold (queued, delayed or held back)
      before new ones are tail-dropped.
    * ``seed``: the root of the path's own random stream.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    rate: float = 0.0
    queue_limit: int = DEFAULT_QUEUE_LIMIT
    seed: int = 0
    reorder_hold: float = DEFAULT_REORDER_HOLD

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            value = _check_real(name, getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability and must be in [0, 1], got {value}")
        for name in _DURATIONS:
            value = _check_real(name, getattr(self, name))
            if not 0.0 <= value < math.inf:
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        for name in ("queue_limit", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if self.queue_limit < 1:
            raise ValueError(f"queue_limit must be at least 1 packet, got {self.queue_limit}")

    @property
    def is_transparent(self) -> bool:
        """True when the path changes nothing (it may still tail-drop at ``queue_limit``)."""
        return not (
            self.loss or self.duplicate or self.reorder or self.corrupt
            or self.delay or self.jitter or self.rate
        )  # fmt: skip


class _Scheduled(NamedTuple):
    """A packet on its way: heap order is (due, order); ``order`` is unique."""

    due: float
    order: int
    position: int  # in the submitted sequence (shared by a duplicate)
    is_copy: bool
    packet: bytes


class _Held(NamedTuple):
    """A packet held back for reordering."""

    due: float
    deadline: float  # due + reorder_hold: released in order if nothing overtakes it
    position: int
    is_copy: bool
    packet: bytes


class ImpairedPath:
    """Apply one :class:`Impairment` to one direction of packets, in caller-supplied time.

    Contract: ``submit(packet, now)`` hands a packet to the path;
    ``release(now)`` returns, in delivery order, every packet due by ``now``;
    ``next_release()`` is the earliest time anything more becomes due (or None
    when the path is empty). ``now`` must not go backwards. ``salt`` separates
    the random streams of paths that share a seed (for example, the two
    directions of a link).
    """

    __slots__ = (
        "_free_at",
        "_heap",
        "_held",
        "_highest_released",
        "_next_index",
        "_next_order",
        "_rng",
        "corrupted",
        "delivered",
        "duplicated",
        "impairment",
        "lost",
        "queue_dropped",
        "reordered",
        "submitted",
    )

    def __init__(self, impairment: Impairment, salt: int | str = 0) -> None:
        if not isinstance(impairment, Impairment):
            raise TypeError(f"impairment must be an Impairment, got {type(impairment).__name__}")
        self.impairment = impairment
        # A str seed is hashed with SHA-512 by random.Random: stable across runs.
        self._rng = random.Random(f"aionetstack.impair:{impairment.seed}:{salt}")
        self._heap: list[_Scheduled] = []
        self._held: list[_Held] = []
        self._free_at = -math.inf
        self._next_order = 0
        self._next_index = 0
        self._highest_released = -1
        self.submitted = 0
        self.delivered = 0
        self.lost = 0
        self.duplicated = 0
        self.reordered = 0
        self.corrupted = 0
        self.queue_dropped = 0

    def __len__(self) -> int:
        """Packets the path holds right now (delayed, queued or held back)."""
        return len(self._heap) + len(self._held)

    def counters(self) -> dict[str, int]:
        """The path's counters. Always ``submitted + duplicated == delivered + lost
        + queue_dropped + len(path)``."""
        return {
            "submitted": self.submitted,
            "delivered": self.delivered,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "corrupted": self.corrupted,
            "queue_dropped": self.queue_dropped,
        }

    # -- input ----------------------------------------------------------------------

    def submit(self, packet: bytes, now: float) -> None:
        """Hand ``packet`` to the path at time ``now``; see the module docstring for the stages."""
        imp = self.impairment
        rng = self._rng
        self.submitted += 1
        index = self._next_index
        self._next_index += 1
        if imp.loss and rng.random() < imp.loss:
            self.lost += 1
            return
        if len(self) >= imp.queue_limit:
            self.queue_dropped += 1
            return
        due = self._departure(len(packet), now)
        if imp.delay or imp.jitter:
            offset = imp.delay + (rng.uniform(-imp.jitter, imp.jitter) if imp.jitter else 0.0)
            due = max(due, due + offset)
        copy = None
        if imp.duplicate and rng.random() < imp.duplicate:
            copy = packet  # taken before corruption: at most one of the two is damaged
        if imp.corrupt and packet and rng.random() < imp.corrupt:
            packet = self._flip_one_bit(packet)
        held = bool(imp.reorder) and rng.random() < imp.reorder
        self._enter(due, index, False, packet, held)
        if copy is not None:
            self.duplicated += 1
            if len(self) >= imp.queue_limit:
                self.queue_dropped += 1  # the copy finds the queue full
            else:
                self._enter(due, index, True, copy, held)

    def _departure(self, size: int, now: float) -> float:
        """When the last bit of a ``size``-byte packet leaves the bottleneck."""
        rate = self.impairment.rate
        if not rate:
            return now
        self._free_at = max(now, self._free_at) + size * 8 / rate
        return self._free_at

    def _flip_one_bit(self, packet: bytes) -> bytes:
        damaged = bytearray(packet)
        position = self._rng.randrange(len(damaged) * 8)
        damaged[position >> 3] ^= 1 << (position & 7)
        self.corrupted += 1
        return bytes(damaged)

    def _enter(self, due: float, index: int, is_copy: bool, packet: bytes, held: bool) -> None:
        if held:
            deadline = due + self.impairment.reorder_hold
            self._held.append(_Held(due, deadline, index, is_copy, packet))
            return
        self._schedule(due, index, is_copy, packet)
        if self._held:
            self._let_overtake(due)

    def _schedule(self, due: float, index: int, is_copy: bool, packet: bytes) -> None:
        heapq.heappush(self._heap, _Scheduled(due, self._next_order, index, is_copy, packet))
        self._next_order += 1

    def _let_overtake(self, due: float) -> None:
        """A packet due at ``due`` was just scheduled: held packets go right after it."""
        for held in self._held:
            when = max(held.due, due) if due <= held.deadline else held.deadline
            self._schedule(when, held.position, held.is_copy, held.packet)
        self._held.clear()

    # -- output ---------------------------------------------------------------------

    def next_release(self) -> float | None:
        """The earliest time at which :meth:`release` will return something, or None."""
        candidates = [held.deadline for held in self._held]
        if self._heap:
            candidates.append(self._heap[0].due)
        return min(candidates) if candidates else None

    def release(self, now: float, limit: int | None = None) -> list[bytes]:
        """Return the packets due by ``now`` (at most ``limit``), in delivery order."""
        if self._held:
            self._expire_holds(now)
        heap = self._heap
        released: list[bytes] = []
        while heap and heap[0].due <= now and (limit is None or len(released) < limit):
            entry = heapq.heappop(heap)
            if entry.position < self._highest_released:
                if not entry.is_copy:
                    self.reordered += 1
            else:
                self._highest_released = entry.position
            released.append(entry.packet)
        self.delivered += len(released)
        return released

    def _expire_holds(self, now: float) -> None:
        """Held packets whose deadline passed with nothing overtaking them go out in order."""
        keep: list[_Held] = []
        for held in self._held:
            if held.deadline <= now:
                self._schedule(held.deadline, held.position, held.is_copy, held.packet)
            else:
                keep.append(held)
        self._held = keep

"""The neighbour cache of an Ethernet link, for ARP (RFC 826) and IPv6 ND (RFC 4861), sans-I/O.

One table serves both families (keys are 4- or 16-byte addresses). States
follow RFC 4861 §7.3.2, simplified to three: INCOMPLETE (solicitations out,
packets waiting), REACHABLE (confirmed within ``reachable_time``), STALE
(known but unconfirmed: still used; refreshed by any later confirmation).

Everything is bounded: entries (the oldest resolved one makes room, then the
oldest incomplete one), packets waiting per neighbour (the oldest is dropped,
RFC 4861 §7.2.2 suggests a small queue), and solicitations per resolution
(``retries``, one each ``retransmit`` seconds, then the waiting packets are
dropped and the failure counted). Time comes in as ``now=``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

from .counts import Counts
from .output import OffloadedPacket

#: A packet waiting for its neighbour: complete, or offloaded (the link completes it).
Waiting = bytes | OffloadedPacket

__all__ = ["INCOMPLETE", "REACHABLE", "STALE", "NeighbourCache", "Resolution"]

INCOMPLETE: Final = "incomplete"
REACHABLE: Final = "reachable"
STALE: Final = "stale"

#: RFC 4861 §10: MAX_MULTICAST_SOLICIT 3, RETRANS_TIMER 1 s, REACHABLE_TIME 30 s.
MAX_MULTICAST_SOLICIT: Final = 3
RETRANS_TIMER: Final = 1.0
REACHABLE_TIME: Final = 30.0
#: Linux ``unres_qlen``-like bound on packets waiting for one neighbour (RFC 4861 §7.2.2).
QUEUE_PER_NEIGHBOUR: Final = 3
#: Linux ``gc_thresh3``-like bound on entries (much smaller: a host talks to few neighbours).
MAX_ENTRIES: Final = 256


@dataclass(slots=True)
class _Entry:
    state: str
    mac: bytes | None
    changed: float
    solicits: int = 0
    deadline: float | None = None
    queue: deque[Waiting] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the caller does next for a packet towards a neighbour.

    ``mac`` set: send the packet now. Otherwise it waits in the queue, and
    ``solicit`` says whether to send a (first) solicitation now.
    """

    mac: bytes | None
    solicit: bool


class NeighbourCache:
    """Bounded neighbour table with per-neighbour queues (see the module docstring)."""

    __slots__ = ("_entries", "max_entries", "queue_length", "reachable_time", "retransmit",
                 "retries", "stats")  # fmt: skip

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        queue_length: int = QUEUE_PER_NEIGHBOUR,
        retries: int = MAX_MULTICAST_SOLICIT,
        retransmit: float = RETRANS_TIMER,
        reachable_time: float = REACHABLE_TIME,
    ) -> None:
        if max_entries < 1 or queue_length < 1 or retries < 1 or retransmit <= 0:
            raise ValueError("max_entries, queue_length, retries >= 1 and retransmit > 0")
        self.max_entries = max_entries
        self.queue_length = queue_length
        self.retries = retries
        self.retransmit = retransmit
        self.reachable_time = reachable_time
        self._entries: dict[bytes, _Entry] = {}
        self.stats = Counts()

    def __len__(self) -> int:
        return len(self._entries)

    def state(self, address: bytes) -> str | None:
        """The state of ``address``'s entry, or None."""
        entry = self._entries.get(address)
        return None if entry is None else entry.state

    def entries(self) -> dict[bytes, tuple[str, bytes | None]]:
        """address -> (state, MAC): ``ip neigh``'s view."""
        return {a: (e.state, e.mac) for a, e in self._entries.items()}

    def resolve(self, address: bytes, packet: Waiting, now: float) -> Resolution:
        """Where to send ``packet`` for ``address``; queue it if that is not known yet."""
        entry = self._entries.get(address)
        if entry is not None and entry.mac is not None:
            if entry.state == REACHABLE and now - entry.changed >= self.reachable_time:
                entry.state = STALE  # RFC 4861 §7.3.3: still usable, to be confirmed
            return Resolution(entry.mac, False)
        if entry is None:
            self._make_room()
            entry = _Entry(INCOMPLETE, None, now, solicits=1, deadline=now + self.retransmit)
            self._entries[address] = entry
            entry.queue.append(packet)
            self.stats["resolutions_started"] += 1
            return Resolution(None, True)
        if len(entry.queue) >= self.queue_length:
            entry.queue.popleft()
            self.stats["dropped_queue_full"] += 1
        entry.queue.append(packet)
        return Resolution(None, False)

    def confirm(
        self, address: bytes, mac: bytes, now: float, *, solicited: bool = True
    ) -> list[Waiting]:
        """A reply or advertisement says ``address`` is at ``mac``; return the waiting packets.

        ``solicited=False`` (an unsolicited advertisement, or a request's sender
        address, RFC 826 "merge") creates or updates a STALE entry instead
        (RFC 4861 §7.2.5: only a solicited advertisement proves reachability).
        Unsolicited news of a neighbour we do not track is not added when the
        table is full.
        """
        entry = self._entries.get(address)
        if entry is None:
            if not solicited and len(self._entries) >= self.max_entries:
                return []
            self._make_room()
            entry = _Entry(STALE, mac, now)
            self._entries[address] = entry
        if entry.mac != mac or solicited or entry.state == INCOMPLETE:
            entry.state = REACHABLE if solicited else STALE
            entry.changed = now
        entry.mac = mac
        entry.deadline = None
        entry.solicits = 0
        waiting = list(entry.queue)
        entry.queue.clear()
        if waiting:
            self.stats["resolved_with_waiting_packets"] += 1
        return waiting

    def forget(self, address: bytes) -> None:
        """Drop an entry (its waiting packets too)."""
        self._entries.pop(address, None)

    def get_timer(self) -> float | None:
        """When the next solicitation is due (or a resolution fails)."""
        deadlines = [e.deadline for e in self._entries.values() if e.deadline is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> tuple[list[bytes], list[Waiting]]:
        """Return ``(addresses to solicit again, packets given up)``.

        A resolution that got no answer after ``retries`` solicitations fails:
        its waiting packets are handed back (for the caller to report
        unreachable) and counted (``dropped_unresolved``).
        """
        again: list[bytes] = []
        failed: list[Waiting] = []
        for address, entry in list(self._entries.items()):
            if entry.deadline is None or entry.deadline > now:
                continue
            if entry.solicits >= self.retries:
                self.stats["resolutions_failed"] += 1
                self.stats["dropped_unresolved"] += len(entry.queue)
                del self._entries[address]
                failed.extend(entry.queue)
                continue
            entry.solicits += 1
            entry.deadline = now + self.retransmit
            self.stats["solicitations_retried"] += 1
            again.append(address)
        return again, failed

    def _make_room(self) -> None:
        if len(self._entries) < self.max_entries:
            return
        resolved = [a for a, e in self._entries.items() if e.state != INCOMPLETE]
        victims = resolved or list(self._entries)
        oldest = min(victims, key=lambda a: self._entries[a].changed)
        dropped = self._entries.pop(oldest)
        self.stats["evicted"] += 1
        self.stats["dropped_evicted"] += len(dropped.queue)

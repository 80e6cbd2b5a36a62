"""Path MTU per destination (RFC 1191 for IPv4, RFC 8201 for IPv6), sans-I/O.

A "fragmentation needed" (ICMP type 3 code 4) or "packet too big" (ICMPv6
type 2) lowers the path MTU of the destination quoted in it, never below the
floor (552 for IPv4 as Linux ``min_pmtu``; 1280 for IPv6, RFC 8200 §5), never
raises it; an estimate is forgotten after 10 minutes (RFC 1191 §6.3, RFC 8201
§4: "the recommended setting for this timer is ten minutes"), after which the
link MTU is tried again. The table is bounded.
"""

from __future__ import annotations

from typing import Final

from .counts import Counts

__all__ = ["IPV4_MIN_PMTU", "IPV6_MIN_PMTU", "PMTU_AGE", "PathMtuCache", "plateau_below"]

#: Linux ``net.ipv4.route.min_pmtu`` (RFC 1191 §3 allows 68; 552 resists spoofing).
IPV4_MIN_PMTU: Final = 552
#: RFC 8200 §5: every IPv6 link carries 1280-byte packets.
IPV6_MIN_PMTU: Final = 1280
#: RFC 1191 §6.3 / RFC 8201 §4: seconds before a lowered estimate is raised again.
PMTU_AGE: Final = 600.0
#: Destinations remembered at most (the oldest estimate is forgotten first).
_MAX_ENTRIES: Final = 4096
#: RFC 1191 §7 plateau table, for routers that leave the next-hop MTU at 0.
_PLATEAUS: Final = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)


def plateau_below(length: int) -> int:
    """The largest RFC 1191 §7 plateau strictly below ``length``."""
    for plateau in _PLATEAUS:
        if plateau < length:
            return plateau
    return 68


class PathMtuCache:
    """Lowered path MTUs keyed by packed destination; everything else uses ``link_mtu``."""

    __slots__ = ("link_mtu", "lowered", "stats")

    def __init__(self, link_mtu: int) -> None:
        self.link_mtu = link_mtu
        #: destination -> (path MTU, time it expires); empty on most stacks, so the
        #: send path tests it before looking anything up.
        self.lowered: dict[bytes, tuple[int, float]] = {}
        self.stats = Counts()

    def get(self, destination: bytes, now: float | None = None) -> int:
        """The path MTU towards ``destination`` (aged entries are dropped when ``now`` is given)."""
        entry = self.lowered.get(destination)
        if entry is None:
            return self.link_mtu
        if now is not None and now >= entry[1]:
            del self.lowered[destination]
            self.stats["pmtu_expired"] += 1
            return self.link_mtu
        return entry[0]

    def lower(self, destination: bytes, mtu: int, now: float) -> int | None:
        """Apply a reported MTU; return the new path MTU if it went down, else None.

        The report is clamped to the family's floor; one that would not lower
        the current estimate is ignored (RFC 1191 §6.3, RFC 8201 §4).
        """
        floor = IPV4_MIN_PMTU if len(destination) == 4 else IPV6_MIN_PMTU
        mtu = max(mtu, floor)
        current = self.get(destination, now)
        if mtu >= current:
            self.stats["pmtu_reports_ignored"] += 1
            return None
        if destination not in self.lowered and len(self.lowered) >= _MAX_ENTRIES:
            del self.lowered[next(iter(self.lowered))]
        self.lowered[destination] = (mtu, now + PMTU_AGE)
        self.stats["pmtu_lowered"] += 1
        return mtu

    def entries(self) -> dict[bytes, int]:
        """The lowered estimates now held (destination -> MTU)."""
        return {destination: mtu for destination, (mtu, _) in self.lowered.items()}

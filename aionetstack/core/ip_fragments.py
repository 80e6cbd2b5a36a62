"""Fragments in and out (RFC 791, RFC 8200 §4.5): received fragments handed to the
bounded reassemblers (``fragments.py``), time exceeded sent when a datagram whose
first fragment arrived expires, and datagrams larger than the path MTU cut into
fragments on send.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from ..wire import icmpv4, icmpv6, ipv4, ipv6
from .fragmenter import FRAGMENT_HEADER_LENGTH, fragment_ipv4, fragment_ipv6
from .host import HostState, IpHeader
from .ipv6 import ExtensionWalk, walk_extension_headers

#: RFC 1858 §3 / RFC 7112: the smallest first fragment that holds each transport header.
_MIN_TRANSPORT_HEADER: Final = {ipv4.PROTO_TCP: 20, ipv4.PROTO_UDP: 8, ipv4.PROTO_ICMP: 8, 58: 8}
#: Bytes of a first fragment kept to quote in a time exceeded (RFC 4443 §2.4 (c)).
_QUOTE_LIMIT: Final = 1232
#: RFC 7112 §5 / RFC 4443 §3.4 parameter problem code 3: IPv6 first fragment has an
#: incomplete IPv6 header chain.
_INCOMPLETE_HEADER_CHAIN: Final = 3
#: RFC 792: time exceeded code 1, fragment reassembly time exceeded.
_ICMPV4_REASSEMBLY_TIME_EXCEEDED: Final = 1


class _FirstFragment(NamedTuple):
    """What reassembly keeps of a datagram's first fragment.

    ``unfragmentable`` is the IP header (IPv6: the part before the fragment
    header) the whole datagram gets; ``quote`` the start of the fragment as it
    came, for an ICMP time exceeded (RFC 792, RFC 4443 §3.3).
    """

    header: IpHeader
    unfragmentable: bytes
    protocol: int
    quote: bytes


def _join6(unfragmentable: bytes, protocol: int, payload: bytes | memoryview) -> memoryview:
    """The reassembled IPv6 packet (RFC 8200 §4.5): its length and next header made whole.

    Only the fixed header's fields are rewritten; after other unfragmentable
    extension headers the packet is kept for quoting as it came.
    """
    raw = bytearray(unfragmentable)
    raw += payload
    if len(unfragmentable) == ipv6.IPV6_HEADER_LENGTH:
        raw[4:6] = min(len(raw) - ipv6.IPV6_HEADER_LENGTH, 0xFFFF).to_bytes(2, "big")
        raw[6] = protocol
    return memoryview(raw)


def _unfragmented(header: ipv4.IPv4Header) -> ipv4.IPv4Header:
    """``header`` as if it were a whole datagram's (for quoting its first fragment)."""
    header.fragment_offset = 0
    return header


class _Fragmenting(HostState):
    """The ip fragments part of :class:`StackCore` (see the module docstring)."""

    def _reassemble4(
        self, header: ipv4.IPv4Header, packet: memoryview, payload: memoryview, now: float
    ) -> tuple[memoryview, memoryview] | None:
        """Feed one IPv4 fragment; return (packet, payload) of the whole datagram when done."""
        stats = self.ip_stats
        stats["fragments_received"] += 1
        minimum = _MIN_TRANSPORT_HEADER.get(header.protocol, 0)
        if header.fragment_offset == 0 and len(payload) < minimum:
            stats["dropped_tiny_first_fragment"] += 1  # RFC 1858 §3.1
            return None
        if header.protocol == ipv4.PROTO_TCP and header.fragment_offset == 8:
            stats["dropped_tiny_fragment_offset"] += 1  # RFC 1858 §3.2: would rewrite flags
            return None
        key = (header.source, header.destination, header.protocol, header.identification)
        first = None
        if header.fragment_offset == 0:
            first = _FirstFragment(
                header, bytes(packet[: header.header_length]), header.protocol,
                bytes(packet[:_QUOTE_LIMIT]),
            )  # fmt: skip
        self.timer_generation.count += 1  # the fragment may start a datagram, and its deadline
        result = self._reassembly4.add(
            key, header.fragment_offset, header.more_fragments, payload, now, first=first
        )
        if result is None:
            return None
        stats["reassembled"] += 1
        if not isinstance(result.first, _FirstFragment):
            return None  # cannot happen: completion needs the fragment at offset 0
        unfragmentable = result.first.unfragmentable
        whole = memoryview(unfragmentable + result.payload)
        header.more_fragments = False
        header.fragment_offset = 0
        header.header_length = len(unfragmentable)
        return whole, whole[len(unfragmentable) :]

    def _reassemble6(
        self,
        header: ipv6.IPv6Header,
        fragment: ipv6.FragmentHeader,
        packet: memoryview,
        *,
        upper_offset: int,
        data: memoryview,
        now: float,
    ) -> tuple[memoryview, memoryview, int] | None:
        """Feed one IPv6 fragment; return (packet, upper-layer bytes, protocol) when done.

        RFC 7112: a first fragment must hold the whole header chain and the
        upper-layer header, else it is dropped (and counted).
        """
        stats = self.ip6_stats
        stats["fragments_received"] += 1
        if fragment.offset == 0 and not fragment.more_fragments:
            stats["atomic_fragments"] += 1  # RFC 6946: process as a whole datagram
            unfragmentable = bytes(
                packet[: ipv6.IPV6_HEADER_LENGTH + upper_offset - FRAGMENT_HEADER_LENGTH]
            )
            whole = _join6(unfragmentable, fragment.next_header, data)
            return whole, whole[len(unfragmentable) :], fragment.next_header
        if fragment.offset == 0 and not self._holds_header_chain(fragment.next_header, data):
            # RFC 7112 §5: the first fragment must carry the whole header chain.
            stats["dropped_tiny_first_fragment"] += 1
            self._send_icmpv6_error(
                icmpv6.TYPE_PARAMETER_PROBLEM, _INCOMPLETE_HEADER_CHAIN, header, packet, now
            )
            return None
        key = (header.source, header.destination, fragment.identification)
        first = None
        if fragment.offset == 0:
            # The unfragmentable part, with the fragment header cut out (RFC 8200 §4.5).
            unfragmentable = bytes(
                packet[: ipv6.IPV6_HEADER_LENGTH + upper_offset - FRAGMENT_HEADER_LENGTH]
            )
            first = _FirstFragment(
                header, unfragmentable, fragment.next_header, bytes(packet[:_QUOTE_LIMIT])
            )
        self.timer_generation.count += 1  # the fragment may start a datagram, and its deadline
        result = self._reassembly6.add(
            key, fragment.offset, fragment.more_fragments, data, now, first=first
        )
        if result is None:
            return None
        stats["reassembled"] += 1
        if not isinstance(result.first, _FirstFragment):
            return None  # cannot happen: completion needs the fragment at offset 0
        unfragmentable, protocol = result.first.unfragmentable, result.first.protocol
        whole = _join6(unfragmentable, protocol, result.payload)
        return whole, whole[len(unfragmentable) :], protocol

    @staticmethod
    def _holds_header_chain(next_header: int, data: memoryview) -> bool:
        """Whether a first fragment holds the extension headers and the upper-layer header."""
        walk = walk_extension_headers(next_header, data)
        if not isinstance(walk, ExtensionWalk) or walk.fragment is not None:
            return False
        return len(data) - walk.offset >= _MIN_TRANSPORT_HEADER.get(walk.protocol, 0)

    def _reassembly_timer(self) -> float | None:
        if not self._reassembly4.deadlines and not self._reassembly6.deadlines:
            return None  # the usual case, asked after every tick: no fragments held
        four, six = self._reassembly4.get_timer(), self._reassembly6.get_timer()
        if four is None or six is None:
            return four if six is None else six
        return min(four, six)

    def _expire_fragments(self, now: float) -> None:
        """Give up late datagrams; ICMP time exceeded if the first fragment had come."""
        for expired in self._reassembly4.expire(now):
            self.ip_stats["reassembly_timeouts"] += 1
            first = expired.first
            if isinstance(first, _FirstFragment) and isinstance(first.header, ipv4.IPv4Header):
                self.send_icmp_error(
                    icmpv4.TYPE_TIME_EXCEEDED, _ICMPV4_REASSEMBLY_TIME_EXCEEDED,
                    _unfragmented(first.header), memoryview(first.quote), now,
                )  # fmt: skip
        for expired in self._reassembly6.expire(now):
            self.ip6_stats["reassembly_timeouts"] += 1
            first = expired.first
            if isinstance(first, _FirstFragment) and isinstance(first.header, ipv6.IPv6Header):
                self._send_icmpv6_error(
                    icmpv6.TYPE_TIME_EXCEEDED, icmpv6.CODE_REASSEMBLY_TIME_EXCEEDED,
                    first.header, memoryview(first.quote), now,
                )  # fmt: skip

    def fragment_statistics(self) -> dict[str, dict[str, int]]:
        """The reassemblers' own counters and the memory they hold now."""
        result: dict[str, dict[str, int]] = {}
        for name, reassembler in (("ipv4", self._reassembly4), ("ipv6", self._reassembly6)):
            result[name] = {**reassembler.stats, "bytes_held": reassembler.used,
                            "datagrams_in_progress": len(reassembler)}  # fmt: skip
        return result

    def _send_fragments4(
        self, source: bytes, destination: bytes, protocol: int,
        payload: bytes | bytearray | memoryview, *, ttl: int, mtu: int,
    ) -> None:  # fmt: skip
        """Queue the datagram as RFC 791 §3.2 fragments (``core/fragmenter.py``)."""
        self._identification = identification = (self._identification + 1) & 0xFFFF
        fragments = fragment_ipv4(
            source, destination, protocol, payload, ttl=ttl, mtu=mtu,
            identification=identification,
        )  # fmt: skip
        self._outbox.extend(fragments)
        self.ip_stats["fragments_sent"] += len(fragments)
        self.ip_sent += 1
        self.ip_stats["fragmented"] += 1

    def _send_fragments6(
        self, source: bytes, destination: bytes, protocol: int,
        payload: bytes | bytearray | memoryview, *, hop_limit: int, mtu: int,
    ) -> None:  # fmt: skip
        """Queue the packet as RFC 8200 §4.5 fragments (``core/fragmenter.py``)."""
        self._identification6 = identification = (self._identification6 + 1) & 0xFFFFFFFF
        fragments = fragment_ipv6(
            source, destination, protocol, payload, hop_limit=hop_limit, mtu=mtu,
            identification=identification,
        )  # fmt: skip
        self._outbox.extend(fragments)
        self.ip6_stats["fragments_sent"] += len(fragments)
        self.ip6_stats["sent"] += 1
        self.ip6_stats["fragmented"] += 1

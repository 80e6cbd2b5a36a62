"""What leaves the stack: IPv4 and IPv6 headers on what the transports emit, the
source address and route, TSO super-packets for offloading links, echo requests,
and the ICMP errors we send (rate-limited, never about an ICMP error, a broadcast or
a non-initial fragment: RFC 1122 §3.2.2, RFC 4443 §2.4).
"""

from __future__ import annotations

from typing import Final

from ..wire import icmpv4, icmpv6, ipv4, ipv4_send, ipv6
from .fragmenter import IPV6_FIXED_HEADER
from .host import UNSPECIFIED6, IpHeader
from .ip_fragments import _Fragmenting
from .output import COMPLETE, EmittedSegment, OffloadedPacket, SegmentOutput

#: IPv4 error (type, code) -> the ICMPv6 one with the same meaning (RFC 4443 §3).
_ICMPV6_FOR_ICMPV4: Final = {
    (icmpv4.TYPE_DESTINATION_UNREACHABLE, icmpv4.CODE_PORT_UNREACHABLE): (
        icmpv6.TYPE_DESTINATION_UNREACHABLE, icmpv6.CODE_PORT_UNREACHABLE),
}  # fmt: skip


def _is_icmpv6_error(header: ipv6.IPv6Header, packet: memoryview) -> bool:
    """Whether ``packet`` is an ICMPv6 error (RFC 4443 §2.4 (e.1): never answered)."""
    if header.next_header != icmpv6.PROTO_ICMPV6:
        return False
    return len(packet) > ipv6.IPV6_HEADER_LENGTH and packet[ipv6.IPV6_HEADER_LENGTH] < 128


class _IpOutput(_Fragmenting):
    """The ip output part of :class:`StackCore` (see the module docstring)."""

    def send_ip(
        self,
        source: bytes,
        destination: bytes,
        protocol: int,
        payload: bytes | bytearray | memoryview,
        *,
        ttl: int | None = None,
        segment_size: int = COMPLETE,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        """Queue one IPv4 or IPv6 packet (the family follows the address length).

        A complete packet longer than the path MTU is fragmented, as Linux does
        for UDP and ICMP (IPv4 fragments go without DF; an unfragmented IPv4
        packet carries DF, RFC 1191). ``segment_size`` other than
        :data:`COMPLETE` marks a TCP/UDP payload whose checksum field holds only
        the pseudo-header sum, for a link with ``transmit_offload`` to complete;
        with a value > 0 a TCP packet of up to ``max_packet_size`` is cut by the
        device into segments of that size. ``tail``: more payload after
        ``payload`` for an offloaded packet, handed to the link as it is (no
        copy, nothing computes a checksum over it here). Raises ``ValueError``
        when the packet cannot be sent at all (longer than 65,535 bytes, or an
        offloaded one longer than the link takes).
        """
        if tail and segment_size == COMPLETE:
            payload, tail = b"".join((payload, *tail)), ()
        hop = self._default_ttl if ttl is None else ttl
        if len(destination) == 16:
            self._send_ipv6(
                source, destination, protocol, payload, hop_limit=hop, segment_size=segment_size,
                tail=tail,
            )  # fmt: skip
            return
        size = len(payload)
        for part in tail:
            size += len(part)
        length = ipv4.IPV4_HEADER_LENGTH + size
        if segment_size == COMPLETE:
            limit = self.pmtu.get(destination, self._now) if self.pmtu.lowered else self.mtu
            if length > limit:
                self._send_fragments4(source, destination, protocol, payload, ttl=hop, mtu=limit)
                return
        elif length > self.max_packet_size:
            raise ValueError(
                f"packet of {length} bytes exceeds the link's limit of {self.max_packet_size}"
            )
        self._identification = identification = (self._identification + 1) & 0xFFFF
        header = ipv4_send.simple_ipv4_header(
            source, destination, protocol, size, hop, identification
        )
        packet = b"".join((header, payload))
        self._outbox.append(
            packet if segment_size == COMPLETE else OffloadedPacket(packet, segment_size, tail)
        )
        self.ip_sent += 1

    def _send_ipv6(
        self, source: bytes, destination: bytes, protocol: int,
        payload: bytes | bytearray | memoryview, *, hop_limit: int, segment_size: int,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:  # fmt: skip
        size = len(payload)
        for part in tail:
            size += len(part)
        length = ipv6.IPV6_HEADER_LENGTH + size
        if segment_size == COMPLETE:
            limit = self.pmtu.get(destination, self._now) if self.pmtu.lowered else self.mtu
            if length > limit:
                self._send_fragments6(
                    source, destination, protocol, payload, hop_limit=hop_limit, mtu=limit
                )
                return
        elif length > self.max_packet_size:
            raise ValueError(
                f"packet of {length} bytes exceeds the link's limit of {self.max_packet_size}"
            )
        if size > 0xFFFF:
            raise ValueError(f"IPv6 payload of {size} bytes exceeds 65535 (no jumbograms)")
        header = IPV6_FIXED_HEADER.pack(6 << 28, size, protocol, hop_limit, source, destination)
        packet = b"".join((header, payload))
        self._outbox.append(
            packet if segment_size == COMPLETE else OffloadedPacket(packet, segment_size, tail)
        )
        self.ip6_stats["sent"] += 1

    def send_segments(
        self, source: bytes, destination: bytes, protocol: int, segments: list[EmittedSegment]
    ) -> None:
        """Queue transport segments in a row for an offloading link (``emit_many``).

        Each is ``(header, segment_size, parts, length)`` as :meth:`send_ip` takes with
        ``segment_size`` and ``tail``: the same packets, their IPv4 headers built
        together. Raises ``ValueError``, having queued none of them, when one is longer
        than the link takes.
        """
        lengths = [len(header) + length for header, _, _, length in segments]
        ipv6_packets = len(destination) == 16
        longest = max(lengths) + (
            ipv6.IPV6_HEADER_LENGTH if ipv6_packets else ipv4.IPV4_HEADER_LENGTH
        )
        if longest > self.max_packet_size:
            raise ValueError(
                f"packet of {longest} bytes exceeds the link's limit of {self.max_packet_size}"
            )
        if ipv6_packets:
            for header, segment_size, parts, _ in segments:
                self._send_ipv6(
                    source, destination, protocol, header, hop_limit=self._default_ttl,
                    segment_size=segment_size, tail=parts,
                )  # fmt: skip
            return
        identification = (self._identification + 1) & 0xFFFF
        self._identification = (self._identification + len(segments)) & 0xFFFF
        headers = ipv4_send.simple_ipv4_headers(
            source, destination, protocol, lengths, self._default_ttl, identification
        )
        append = self._outbox.append
        for ip_header, (header, segment_size, parts, _) in zip(headers, segments, strict=True):
            append(OffloadedPacket(ip_header + header, segment_size, parts))
        self.ip_sent += len(segments)

    def transport_output(self, protocol: int) -> SegmentOutput:
        """Where a transport's segments go: ``emit`` to :meth:`send_ip`, ``emit_many``
        to :meth:`send_segments`, as packets of ``protocol``."""
        return _TransportOutput(self, protocol)

    def send_echo_request(
        self,
        destination: bytes,
        identifier: int,
        sequence: int,
        payload: bytes,
        *,
        ttl: int | None = None,
    ) -> None:
        """Send an ICMP or ICMPv6 echo request (RFC 792, RFC 4443 §4.1).

        Raises ``OSError(ENETUNREACH)`` without a route.
        """
        route = self.routes.route(destination)
        if len(destination) == 16:
            message = icmpv6.build_echo(
                route.source, destination, reply=False, identifier=identifier,
                sequence=sequence, payload=payload,
            )  # fmt: skip
            self.send_ip(route.source, destination, icmpv6.PROTO_ICMPV6, message, ttl=ttl)
            self.icmp6_stats["echo_requests_sent"] += 1
            return
        message = icmpv4.build_echo(
            reply=False, identifier=identifier, sequence=sequence, payload=payload
        )
        self.send_ip(route.source, destination, ipv4.PROTO_ICMP, message, ttl=ttl)
        self.icmp_stats["echo_requests_sent"] += 1

    def send_icmp_error(
        self, icmp_type: int, code: int, header: IpHeader, packet: memoryview, now: float
    ) -> None:
        """Answer ``packet`` with an ICMP error, within RFC 1122 §3.2.2's limits.

        Given an IPv6 header, the ICMPv4 (type, code) is translated to its
        ICMPv6 equivalent (port unreachable: type 1 code 4).
        """
        if isinstance(header, ipv6.IPv6Header):
            mapped = _ICMPV6_FOR_ICMPV4.get((icmp_type, code))
            if mapped is not None:
                self._send_icmpv6_error(mapped[0], mapped[1], header, packet, now)
            return
        # RFC 1122 §3.2.2: never about an ICMP error, a broadcast, or a non-initial fragment.
        if header.fragment_offset or self.routes.is_broadcast(header.destination):
            return
        if header.protocol == ipv4.PROTO_ICMP:
            inner = packet[header.header_length :]
            if len(inner) < 1 or inner[0] not in (icmpv4.TYPE_ECHO_REQUEST, icmpv4.TYPE_ECHO_REPLY):
                return
        if not self._icmp_limiter.allow(now):
            self.icmp_stats["errors_rate_limited"] += 1
            return
        message = icmpv4.build_error(icmp_type, code, packet)
        self.send_ip(header.destination, header.source, ipv4.PROTO_ICMP, message)
        self.icmp_stats["errors_sent"] += 1

    def _send_icmpv6_error(
        self, icmp_type: int, code: int, header: ipv6.IPv6Header, packet: memoryview,
        now: float, *, body: int = 0,
    ) -> None:  # fmt: skip
        """Answer with an ICMPv6 error within RFC 4443 §2.4 (e) and (f)'s limits."""
        # RFC 4443 §2.4 (e): never about an ICMPv6 error, a packet to a multicast
        # destination (but for packet too big and parameter problem code 2), or one
        # from an unspecified or multicast source.
        if header.source == UNSPECIFIED6 or header.source[0] == 0xFF:
            return
        excepted = icmp_type == icmpv6.TYPE_PACKET_TOO_BIG or (
            icmp_type == icmpv6.TYPE_PARAMETER_PROBLEM and code == 2
        )
        if header.destination[0] == 0xFF and not excepted:
            return
        if _is_icmpv6_error(header, packet):
            return
        # RFC 4443 §2.4 (f): rate-limited (as Linux's icmpv6 ratelimit token bucket).
        if not self._icmp6_limiter.allow(now):
            self.icmp6_stats["errors_rate_limited"] += 1
            return
        source = header.destination
        if source not in self.routes.local_addresses and not self.intercept.covers(source):
            try:
                source = self.routes.route(header.source).source
            except OSError:
                return
        message = icmpv6.build_error(icmp_type, code, packet, source, header.source, body=body)
        self.send_ip(source, header.source, icmpv6.PROTO_ICMPV6, message)
        self.icmp6_stats["errors_sent"] += 1

    def _tso_payload(self) -> int:
        """Most TCP payload per super-segment the link cuts for us (0: no TSO).

        Leaves room for the larger (IPv6, RFC 8200 §3) IP header and the largest
        TCP header (RFC 9293 §3.1), so one figure serves both families.
        """
        if self.max_packet_size <= self.mtu:
            return 0
        return self.max_packet_size - ipv6.IPV6_HEADER_LENGTH - 60


class _TransportOutput(SegmentOutput):
    """A transport's :class:`SegmentOutput` into the IP layer's output (compiled: the
    calls from TCP's egress down to :meth:`_IpOutput.send_ip` are native)."""

    def __init__(self, ip: _IpOutput, protocol: int) -> None:
        self._ip = ip
        self._protocol = protocol

    def emit(
        self,
        source: bytes,
        destination: bytes,
        segment: bytes,
        segment_size: int = COMPLETE,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        self._ip.send_ip(
            source, destination, self._protocol, segment, segment_size=segment_size, tail=tail
        )

    def emit_many(self, source: bytes, destination: bytes, segments: list[EmittedSegment]) -> None:
        self._ip.send_segments(source, destination, self._protocol, segments)

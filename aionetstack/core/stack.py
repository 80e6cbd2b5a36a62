"""``StackCore``: the whole stack as one sans-I/O machine.

Five verbs (DESIGN.md §2): ``receive_packet``, ``packets_to_send``,
``get_timer``, ``handle_timer``, ``next_event``. It validates and demultiplexes
what the link hands over (this module: IPv4 and IPv6 ingress, extension headers,
transports plugged in by protocol number), answers pings and maps ICMP errors to
whoever caused them (``icmp_input``), wraps what the transports emit in IP headers
(``ip_output``), reassembles and fragments (``ip_fragments``); its fields are
``host.HostState``'s. A malformed or unwanted packet never raises: it is dropped
and counted under a reason.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Final

from ..wire import icmpv4, icmpv6, ipv4, ipv6
from ..wire.checksum import internet_checksum, pseudo_header_sum
from ..wire.error import WireError
from ..wire.plain_tcp4 import parse_plain_tcp4
from .host import UNSPECIFIED6, IpHeader, TransportHandler
from .icmp_input import _IcmpInput
from .ipv6 import ExtensionWalk, ParameterProblem, walk_extension_headers
from .output import COMPLETE, OffloadedPacket
from .timer_generation import TIMER_ANSWER_CHECK

__all__ = ["COMPLETE", "IpHeader", "OffloadedPacket", "StackCore"]

#: RFC 4443 §3.4 parameter problem code 1: unrecognized Next Header type.
_UNRECOGNIZED_NEXT_HEADER: Final = 1
#: RFC 791 §3.1: version 4, IHL 5 (no options): the first byte of most packets.
_V4_NO_OPTIONS: Final = 0x45


def _transport_checksum_ok(
    source: bytes, destination: bytes, segment: memoryview, protocol: int
) -> bool:
    """True if a transport segment's checksum over the pseudo-header is right."""
    pseudo = pseudo_header_sum(source, destination, protocol, len(segment))
    return internet_checksum(segment, pseudo) == 0


_LOOPBACK6: Final = bytes(15) + b"\x01"


class StackCore(_IcmpInput):
    """A host's IPv4 and IPv6 stack with ICMP (and TCP/UDP layers plugged in).

    ``addresses`` are interface strings such as ``"198.18.0.2/24"`` or
    ``"2001:2::2/64"``, several of each family allowed; ``gateway`` the default
    routes' next hops (at most one per family, each on one of those networks).
    ``mtu`` bounds what we send. ``rng`` supplies IP identifiers, ISNs, ports.
    """

    def register_transport(
        self,
        protocol: int,
        receive: TransportHandler,
        *,
        icmp_error: Callable[[bytes, bytes, memoryview, OSError, float], None] | None = None,
        path_mtu: Callable[[bytes, bytes, memoryview, int, float], None] | None = None,
        flush: Callable[[float], None] | None = None,
        get_timer: Callable[[], float | None] | None = None,
        handle_timer: Callable[[float], None] | None = None,
        statistics: tuple[str, Callable[[], dict[str, int]]] | None = None,
    ) -> None:
        """Attach a transport layer (UDP, TCP) under its IP protocol number, both families.

        ``icmp_error(src, dst, quoted_transport_bytes, error, now)`` receives ICMP
        errors quoting its packets; ``path_mtu(src, dst, quoted, mtu, now)`` hears
        that the path MTU towards ``dst`` went down to ``mtu``; ``flush`` runs
        before output is collected; ``get_timer``/``handle_timer`` join the
        stack's single deadline (``get_timer``'s layer must bump
        ``timer_generation.count`` whenever it may have set a deadline earlier
        than it last reported, or the stack's answer may stay later than it).
        """
        self._transports[protocol] = receive
        self._transports6[protocol] = receive
        if icmp_error is not None:
            self._error_handlers[protocol] = icmp_error
        if path_mtu is not None:
            self._pmtu_handlers[protocol] = path_mtu
        if flush is not None:
            self._flushers.append(flush)
        if get_timer is not None and handle_timer is not None:
            self._timers.append((get_timer, handle_timer))
            self._timer_answered_at = -1  # a new source: the last answer did not ask it
        if statistics is not None:
            self._statistics[statistics[0]] = statistics[1]

    def receive_packet(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Take one packet from the link. Never raises on bad input."""
        self._now = now
        if data and data[0] == _V4_NO_OPTIONS and self._receive_tcp4_plain(data, now):
            return
        self.receive_packet_checked(data, now)

    def receive_packet_checked(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """:meth:`receive_packet` without its inline path for plain TCP in IPv4: every
        check, for any packet. It has the same outcome, for every packet (tested)."""
        self._now = now
        if not data:
            self.ip_received += 1
            self.ip_stats["dropped_truncated"] += 1
            return
        version = data[0] >> 4
        if version == 6:
            self._receive_ipv6(data, now)
            return
        stats = self.ip_stats
        self.ip_received += 1
        if version != 4:
            stats["dropped_bad_version"] += 1
            return
        try:
            header, payload = ipv4.parse_ipv4(
                data, verify_checksum=self.config.ip.verify_header_checksum
            )
        except WireError as error:
            stats["dropped_" + error.reason] += 1
            return
        # RFC 1122 §3.2.1.7: no host may send TTL 0, so such a datagram is invalid.
        if header.ttl == 0:
            stats["dropped_bad_ttl"] += 1
            return
        if header.destination not in self._accepted_destinations and not self.intercept.covers(
            header.destination
        ):
            stats["dropped_not_for_us"] += 1  # we are a host: no forwarding (RFC 1122 §3.3.1)
            return
        if header.source in self._refused_sources or header.source[0] in ipv4.MARTIAN_FIRST_OCTETS:
            stats["dropped_bad_source"] += 1  # RFC 1122 §3.2.1.3
            return
        packet = memoryview(data)
        if header.is_fragment:
            whole = self._reassemble4(header, packet, payload, now)
            if whole is None:
                return
            packet, payload = whole
        handler = self._transports.get(header.protocol)
        if handler is None:
            stats["dropped_unknown_protocol"] += 1
            # RFC 1122 §3.2.2.1: a host SHOULD answer protocol unreachable.
            self.send_icmp_error(
                icmpv4.TYPE_DESTINATION_UNREACHABLE, icmpv4.CODE_PROTOCOL_UNREACHABLE,
                header, packet, now,
            )  # fmt: skip
            return
        self.ip_delivered += 1
        handler(header, payload, packet, now)

    def _receive_tcp4_plain(self, data: bytes | bytearray | memoryview, now: float) -> bool:
        """The commonest packet, handled inline: TCP in IPv4 without options or fragments,
        from a plausible source to one of our own addresses. Returns False, having changed
        nothing, for anything else; :meth:`receive_packet` then does the full checks (and
        counts the drops). Accepts exactly what the full path accepts, without building an
        :class:`~.host.IpHeader`: every check is ``wire/plain_tcp4.py``'s (one C call where
        built), given our addresses and the sources we refuse."""
        fields = parse_plain_tcp4(
            data, self._verify_header, self._verify_transport, self.routes.local_addresses,
            self._refused_sources,
        )  # fmt: skip
        if fields is None:
            return False
        self.ip_received += 1
        self.ip_delivered += 1
        # Unpacked by name, not ``*fields``: compiled, the call is then native.
        source, destination, sport, dport, seq, ack, flags, window, options, payload = fields
        self.tcp.receive_fields(
            source, destination, sport, dport, seq, ack, flags, window, options, payload, now
        )
        return True

    def packets_to_send(self, now: float) -> list[bytes | OffloadedPacket]:
        """Return (and forget) every packet ready for the link.

        Items are complete packets (``bytes``) or, on links with
        ``transmit_offload``, :class:`OffloadedPacket` for ``Link.send_offloaded``.
        """
        self._now = now
        for flush in self._flushers:
            flush(now)
        out = self._outbox
        self._outbox = []
        return out

    def get_timer(self) -> float | None:
        """Earliest deadline of any layer, or ``None``; never later than the true one,
        possibly earlier (a deadline since moved later or gone: waking then is harmless).

        The layers are asked again only when one may have set an earlier deadline since
        the last answer (``timer_generation``, core/timer_generation.py).
        """
        generation = self.timer_generation.count
        if generation == self._timer_answered_at and not self._check_timer_answers:
            return self._timer_answer
        deadline: float | None = None
        for get_timer, _ in self._timers:
            value = get_timer()
            if value is not None and (deadline is None or value < deadline):
                deadline = value
        if generation == self._timer_answered_at:  # checking: the answer it would have reused
            answer = self._timer_answer
            if deadline is not None and (answer is None or answer > deadline):
                TIMER_ANSWER_CHECK.late += 1
        self._timer_answer = deadline
        self._timer_answered_at = generation
        return deadline

    def handle_timer(self, now: float) -> None:
        """Run whatever is due at ``now``; early or repeated calls are harmless."""
        self._now = now
        self._timer_answered_at = -1  # what fired is gone: ask the layers again
        for _, handle in self._timers:
            handle(now)

    def next_event(self) -> object | None:
        """Pop the oldest pending event, or ``None``."""
        return self._events.popleft() if self._events else None

    def _receive_ipv6(self, data: bytes | bytearray | memoryview, now: float) -> None:
        stats = self.ip6_stats
        stats["received"] += 1
        try:
            header, payload = ipv6.parse_ipv6(data)
        except WireError as error:
            stats["dropped_" + error.reason] += 1
            return
        destination, source = header.destination, header.source
        if destination not in self._accepted6 and not self.intercept.covers(destination):
            stats["dropped_not_for_us"] += 1  # a host: no forwarding (RFC 8200 §4, RFC 1122)
            return
        # RFC 4291 §2.7: a multicast address is never a source; ::1 never arrives on a link.
        if source[0] == 0xFF or source == _LOOPBACK6 or source in self.routes.local_addresses:
            stats["dropped_bad_source"] += 1
            return
        packet = memoryview(data)[: ipv6.IPV6_HEADER_LENGTH + header.payload_length]
        walk = walk_extension_headers(header.next_header, payload)
        if isinstance(walk, str):
            stats["dropped_" + walk] += 1
            return
        if isinstance(walk, ParameterProblem):
            stats["dropped_" + walk.reason] += 1
            self._send_icmpv6_error(
                icmpv6.TYPE_PARAMETER_PROBLEM, walk.code, header, packet, now, body=walk.pointer
            )
            return
        protocol = walk.protocol
        upper = payload[walk.offset :]
        if walk.fragment is not None:
            whole = self._reassemble6(
                header, walk.fragment, packet, upper_offset=walk.offset, data=upper, now=now
            )
            if whole is None:
                return
            packet, upper, protocol = whole
            # A reassembled datagram may itself carry extension headers after the
            # fragment header (destination options): walk them too.
            inner = walk_extension_headers(protocol, upper)
            if not isinstance(inner, ExtensionWalk):
                stats["dropped_bad_extension"] += 1
                return
            protocol, upper = inner.protocol, upper[inner.offset :]
        if protocol == ipv6.NEXT_HEADER_NONE:
            stats["no_next_header"] += 1  # RFC 8200 §4.7: nothing follows; ignore
            return
        if source == UNSPECIFIED6 and protocol != icmpv6.PROTO_ICMPV6:
            stats["dropped_bad_source"] += 1  # :: is only a source for DAD (RFC 4862 §5.4)
            return
        handler = self._transports6.get(protocol)
        if handler is None:
            stats["dropped_unknown_protocol"] += 1
            # RFC 8200 §4: unrecognized next header -> parameter problem, code 1.
            self._send_icmpv6_error(
                icmpv6.TYPE_PARAMETER_PROBLEM, _UNRECOGNIZED_NEXT_HEADER, header, packet, now,
                body=walk.pointer,
            )  # fmt: skip
            return
        stats["delivered"] += 1
        header.next_header = protocol
        handler(header, upper, packet, now)

    def _mss_for(self, remote: bytes) -> int:
        """MSS to advertise towards ``remote``: the path MTU less IP and TCP headers (RFC 6691)."""
        return self.pmtu.get(remote, self._now) - (40 if len(remote) == 4 else 60)

    def _receive_tcp(
        self, header: IpHeader, payload: memoryview, packet: memoryview, now: float
    ) -> None:
        # RFC 1122 §4.2.3.10: segments to broadcast or multicast addresses are discarded.
        if header.destination not in self.routes.local_addresses and not self.intercept.covers(
            header.destination
        ):
            self.tcp.count("dropped_broadcast")
            return
        if not self.verify_transport_checksum(header, payload, ipv4.PROTO_TCP):
            self.tcp.count("dropped_bad_checksum")
            return
        self.tcp.receive_segment(header.source, header.destination, payload, now)

    def _tcp_icmp_error(
        self, source: bytes, destination: bytes, quoted: memoryview, error: OSError, now: float
    ) -> None:
        """ICMP errors for TCP; "too big" is a path MTU change, not an error (RFC 1191 §6.3)."""
        if error.errno == errno.EMSGSIZE:
            return
        self.tcp.icmp_error(source, destination, quoted, error, now)

    def statistics(self) -> dict[str, dict[str, int]]:
        """Counters per layer, like ``netstat -s`` (``ip6``/``icmp6`` for IPv6)."""
        result = {"ip": self.ip_counts(), "icmp": dict(self.icmp_stats)}
        if self.ip6_stats or 6 in self.routes.families:
            result["ip6"] = dict(self.ip6_stats)
            result["icmp6"] = dict(self.icmp6_stats)
        for name, reassembler in (("ip", self._reassembly4), ("ip6", self._reassembly6)):
            for key, value in reassembler.stats.items():
                if key.startswith("dropped_"):
                    result.setdefault(name, {})["fragments_" + key] = value
        if self.pmtu.stats:
            result["pmtu"] = dict(self.pmtu.stats)
        for name, source in self._statistics.items():
            result[name] = dict(source())
        if self.intercept.used:
            result["intercept"] = self.intercept.statistics()
        return result

    def verify_transport_checksum(
        self, header: IpHeader, segment: memoryview, protocol: int
    ) -> bool:
        """True if ``segment``'s checksum over the pseudo-header is right (or not checked)."""
        if not self._verify_transport:
            return True
        return _transport_checksum_ok(header.source, header.destination, segment, protocol)

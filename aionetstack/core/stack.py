"""``StackCore``: the whole stack as one sans-I/O machine.

Five verbs (DESIGN.md §2): ``receive_packet``, ``packets_to_send``,
``get_timer``, ``handle_timer``, ``next_event``. It validates and demultiplexes
what the link hands over, answers pings, maps ICMP errors to whoever caused
them, and wraps what the transports emit in IP headers. A malformed or
unwanted packet never raises: it is dropped and counted under a reason.
"""

from __future__ import annotations

import errno
import ipaddress
import struct
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

from ..config import StackConfig
from ..wire import icmpv4, icmpv6, ipv4, ipv6
from ..wire.checksum import internet_checksum, pseudo_header_sum
from ..wire.error import WireError
from .events import EchoReplyReceived, EchoUnreachable
from .fragmenter import FRAGMENT_HEADER_LENGTH, fragment_ipv4, fragment_ipv6
from .fragments import IPV4_TIMEOUT, IPV6_TIMEOUT, Reassembler
from .icmp import IcmpRateLimiter, icmpv4_error_to_oserror, icmpv6_error_to_oserror
from .ip import ALL_NODES, Interface, RouteEntry, RoutingTable, parse_interface
from .ipv6 import ExtensionWalk, ParameterProblem, walk_extension_headers
from .output import COMPLETE, OffloadedPacket
from .pmtu import PathMtuCache, plateau_below
from .randomness import RandomSource
from .tcp import TcpLayer
from .udp import UdpLayer

__all__ = ["COMPLETE", "IpHeader", "OffloadedPacket", "StackCore"]

#: The header a transport handler gets: IPv4's or IPv6's (both have ``source``/``destination``).
IpHeader = ipv4.IPv4Header | ipv6.IPv6Header
#: Handler for one transport protocol: (header, payload, raw packet, now).
_TransportHandler = Callable[[IpHeader, memoryview, memoryview, float], None]
_IPV6_HEADER: Final = struct.Struct("!IHBB16s16s")
#: RFC 1858 §3 / RFC 7112: the smallest first fragment that holds each transport header.
_MIN_TRANSPORT_HEADER: Final = {ipv4.PROTO_TCP: 20, ipv4.PROTO_UDP: 8, ipv4.PROTO_ICMP: 8, 58: 8}
#: IPv4 error (type, code) -> the ICMPv6 one with the same meaning (RFC 4443 §3).
_ICMPV6_FOR_ICMPV4: Final = {
    (icmpv4.TYPE_DESTINATION_UNREACHABLE, icmpv4.CODE_PORT_UNREACHABLE): (
        icmpv6.TYPE_DESTINATION_UNREACHABLE, icmpv6.CODE_PORT_UNREACHABLE),
}  # fmt: skip
#: Bytes of a first fragment kept to quote in a time exceeded (RFC 4443 §2.4 (c)).
_QUOTE_LIMIT: Final = 1232
#: RFC 7112 §5 / RFC 4443 §3.4 parameter problem code 3: IPv6 first fragment has an
#: incomplete IPv6 header chain.
_INCOMPLETE_HEADER_CHAIN: Final = 3
#: RFC 4443 §3.4 parameter problem code 1: unrecognized Next Header type.
_UNRECOGNIZED_NEXT_HEADER: Final = 1
#: RFC 792: time exceeded code 1, fragment reassembly time exceeded.
_ICMPV4_REASSEMBLY_TIME_EXCEEDED: Final = 1
#: Quoted datagram in an ICMP error: IP header plus at least 8 bytes (RFC 792).
_MIN_QUOTE = ipv4.IPV4_HEADER_LENGTH + 8
#: RFC 1122 §3.2.1.3 / RFC 6890: 0/8 "this network", 127/8 loopback, 224/4 multicast
#: and 240/4 reserved are never the source of a packet we accept.
_MARTIAN_FIRST_OCTETS = frozenset([0, 127, *range(224, 256)])


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


class StackCore:
    """A host's IPv4 and IPv6 stack with ICMP (and TCP/UDP layers plugged in).

    ``addresses`` are interface strings such as ``"198.18.0.2/24"`` or
    ``"2001:2::2/64"``, several of each family allowed; ``gateway`` the default
    routes' next hops (at most one per family, each on one of those networks).
    ``mtu`` bounds what we send. ``rng`` supplies IP identifiers, ISNs, ports.
    """

    def __init__(
        self,
        addresses: list[str],
        *,
        gateway: str | Sequence[str] | None = None,
        mtu: int = 1500,
        config: StackConfig | None = None,
        rng: RandomSource,
        receive_checksums_partial: bool = False,
        transmit_offload: bool = False,
        max_packet_size: int | None = None,
    ) -> None:
        if not 68 <= mtu <= 65535:  # RFC 791 §3.2: every host must handle 68-byte datagrams
            raise ValueError(f"mtu must be in 68..65535, got {mtu}")
        self.config = config or StackConfig()
        self.mtu = mtu
        #: The link completes checksums (and cuts TCP super-packets) of offloaded packets.
        self.transmit_offload = transmit_offload
        self.max_packet_size = max(mtu, max_packet_size or mtu) if transmit_offload else mtu
        self._default_ttl = self.config.ip.default_ttl
        interfaces: list[Interface] = [parse_interface(a) for a in addresses]
        if mtu < 1280 and any(i.version == 6 for i in interfaces):
            raise ValueError(f"IPv6 needs an MTU of at least 1280 (RFC 8200 §5), got {mtu}")
        gateways = [gateway] if isinstance(gateway, str) else list(gateway or ())
        for text in gateways:
            if not isinstance(text, str):
                raise TypeError(f"gateway must be an address string, got {type(text).__name__}")
        try:
            packed = [ipaddress.ip_address(text).packed for text in gateways]
        except ValueError as exc:
            raise ValueError(f"gateway is not an IP address: {exc}") from None
        self.routes = RoutingTable(interfaces, packed)
        self._accepted_destinations = self.routes.local_addresses | self.routes.broadcast_addresses
        # RFC 1122 §3.2.1.3: our own addresses and broadcasts are never valid sources.
        self._refused_sources = self.routes.local_addresses | self.routes.broadcast_addresses
        #: IPv6 destinations we take: our addresses, all-nodes, our solicited-node groups.
        self._accepted6 = frozenset(
            [ALL_NODES]
            + [a for a in self.routes.local_addresses if len(a) == 16]
            + [
                icmpv6.solicited_node_address(a)
                for a in self.routes.local_addresses
                if len(a) == 16
            ]
        )
        self.rng = rng
        self._verify_transport = (
            self.config.ip.verify_transport_checksum and not receive_checksums_partial
        )
        self._outbox: list[bytes | OffloadedPacket] = []
        self._events: deque[object] = deque()
        self._identification = rng.getrandbits(16)
        self._identification6 = rng.getrandbits(32)
        self._icmp_limiter = IcmpRateLimiter(
            self.config.ip.icmp_error_rate, self.config.ip.icmp_error_burst
        )
        self._icmp6_limiter = IcmpRateLimiter(
            self.config.ip.icmp_error_rate, self.config.ip.icmp_error_burst
        )
        self._now = 0.0
        self.pmtu = PathMtuCache(mtu)
        self._reassembly4 = Reassembler(IPV4_TIMEOUT)
        self._reassembly6 = Reassembler(IPV6_TIMEOUT)
        self.ip_stats: Counter[str] = Counter()
        self.icmp_stats: Counter[str] = Counter()
        self.ip6_stats: Counter[str] = Counter()
        self.icmp6_stats: Counter[str] = Counter()
        self._transports: dict[int, _TransportHandler] = {ipv4.PROTO_ICMP: self._receive_icmp}
        self._transports6: dict[int, _TransportHandler] = {
            icmpv6.PROTO_ICMPV6: self._receive_icmpv6
        }
        self._error_handlers: dict[int, Callable[[bytes, bytes, memoryview, OSError, float], None]]
        self._error_handlers = {}
        self._pmtu_handlers: dict[int, Callable[[bytes, bytes, memoryview, int, float], None]]
        self._pmtu_handlers = {}
        #: ICMPv6 informational types other than echo (neighbour discovery) -> handler.
        self._icmpv6_handlers: dict[
            int, Callable[[ipv6.IPv6Header, icmpv6.Icmpv6Message, float], None]
        ] = {}
        self._flushers: list[Callable[[float], None]] = []
        self._timers: list[tuple[Callable[[], float | None], Callable[[float], None]]] = [
            (self._reassembly_timer, self._expire_fragments)
        ]
        self._statistics: dict[str, Callable[[], dict[str, int]]] = {}
        self.udp = UdpLayer(self)
        self.register_transport(
            ipv4.PROTO_UDP, self.udp.receive, icmp_error=self.udp.icmp_error,
            statistics=("udp", self.udp.statistics),
        )  # fmt: skip
        self.tcp = TcpLayer(
            self.config.tcp, rng, emit=self.emit_transport(ipv4.PROTO_TCP), events=self._events,
            ephemeral_ports=self.config.ephemeral_ports, mss_for=self._mss_for,
            partial_checksums=transmit_offload, max_segment_payload=self._tso_payload(),
        )  # fmt: skip
        self.register_transport(
            ipv4.PROTO_TCP, self._receive_tcp, icmp_error=self._tcp_icmp_error,
            path_mtu=self.tcp.path_mtu_changed,
            flush=self.tcp.flush, get_timer=self.tcp.get_timer, handle_timer=self.tcp.handle_timer,
            statistics=("tcp", self.tcp.statistics),
        )  # fmt: skip

    # -- plugging transports in ---------------------------------------------------

    def register_transport(
        self,
        protocol: int,
        receive: _TransportHandler,
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
        stack's single deadline.
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
        if statistics is not None:
            self._statistics[statistics[0]] = statistics[1]

    def add_statistics(self, name: str, source: Callable[[], dict[str, int]]) -> None:
        """Show a layer's counters under ``name`` in :meth:`statistics` (e.g. ``ethernet``)."""
        self._statistics[name] = source

    @property
    def events(self) -> deque[object]:
        """The shared event queue transports append to."""
        return self._events

    @property
    def verify_transport_checksums(self) -> bool:
        """Whether transports must verify checksums of what they receive."""
        return self._verify_transport

    def route_entries(self) -> list[RouteEntry]:
        """The routing table as ``ip route`` shows it (connected, static, defaults)."""
        return self.routes.entries()

    def path_mtu(self, destination: bytes) -> int:
        """The path MTU towards ``destination`` now (the link MTU unless an ICMP lowered it)."""
        return self.pmtu.get(destination, self._now)

    # -- the five verbs -------------------------------------------------------------

    def receive_packet(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Take one packet from the link. Never raises on bad input."""
        self._now = now
        if not data:
            self.ip_stats["received"] += 1
            self.ip_stats["dropped_truncated"] += 1
            return
        version = data[0] >> 4
        if version == 6:
            self._receive_ipv6(data, now)
            return
        stats = self.ip_stats
        stats["received"] += 1
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
        if header.destination not in self._accepted_destinations:
            stats["dropped_not_for_us"] += 1  # we are a host: no forwarding (RFC 1122 §3.3.1)
            return
        if header.source in self._refused_sources or header.source[0] in _MARTIAN_FIRST_OCTETS:
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
        stats["delivered"] += 1
        handler(header, payload, packet, now)

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
        """Earliest deadline of any layer, or ``None``."""
        deadline: float | None = None
        for get_timer, _ in self._timers:
            value = get_timer()
            if value is not None and (deadline is None or value < deadline):
                deadline = value
        return deadline

    def handle_timer(self, now: float) -> None:
        """Run whatever is due at ``now``; early or repeated calls are harmless."""
        self._now = now
        for _, handle in self._timers:
            handle(now)

    def next_event(self) -> object | None:
        """Pop the oldest pending event, or ``None``."""
        return self._events.popleft() if self._events else None

    # -- IPv6 receive (RFC 8200) ------------------------------------------------------

    def _receive_ipv6(self, data: bytes | bytearray | memoryview, now: float) -> None:
        stats = self.ip6_stats
        stats["received"] += 1
        try:
            header, payload = ipv6.parse_ipv6(data)
        except WireError as error:
            stats["dropped_" + error.reason] += 1
            return
        destination, source = header.destination, header.source
        if destination not in self._accepted6:
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
        if source == _UNSPECIFIED6 and protocol != icmpv6.PROTO_ICMPV6:
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

    # -- fragments (RFC 791 §3.2, RFC 8200 §4.5) --------------------------------------

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

    # -- sending ------------------------------------------------------------------

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
        header = ipv4.simple_ipv4_header(
            source, destination, protocol, size, ttl=hop, identification=identification
        )
        packet = b"".join((header, payload))
        self._outbox.append(
            packet if segment_size == COMPLETE else OffloadedPacket(packet, segment_size, tail)
        )
        self.ip_stats["sent"] += 1

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
        self.ip_stats["sent"] += 1
        self.ip_stats["fragmented"] += 1

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
        header = _IPV6_HEADER.pack(6 << 28, size, protocol, hop_limit, source, destination)
        packet = b"".join((header, payload))
        self._outbox.append(
            packet if segment_size == COMPLETE else OffloadedPacket(packet, segment_size, tail)
        )
        self.ip6_stats["sent"] += 1

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

    def emit_transport(self, protocol: int) -> Callable[..., None]:
        """Return ``emit(source, destination, segment, segment_size=COMPLETE, tail=())``."""
        send_ip = self.send_ip

        def emit(
            source: bytes,
            destination: bytes,
            segment: bytes,
            segment_size: int = COMPLETE,
            tail: tuple[bytes | memoryview, ...] = (),
        ) -> None:
            send_ip(source, destination, protocol, segment, segment_size=segment_size, tail=tail)

        return emit

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
        if header.source == _UNSPECIFIED6 or header.source[0] == 0xFF:
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
        if source not in self.routes.local_addresses:
            try:
                source = self.routes.route(header.source).source
            except OSError:
                return
        message = icmpv6.build_error(icmp_type, code, packet, source, header.source, body=body)
        self.send_ip(source, header.source, icmpv6.PROTO_ICMPV6, message)
        self.icmp6_stats["errors_sent"] += 1

    # -- TCP --------------------------------------------------------------------

    def _tso_payload(self) -> int:
        """Most TCP payload per super-segment the link cuts for us (0: no TSO).

        Leaves room for the larger (IPv6, RFC 8200 §3) IP header and the largest
        TCP header (RFC 9293 §3.1), so one figure serves both families.
        """
        if self.max_packet_size <= self.mtu:
            return 0
        return self.max_packet_size - ipv6.IPV6_HEADER_LENGTH - 60

    def _mss_for(self, remote: bytes) -> int:
        """MSS to advertise towards ``remote``: the path MTU less IP and TCP headers (RFC 6691)."""
        return self.pmtu.get(remote, self._now) - (40 if len(remote) == 4 else 60)

    def _receive_tcp(
        self, header: IpHeader, payload: memoryview, packet: memoryview, now: float
    ) -> None:
        # RFC 1122 §4.2.3.10: segments to broadcast or multicast addresses are discarded.
        if header.destination not in self.routes.local_addresses:
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

    # -- statistics -----------------------------------------------------------------

    def statistics(self) -> dict[str, dict[str, int]]:
        """Counters per layer, like ``netstat -s`` (``ip6``/``icmp6`` for IPv6)."""
        result = {"ip": dict(self.ip_stats), "icmp": dict(self.icmp_stats)}
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
        return result

    # -- ICMP ---------------------------------------------------------------------

    def _receive_icmp(
        self, header: IpHeader, payload: memoryview, packet: memoryview, now: float
    ) -> None:
        assert isinstance(header, ipv4.IPv4Header)
        stats = self.icmp_stats
        stats["received"] += 1
        try:
            message = icmpv4.parse_icmpv4(payload, verify_checksum=self._verify_transport)
        except WireError as error:
            stats["dropped_" + error.reason] += 1
            return
        if message.type == icmpv4.TYPE_ECHO_REQUEST:
            self._answer_echo(header, message)
        elif message.type == icmpv4.TYPE_ECHO_REPLY:
            stats["echo_replies_received"] += 1
            self._events.append(EchoReplyReceived(
                header.source, message.identifier, message.sequence, message.payload, header.ttl
            ))  # fmt: skip
        elif message.is_error:
            self._receive_icmp_error(header, message, now)
        else:
            stats["dropped_unhandled_type"] += 1

    def _answer_echo(self, header: ipv4.IPv4Header, message: icmpv4.IcmpMessage) -> None:
        stats = self.icmp_stats
        stats["echo_requests_received"] += 1
        # Linux default icmp_echo_ignore_broadcasts=1 (RFC 1122 §3.2.2.6 allows it).
        if not self.config.ip.answer_echo or header.destination not in self.routes.local_addresses:
            stats["echo_requests_ignored"] += 1
            return
        reply = icmpv4.build_echo(
            reply=True, identifier=message.identifier, sequence=message.sequence,
            payload=message.payload,
        )  # fmt: skip
        self.send_ip(header.destination, header.source, ipv4.PROTO_ICMP, reply)
        stats["echo_replies_sent"] += 1

    def _receive_icmp_error(
        self, header: ipv4.IPv4Header, message: icmpv4.IcmpMessage, now: float
    ) -> None:
        stats = self.icmp_stats
        stats["errors_received"] += 1
        quote = message.payload
        if len(quote) < _MIN_QUOTE:
            stats["dropped_short_quote"] += 1
            return
        quoted = self._parse_quoted_header(quote)
        if quoted is None:
            stats["dropped_bad_quote"] += 1
            return
        quoted_payload = memoryview(quote)[quoted.header_length :]
        if quoted.source not in self.routes.local_addresses:
            stats["dropped_not_ours"] += 1  # RFC 5927 §4.1: the quote must be of our packet
            return
        error = icmpv4_error_to_oserror(message.type, message.code)
        if (
            message.type == icmpv4.TYPE_DESTINATION_UNREACHABLE
            and message.code == icmpv4.CODE_FRAGMENTATION_NEEDED
        ):
            # RFC 1191 §4: the next-hop MTU is the low 16 bits of the unused word.
            self._path_mtu_report(
                quoted, quoted_payload, message.sequence, quoted.total_length, now
            )
        self._deliver_error(
            quoted.source, quoted.destination, quoted.protocol, quoted_payload,
            error=error, reporter=header.source, now=now,
        )  # fmt: skip

    def _deliver_error(
        self, source: bytes, destination: bytes, protocol: int, quoted: memoryview,
        *, error: OSError, reporter: bytes, now: float,
    ) -> None:  # fmt: skip
        """Hand an error about our packet to whoever sent it: a ping, UDP or TCP."""
        echo = icmpv4.TYPE_ECHO_REQUEST if len(source) == 4 else icmpv6.TYPE_ECHO_REQUEST
        if protocol in (ipv4.PROTO_ICMP, icmpv6.PROTO_ICMPV6):
            if len(quoted) >= 8 and quoted[0] == echo:
                identifier = int.from_bytes(quoted[4:6], "big")
                sequence = int.from_bytes(quoted[6:8], "big")
                self._events.append(
                    EchoUnreachable(destination, identifier, sequence, error, reporter)
                )
            return
        handler = self._error_handlers.get(protocol)
        if handler is None:
            stats = self.icmp_stats if len(source) == 4 else self.icmp6_stats
            stats["dropped_no_owner"] += 1
            return
        handler(source, destination, quoted, error, now)

    def report_unreachable(self, packet: bytes, now: float) -> None:
        """One of our packets could not be delivered on the link (no neighbour answered).

        Its sender hears ``EHOSTUNREACH``, as from Linux when ARP or neighbour
        discovery fails (``arp_error_report`` sends itself a host unreachable).
        """
        error = OSError(errno.EHOSTUNREACH, "No route to host: the neighbour did not answer")
        if packet[0] >> 4 == 4:
            quoted4 = self._parse_quoted_header(packet)
            if quoted4 is None:
                return
            payload = memoryview(packet)[quoted4.header_length :]
            self._deliver_error(
                quoted4.source, quoted4.destination, quoted4.protocol, payload,
                error=error, reporter=quoted4.source, now=now,
            )  # fmt: skip
            return
        if len(packet) < ipv6.IPV6_HEADER_LENGTH + 8:
            return
        walk = walk_extension_headers(packet[6], packet[ipv6.IPV6_HEADER_LENGTH :])
        if not isinstance(walk, ExtensionWalk):
            return
        payload = memoryview(packet)[ipv6.IPV6_HEADER_LENGTH + walk.offset :]
        source = bytes(packet[8:24])
        self._deliver_error(
            source, bytes(packet[24:40]), walk.protocol, payload,
            error=error, reporter=source, now=now,
        )  # fmt: skip

    def _path_mtu_report(
        self, quoted: IpHeader, quoted_payload: memoryview, mtu: int, quoted_length: int,
        now: float,
    ) -> None:  # fmt: skip
        """Lower the path MTU towards the quoted destination (RFC 1191 §6.3, RFC 8201 §4).

        RFC 5927 §4.1 validation: the quote is of our packet (checked by the
        caller) and, for IPv4, the reported MTU is below the quoted packet's
        length (a router cannot have refused a packet smaller than its MTU).
        """
        stats = self.pmtu.stats
        if len(quoted.destination) == 4:
            if mtu == 0:
                mtu = plateau_below(quoted_length)  # RFC 1191 §5: pre-RFC 1191 routers
            elif quoted_length and mtu >= quoted_length:
                stats["pmtu_reports_implausible"] += 1
                return
        lowered = self.pmtu.lower(quoted.destination, mtu, now)
        if lowered is None:
            return
        protocol = quoted.protocol if isinstance(quoted, ipv4.IPv4Header) else quoted.next_header
        handler = self._pmtu_handlers.get(protocol)
        if handler is not None:
            handler(quoted.source, quoted.destination, quoted_payload, lowered, now)

    @staticmethod
    def _parse_quoted_header(quote: bytes) -> ipv4.IPv4Header | None:
        """Parse the IPv4 header quoted in an ICMP error.

        Quotes are usually cut short of the datagram's total length, so only
        the header and the 8 bytes after it (RFC 792) are required.
        """
        header_length = (quote[0] & 0x0F) * 4
        if quote[0] >> 4 != 4 or header_length < ipv4.IPV4_HEADER_LENGTH:
            return None
        if len(quote) < header_length + 8:
            return None
        return ipv4.IPv4Header(
            source=bytes(quote[12:16]), destination=bytes(quote[16:20]), protocol=quote[9],
            header_length=header_length, total_length=int.from_bytes(quote[2:4], "big"),
        )  # fmt: skip

    # -- ICMPv6 (RFC 4443) ----------------------------------------------------------

    def _receive_icmpv6(
        self, header: IpHeader, payload: memoryview, packet: memoryview, now: float
    ) -> None:
        assert isinstance(header, ipv6.IPv6Header)
        stats = self.icmp6_stats
        stats["received"] += 1
        try:
            message = icmpv6.parse_icmpv6(
                payload, header.source, header.destination, verify_checksum=self._verify_transport
            )
        except WireError as error:
            stats["dropped_" + error.reason] += 1
            return
        if message.type == icmpv6.TYPE_ECHO_REQUEST:
            self._answer_echo6(header, message)
        elif message.type == icmpv6.TYPE_ECHO_REPLY:
            stats["echo_replies_received"] += 1
            self._events.append(EchoReplyReceived(
                header.source, message.identifier, message.sequence, message.payload,
                header.hop_limit,
            ))  # fmt: skip
        elif message.is_error:
            self._receive_icmpv6_error(header, message, now)
        else:
            handler = self._icmpv6_handlers.get(message.type)
            if handler is None:
                stats["dropped_unhandled_type"] += 1
            else:
                handler(header, message, now)

    def register_icmpv6(
        self, icmp_type: int,
        handler: Callable[[ipv6.IPv6Header, icmpv6.Icmpv6Message, float], None],
    ) -> None:  # fmt: skip
        """Hand one ICMPv6 informational type (e.g. neighbour discovery) to ``handler``."""
        self._icmpv6_handlers[icmp_type] = handler

    def _answer_echo6(self, header: ipv6.IPv6Header, message: icmpv6.Icmpv6Message) -> None:
        stats = self.icmp6_stats
        stats["echo_requests_received"] += 1
        if not self.config.ip.answer_echo:
            stats["echo_requests_ignored"] += 1
            return
        source = header.destination
        if source not in self.routes.local_addresses:
            # To all-nodes: Linux answers (icmp_echo_ignore_multicast=0) from a unicast address.
            try:
                source = self.routes.route(header.source).source
            except OSError:
                stats["echo_requests_ignored"] += 1
                return
        reply = icmpv6.build_echo(
            source, header.source, reply=True, identifier=message.identifier,
            sequence=message.sequence, payload=message.payload,
        )  # fmt: skip
        self.send_ip(source, header.source, icmpv6.PROTO_ICMPV6, reply)
        stats["echo_replies_sent"] += 1

    def _receive_icmpv6_error(
        self, header: ipv6.IPv6Header, message: icmpv6.Icmpv6Message, now: float
    ) -> None:
        stats = self.icmp6_stats
        stats["errors_received"] += 1
        quote = memoryview(message.payload)
        if len(quote) < ipv6.IPV6_HEADER_LENGTH + 8 or quote[0] >> 4 != 6:
            stats["dropped_short_quote" if len(quote) < 48 else "dropped_bad_quote"] += 1
            return
        quoted_source = bytes(quote[8:24])
        quoted_destination = bytes(quote[24:40])
        if quoted_source not in self.routes.local_addresses:
            stats["dropped_not_ours"] += 1  # RFC 5927 §4.1
            return
        walk = walk_extension_headers(quote[6], quote[ipv6.IPV6_HEADER_LENGTH :])
        if not isinstance(walk, ExtensionWalk) or (walk.fragment and walk.fragment.offset):
            stats["dropped_bad_quote"] += 1
            return
        quoted = ipv6.IPv6Header(quoted_source, quoted_destination, walk.protocol)
        quoted_payload = quote[ipv6.IPV6_HEADER_LENGTH + walk.offset :]
        error = icmpv6_error_to_oserror(message.type, message.code)
        if message.type == icmpv6.TYPE_PACKET_TOO_BIG:
            self._path_mtu_report(quoted, quoted_payload, message.mtu, 0, now)
        self._deliver_error(
            quoted_source, quoted_destination, walk.protocol, quoted_payload,
            error=error, reporter=header.source, now=now,
        )  # fmt: skip

    def verify_transport_checksum(
        self, header: IpHeader, segment: memoryview, protocol: int
    ) -> bool:
        """True if ``segment``'s checksum over the pseudo-header is right (or not checked)."""
        if not self._verify_transport:
            return True
        pseudo = pseudo_header_sum(header.source, header.destination, protocol, len(segment))
        return internet_checksum(segment, pseudo) == 0


def _is_icmpv6_error(header: ipv6.IPv6Header, packet: memoryview) -> bool:
    """Whether ``packet`` is an ICMPv6 error (RFC 4443 §2.4 (e.1): never answered)."""
    if header.next_header != icmpv6.PROTO_ICMPV6:
        return False
    return len(packet) > ipv6.IPV6_HEADER_LENGTH and packet[ipv6.IPV6_HEADER_LENGTH] < 128


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


_UNSPECIFIED6: Final = bytes(16)
_LOOPBACK6: Final = bytes(15) + b"\x01"

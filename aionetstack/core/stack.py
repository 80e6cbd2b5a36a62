"""``StackCore``: the whole stack as one sans-I/O machine.

Five verbs (DESIGN.md §2): ``receive_packet``, ``packets_to_send``,
``get_timer``, ``handle_timer``, ``next_event``. It validates and demultiplexes
what the link hands over, answers pings, maps ICMP errors to whoever caused
them, and wraps what the transports emit in IP headers. A malformed or
unwanted packet never raises: it is dropped and counted under a reason.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, deque
from collections.abc import Callable

from ..config import StackConfig
from ..wire import icmpv4, ipv4
from ..wire.checksum import internet_checksum, pseudo_header_sum
from ..wire.error import WireError
from .events import EchoReplyReceived, EchoUnreachable
from .icmp import IcmpRateLimiter, icmpv4_error_to_oserror
from .ip import Interface, RoutingTable, parse_interface
from .output import COMPLETE, OffloadedPacket
from .randomness import RandomSource
from .tcp import TcpLayer
from .udp import UdpLayer

__all__ = ["COMPLETE", "OffloadedPacket", "StackCore"]

#: Handler for one transport protocol: (header, payload, raw packet, now).
_TransportHandler = Callable[[ipv4.IPv4Header, memoryview, memoryview, float], None]
#: Quoted datagram in an ICMP error: IP header plus at least 8 bytes (RFC 792).
_MIN_QUOTE = ipv4.IPV4_HEADER_LENGTH + 8
#: RFC 1122 §3.2.1.3 / RFC 6890: 0/8 "this network", 127/8 loopback, 224/4 multicast
#: and 240/4 reserved are never the source of a packet we accept.
_MARTIAN_FIRST_OCTETS = frozenset([0, 127, *range(224, 256)])


class StackCore:
    """A host's IPv4 stack with ICMP (and TCP/UDP layers plugged in).

    ``addresses`` are interface strings such as ``"198.18.0.2/24"``; ``gateway``
    is the default route's next hop (on one of those networks) or ``None``.
    ``mtu`` bounds what we send. ``rng`` supplies IP identifiers, ISNs, ports.
    """

    def __init__(
        self,
        addresses: list[str],
        *,
        gateway: str | None = None,
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
        gateways = [ipaddress.ip_address(gateway).packed] if gateway else []
        self.routes = RoutingTable(interfaces, gateways)
        self._accepted_destinations = self.routes.local_addresses | self.routes.broadcast_addresses
        # RFC 1122 §3.2.1.3: our own addresses and broadcasts are never valid sources.
        self._refused_sources = self.routes.local_addresses | self.routes.broadcast_addresses
        self.rng = rng
        self._verify_transport = (
            self.config.ip.verify_transport_checksum and not receive_checksums_partial
        )
        self._outbox: list[bytes | OffloadedPacket] = []
        self._events: deque[object] = deque()
        self._identification = rng.getrandbits(16)
        self._icmp_limiter = IcmpRateLimiter(
            self.config.ip.icmp_error_rate, self.config.ip.icmp_error_burst
        )
        self.ip_stats: Counter[str] = Counter()
        self.icmp_stats: Counter[str] = Counter()
        self._transports: dict[int, _TransportHandler] = {ipv4.PROTO_ICMP: self._receive_icmp}
        self._error_handlers: dict[int, Callable[[bytes, bytes, memoryview, OSError, float], None]]
        self._error_handlers = {}
        self._flushers: list[Callable[[float], None]] = []
        self._timers: list[tuple[Callable[[], float | None], Callable[[float], None]]] = []
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
            ipv4.PROTO_TCP, self._receive_tcp, icmp_error=self.tcp.icmp_error,
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
        flush: Callable[[float], None] | None = None,
        get_timer: Callable[[], float | None] | None = None,
        handle_timer: Callable[[float], None] | None = None,
        statistics: tuple[str, Callable[[], dict[str, int]]] | None = None,
    ) -> None:
        """Attach a transport layer (UDP, TCP) under its IP protocol number.

        ``icmp_error(src, dst, quoted_transport_bytes, error, now)`` receives ICMP
        errors quoting its packets; ``flush`` runs before output is collected;
        ``get_timer``/``handle_timer`` join the stack's single deadline.
        """
        self._transports[protocol] = receive
        if icmp_error is not None:
            self._error_handlers[protocol] = icmp_error
        if flush is not None:
            self._flushers.append(flush)
        if get_timer is not None and handle_timer is not None:
            self._timers.append((get_timer, handle_timer))
        if statistics is not None:
            self._statistics[statistics[0]] = statistics[1]

    @property
    def events(self) -> deque[object]:
        """The shared event queue transports append to."""
        return self._events

    @property
    def verify_transport_checksums(self) -> bool:
        """Whether transports must verify checksums of what they receive."""
        return self._verify_transport

    # -- the five verbs -------------------------------------------------------------

    def receive_packet(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Take one packet from the link. Never raises on bad input."""
        stats = self.ip_stats
        stats["received"] += 1
        if not data:
            stats["dropped_truncated"] += 1
            return
        version = data[0] >> 4
        if version != 4:
            stats["dropped_unsupported_version" if version == 6 else "dropped_bad_version"] += 1
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
        if header.is_fragment:
            stats["dropped_fragment"] += 1  # reassembly (RFC 791 §3.2) is not implemented yet
            return
        handler = self._transports.get(header.protocol)
        if handler is None:
            stats["dropped_unknown_protocol"] += 1
            # RFC 1122 §3.2.2.1: a host SHOULD answer protocol unreachable.
            self.send_icmp_error(
                icmpv4.TYPE_DESTINATION_UNREACHABLE, icmpv4.CODE_PROTOCOL_UNREACHABLE,
                header, memoryview(data), now,
            )  # fmt: skip
            return
        stats["delivered"] += 1
        handler(header, payload, memoryview(data), now)

    def packets_to_send(self, now: float) -> list[bytes | OffloadedPacket]:
        """Return (and forget) every packet ready for the link.

        Items are complete packets (``bytes``) or, on links with
        ``transmit_offload``, :class:`OffloadedPacket` for ``Link.send_offloaded``.
        """
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
        for _, handle in self._timers:
            handle(now)

    def next_event(self) -> object | None:
        """Pop the oldest pending event, or ``None``."""
        return self._events.popleft() if self._events else None

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
    ) -> None:
        """Queue one IPv4 packet (DF set, as Linux with PMTU discovery).

        ``segment_size`` other than :data:`COMPLETE` marks a TCP/UDP payload
        whose checksum field holds only the pseudo-header sum, for a link with
        ``transmit_offload`` to complete; with a value > 0 a TCP packet of up
        to ``max_packet_size`` is cut by the device into segments of that size.
        Raises ``ValueError`` when the packet is too long for the link.
        """
        length = ipv4.IPV4_HEADER_LENGTH + len(payload)
        limit = self.mtu if segment_size == COMPLETE else self.max_packet_size
        if length > limit:
            raise ValueError(f"packet of {length} bytes exceeds the link's limit of {limit}")
        self._identification = identification = (self._identification + 1) & 0xFFFF
        header = ipv4.simple_ipv4_header(
            source, destination, protocol, len(payload),
            ttl=self._default_ttl if ttl is None else ttl, identification=identification,
        )  # fmt: skip
        packet = b"".join((header, payload))
        self._outbox.append(
            packet if segment_size == COMPLETE else OffloadedPacket(packet, segment_size)
        )
        self.ip_stats["sent"] += 1

    def emit_transport(self, protocol: int) -> Callable[..., None]:
        """Return ``emit(source, destination, segment, segment_size=COMPLETE)`` for a transport."""
        send_ip = self.send_ip

        def emit(
            source: bytes, destination: bytes, segment: bytes, segment_size: int = COMPLETE
        ) -> None:
            send_ip(source, destination, protocol, segment, segment_size=segment_size)

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
        """Send an ICMP echo request (RFC 792). Raises ``OSError(ENETUNREACH)`` without a route."""
        route = self.routes.route(destination)
        message = icmpv4.build_echo(
            reply=False, identifier=identifier, sequence=sequence, payload=payload
        )
        self.send_ip(route.source, destination, ipv4.PROTO_ICMP, message, ttl=ttl)
        self.icmp_stats["echo_requests_sent"] += 1

    def send_icmp_error(
        self, icmp_type: int, code: int, header: ipv4.IPv4Header, packet: memoryview, now: float
    ) -> None:
        """Answer ``packet`` with an ICMP error, within RFC 1122 §3.2.2's limits."""
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

    # -- TCP --------------------------------------------------------------------

    def _tso_payload(self) -> int:
        """Most TCP payload per super-segment the link cuts for us (0: no TSO).

        Leaves room for the largest IPv4 and TCP headers (RFC 791 §3.1, RFC 9293 §3.1).
        """
        if self.max_packet_size <= self.mtu:
            return 0
        return self.max_packet_size - ipv4.IPV4_HEADER_LENGTH - 60

    def _mss_for(self, remote: bytes) -> int:
        """MSS to advertise towards ``remote``: the MTU less IP and TCP headers (RFC 6691)."""
        return self.mtu - (40 if len(remote) == 4 else 60)

    def _receive_tcp(
        self, header: ipv4.IPv4Header, payload: memoryview, packet: memoryview, now: float
    ) -> None:
        # RFC 1122 §4.2.3.10: segments to broadcast or multicast addresses are discarded.
        if header.destination not in self.routes.local_addresses:
            self.tcp.count("dropped_broadcast")
            return
        if not self.verify_transport_checksum(header, payload, ipv4.PROTO_TCP):
            self.tcp.count("dropped_bad_checksum")
            return
        self.tcp.receive_segment(header.source, header.destination, payload, now)

    # -- statistics -----------------------------------------------------------------

    def statistics(self) -> dict[str, dict[str, int]]:
        """Counters per layer, like ``netstat -s``."""
        result = {"ip": dict(self.ip_stats), "icmp": dict(self.icmp_stats)}
        for name, source in self._statistics.items():
            result[name] = dict(source())
        return result

    # -- ICMP ---------------------------------------------------------------------

    def _receive_icmp(
        self, header: ipv4.IPv4Header, payload: memoryview, packet: memoryview, now: float
    ) -> None:
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
        if quoted.protocol == ipv4.PROTO_ICMP:
            if len(quoted_payload) >= 8 and quoted_payload[0] == icmpv4.TYPE_ECHO_REQUEST:
                identifier = int.from_bytes(quoted_payload[4:6], "big")
                sequence = int.from_bytes(quoted_payload[6:8], "big")
                self._events.append(
                    EchoUnreachable(quoted.destination, identifier, sequence, error, header.source)
                )
            return
        handler = self._error_handlers.get(quoted.protocol)
        if handler is None:
            stats["dropped_no_owner"] += 1
            return
        handler(quoted.source, quoted.destination, quoted_payload, error, now)

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
            header_length=header_length,
        )  # fmt: skip

    def verify_transport_checksum(
        self, header: ipv4.IPv4Header, segment: memoryview, protocol: int
    ) -> bool:
        """True if ``segment``'s checksum over the pseudo-header is right (or not checked)."""
        if not self._verify_transport:
            return True
        pseudo = pseudo_header_sum(header.source, header.destination, protocol, len(segment))
        return internet_checksum(segment, pseudo) == 0

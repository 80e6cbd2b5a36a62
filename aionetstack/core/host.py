"""The state of a :class:`~.stack.StackCore` and its construction: addresses and
routes, the transports plugged in, the event and output queues, the ICMP rate
limiter, the reassemblers and the path MTU cache.

``StackCore`` builds on this with its parts, one concern per module, each a subclass of
the one before it (one line of classes: what mypyc compiles, ``aionetstack/compiled.py``):
``HostState`` <- ``ip_fragments`` (reassembly in, fragmentation out) <- ``ip_output``
(IP headers on what leaves, ICMP errors we send) <- ``icmp_input`` (echo and the ICMP
errors we receive, both families) <- ``stack.StackCore`` (validating and demultiplexing
what arrives). This class declares the methods one part calls that a part above it
defines: each raises ``NotImplementedError`` here and the part that owns it overrides it.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

from ..config import StackConfig
from ..wire import icmpv6, ipv4, ipv6
from .counts import Counts, report
from .fragments import IPV4_TIMEOUT, IPV6_TIMEOUT, Reassembler
from .icmp import IcmpRateLimiter
from .intercept import Interceptor
from .ip import ALL_NODES, Interface, RouteEntry, RoutingTable, parse_interface
from .output import COMPLETE, OffloadedPacket, SegmentOutput
from .pmtu import PathMtuCache
from .randomness import RandomSource
from .tcp import TcpLayer
from .timer_generation import TIMER_ANSWER_CHECK, TimerGeneration
from .udp import UdpLayer

#: The header a transport handler gets: IPv4's or IPv6's (both have ``source``/``destination``).
IpHeader = ipv4.IPv4Header | ipv6.IPv6Header
#: Handler for one transport protocol: (header, payload, raw packet, now).
TransportHandler = Callable[[IpHeader, memoryview, memoryview, float], None]
#: The IPv6 unspecified address, :: (RFC 4291 §2.5.2).
UNSPECIFIED6: Final = bytes(16)


class HostState:
    """The fields of :class:`~.stack.StackCore` and its construction (see the module docstring)."""

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
        self._verify_header = self.config.ip.verify_header_checksum
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
        self.ip_stats = Counts()
        #: The IPv4 counters every packet bumps, kept as ints (a ``Counts`` item costs a
        #: generic lookup and store per packet): ``received``, ``delivered`` and ``sent``
        #: of :meth:`ip_counts`, which adds them to ``ip_stats``'s.
        self.ip_received = 0
        self.ip_delivered = 0
        self.ip_sent = 0
        self.icmp_stats = Counts()
        self.ip6_stats = Counts()
        self.icmp6_stats = Counts()
        self._transports: dict[int, TransportHandler] = {ipv4.PROTO_ICMP: self._receive_icmp}
        self._transports6: dict[int, TransportHandler] = {icmpv6.PROTO_ICMPV6: self._receive_icmpv6}
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
        #: Bumped by every timer source that may have set an earlier deadline; get_timer's
        #: last answer stands while it is unchanged (core/timer_generation.py).
        self.timer_generation = TimerGeneration()
        self._timer_answer: float | None = None
        self._timer_answered_at = -1  # the generation of that answer; -1: none to reuse
        #: Tests: ask the layers every time, count late answers (``TimerAnswerCheck``).
        self._check_timer_answers = TIMER_ANSWER_CHECK.enabled
        self._statistics: dict[str, Callable[[], dict[str, int]]] = {}
        self.udp = UdpLayer(self)
        self.register_transport(
            ipv4.PROTO_UDP, self.udp.receive, icmp_error=self.udp.icmp_error,
            statistics=("udp", self.udp.statistics),
        )  # fmt: skip
        self.tcp = TcpLayer(
            self.config.tcp, rng, output=self.transport_output(ipv4.PROTO_TCP),
            events=self._events, ephemeral_ports=self.config.ephemeral_ports,
            mss_for=self._mss_for, partial_checksums=transmit_offload,
            max_segment_payload=self._tso_payload(), timer_generation=self.timer_generation,
        )  # fmt: skip
        self.register_transport(
            ipv4.PROTO_TCP, self._receive_tcp, icmp_error=self._tcp_icmp_error,
            path_mtu=self.tcp.path_mtu_changed,
            flush=self.tcp.flush, get_timer=self.tcp.get_timer, handle_timer=self.tcp.handle_timer,
            statistics=("tcp", self.tcp.statistics),
        )  # fmt: skip
        #: Intercept mode (core/intercept.py): flows to addresses that are not ours.
        self.intercept = Interceptor(
            self.config.intercept, events=self._events, send_ip=self.send_ip, tcp=self.tcp,
            own_addresses=self._accepted_destinations | self._accepted6,
            timer_generation=self.timer_generation,
        )  # fmt: skip
        self.tcp.interceptor = self.udp.interceptor = self.intercept
        self._timers.append((self.intercept.get_timer, self.intercept.handle_timer))

    def ip_counts(self) -> dict[str, int]:
        """The IPv4 counters, ``ip_stats`` with the ones kept as ints (``received``,
        ``delivered``, ``sent``: each named once it is not 0)."""
        return report(
            self.ip_stats,
            (("received", self.ip_received), ("delivered", self.ip_delivered),
             ("sent", self.ip_sent)),
        )  # fmt: skip

    def add_statistics(self, name: str, source: Callable[[], dict[str, int]]) -> None:
        """Show a layer's counters under ``name`` in :meth:`statistics` (e.g. ``ethernet``)."""
        self._statistics[name] = source

    @property
    def events(self) -> deque[object]:
        """The shared event queue transports append to."""
        return self._events

    @property
    def verify_transport_checksums(self) -> bool:
        """Whether transports must verify checksums of what they receive.

        Software GRO (core/gro.py) turns it off while it hands over a segment
        whose pieces it verified itself.
        """
        return self._verify_transport

    @verify_transport_checksums.setter
    def verify_transport_checksums(self, value: bool) -> None:
        self._verify_transport = value

    def route_entries(self) -> list[RouteEntry]:
        """The routing table as ``ip route`` shows it (connected, static, defaults)."""
        return self.routes.entries()

    def path_mtu(self, destination: bytes) -> int:
        """The path MTU towards ``destination`` now (the link MTU unless an ICMP lowered it)."""
        return self.pmtu.get(destination, self._now)

    def _expire_fragments(self, now: float) -> None:
        raise NotImplementedError

    def _mss_for(self, remote: bytes) -> int:
        raise NotImplementedError

    def _reassembly_timer(self) -> float | None:
        raise NotImplementedError

    def _receive_icmp(
        self, header: IpHeader, payload: memoryview, packet: memoryview, now: float
    ) -> None:
        raise NotImplementedError

    def _receive_icmpv6(
        self, header: IpHeader, payload: memoryview, packet: memoryview, now: float
    ) -> None:
        raise NotImplementedError

    def _receive_tcp(
        self, header: IpHeader, payload: memoryview, packet: memoryview, now: float
    ) -> None:
        raise NotImplementedError

    def _send_icmpv6_error(
        self,
        icmp_type: int,
        code: int,
        header: ipv6.IPv6Header,
        packet: memoryview,
        now: float,
        *,
        body: int = 0,
    ) -> None:
        raise NotImplementedError

    def _tcp_icmp_error(
        self, source: bytes, destination: bytes, quoted: memoryview, error: OSError, now: float
    ) -> None:
        raise NotImplementedError

    def _tso_payload(self) -> int:
        raise NotImplementedError

    def transport_output(self, protocol: int) -> SegmentOutput:
        raise NotImplementedError

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
        raise NotImplementedError

    def send_icmp_error(
        self, icmp_type: int, code: int, header: IpHeader, packet: memoryview, now: float
    ) -> None:
        raise NotImplementedError

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
        raise NotImplementedError

"""UDP (RFC 768): endpoints, demultiplexing, port unreachable, ICMP errors."""

from __future__ import annotations

import errno
import ipaddress
from collections import deque
from typing import Protocol

from ..config import StackConfig
from ..wire import icmpv4, ipv4, ipv6, udp
from ..wire.error import WireError
from .counts import Counts
from .events import UdpDatagramReceived, UdpErrorReceived
from .ip import RoutingTable
from .output import COMPLETE
from .ports import choose_ephemeral_port
from .randomness import RandomSource

__all__ = ["UdpEndpoint", "UdpHost", "UdpInterceptHook", "UdpLayer"]


class UdpHost(Protocol):
    """What UDP needs from the IP layer below it (``StackCore`` satisfies it)."""

    @property
    def routes(self) -> RoutingTable: ...
    @property
    def config(self) -> StackConfig: ...
    @property
    def rng(self) -> RandomSource: ...
    @property
    def mtu(self) -> int: ...
    @property
    def transmit_offload(self) -> bool: ...
    @property
    def verify_transport_checksums(self) -> bool: ...
    @property
    def events(self) -> deque[object]: ...

    def path_mtu(self, destination: bytes) -> int: ...

    def send_ip(
        self, source: bytes, destination: bytes, protocol: int,
        payload: bytes | bytearray | memoryview, *, ttl: int | None = None,
        segment_size: int = COMPLETE,
    ) -> None: ...  # fmt: skip

    def send_icmp_error(
        self, icmp_type: int, code: int, header: ipv4.IPv4Header | ipv6.IPv6Header,
        packet: memoryview, now: float,
    ) -> None: ...  # fmt: skip


#: RFC 768 / RFC 791 §3.1: the largest UDP payload in an IPv4 datagram (65,535 - 20 - 8);
#: IPv6's payload length field leaves 65,535 - 8 (RFC 8200 §3, no jumbograms).
_MAX_PAYLOAD = {4: 0xFFFF - ipv4.IPV4_HEADER_LENGTH - udp.UDP_HEADER_LENGTH,
                16: 0xFFFF - udp.UDP_HEADER_LENGTH}  # fmt: skip
_IP_HEADER = {4: ipv4.IPV4_HEADER_LENGTH, 16: ipv6.IPV6_HEADER_LENGTH}


class UdpEndpoint:
    """A bound UDP port, optionally connected to one remote address and port.

    ``user_data`` is the driver's slot (its transport).
    """

    __slots__ = ("_layer", "closed", "local_address", "local_port", "remote", "user_data")

    def __init__(
        self, layer: UdpLayer, local_address: bytes | None, local_port: int,
        remote: tuple[bytes, int] | None,
    ) -> None:  # fmt: skip
        self._layer = layer
        self.local_address = local_address
        self.local_port = local_port
        self.remote = remote
        self.user_data: object = None
        self.closed = False

    def sendto(
        self, data: bytes | bytearray | memoryview, address: tuple[bytes, int] | None = None
    ) -> None:
        """Send one datagram to ``address`` (or the connected remote when ``None``).

        A datagram longer than the path MTU goes out in IP fragments (as Linux
        does by default). Raises ``OSError(EMSGSIZE)`` for one longer than an
        IP datagram holds, ``OSError(ENETUNREACH)`` without a route,
        ``OSError(EAFNOSUPPORT)`` towards the other family than the bound
        address, ``ValueError`` for a bad port.
        """
        if self.closed:
            raise OSError(errno.EBADF, "the UDP endpoint is closed")
        target = address if address is not None else self.remote
        if target is None:
            raise OSError(errno.EDESTADDRREQ, "no destination: the endpoint is not connected")
        if self.remote is not None and address is not None and address != self.remote:
            raise OSError(errno.EISCONN, "a connected endpoint sends only to its remote address")
        self._layer.send(self, bytes(data), target[0], target[1])

    def close(self) -> None:
        """Unbind the port. Idempotent."""
        if not self.closed:
            self.closed = True
            self._layer.unbind(self)


class UdpInterceptHook(Protocol):
    """Intercept mode's part in demultiplexing (``core.intercept.Interceptor``)."""

    def covers(self, address: bytes) -> bool:
        """Whether ``address`` is intercepted (wildcard endpoints do not hear it)."""

    def udp_datagram(  # noqa: PLR0917
        self, source: bytes, destination: bytes, sport: int, dport: int,
        data: bytes | memoryview, now: float,
    ) -> bool:  # fmt: skip
        """A datagram to an intercepted address: True when intercept took it."""


class UdpLayer:
    """All UDP endpoints of one stack."""

    __slots__ = ("_by_address", "_core", "_wildcard", "interceptor", "stats")

    def __init__(self, core: UdpHost) -> None:
        self._core = core
        self._by_address: dict[tuple[bytes, int], UdpEndpoint] = {}
        self._wildcard: dict[int, UdpEndpoint] = {}
        self.stats = Counts()
        #: Intercept mode (``core/intercept.py``): datagrams no endpoint of its address owns.
        self.interceptor: UdpInterceptHook | None = None

    def statistics(self) -> Counts:
        """The UDP counters (``StackCore.statistics()['udp']``)."""
        return self.stats

    # -- binding ------------------------------------------------------------------

    def _port_in_use(self, port: int) -> bool:
        return port in self._wildcard or any(p == port for _, p in self._by_address)

    def bind(
        self, local_address: bytes | None = None, local_port: int = 0,
        remote: tuple[bytes, int] | None = None,
    ) -> UdpEndpoint:  # fmt: skip
        """Bind a port (0 picks an ephemeral one, RFC 6056). ``OSError(EADDRINUSE)`` if taken."""
        if not 0 <= local_port <= 0xFFFF:
            raise ValueError(f"port {local_port} is not in 0..65535")
        if local_address is not None and local_address not in self._core.routes.local_addresses:
            text = ipaddress.ip_address(local_address)
            raise OSError(errno.EADDRNOTAVAIL, f"{text} is not an address of this stack")
        if remote is not None and not 1 <= remote[1] <= 0xFFFF:
            raise ValueError(f"remote port {remote[1]} is not in 1..65535")
        if local_port == 0:
            config = self._core.config
            local_port = choose_ephemeral_port(
                self._core.rng, config.ephemeral_ports, self._port_in_use
            )
        elif self._conflicts(local_address, local_port):
            raise OSError(errno.EADDRINUSE, f"UDP port {local_port} is already in use")
        endpoint = UdpEndpoint(self, local_address, local_port, remote)
        if local_address is None:
            self._wildcard[local_port] = endpoint
        else:
            self._by_address[(local_address, local_port)] = endpoint
        return endpoint

    def _conflicts(self, local_address: bytes | None, port: int) -> bool:
        if port in self._wildcard:
            return True
        if local_address is None:
            return any(p == port for _, p in self._by_address)
        return (local_address, port) in self._by_address

    def unbind(self, endpoint: UdpEndpoint) -> None:
        if endpoint.local_address is None:
            if self._wildcard.get(endpoint.local_port) is endpoint:
                del self._wildcard[endpoint.local_port]
        else:
            key = (endpoint.local_address, endpoint.local_port)
            if self._by_address.get(key) is endpoint:
                del self._by_address[key]

    def _lookup(self, address: bytes, port: int) -> UdpEndpoint | None:
        endpoint = self._by_address.get((address, port))
        return endpoint if endpoint is not None else self._wildcard.get(port)

    # -- data path ----------------------------------------------------------------

    def send(self, endpoint: UdpEndpoint, data: bytes, address: bytes, port: int) -> None:
        if not 1 <= port <= 0xFFFF:
            raise ValueError(f"destination port {port} is not in 1..65535")
        family = len(address)
        local = endpoint.local_address
        if local is not None and len(local) != family:
            raise OSError(
                errno.EAFNOSUPPORT,
                f"endpoint bound to {ipaddress.ip_address(local)} cannot send to "
                f"{ipaddress.ip_address(address)}",
            )
        room = _MAX_PAYLOAD[family]
        if len(data) > room:
            raise OSError(
                errno.EMSGSIZE,
                f"datagram of {len(data)} bytes exceeds the {room} an IP datagram holds",
            )
        route = self._core.routes.route(address)
        source = local or route.source
        length = _IP_HEADER[family] + udp.UDP_HEADER_LENGTH + len(data)
        # The link completes the checksum, unless the datagram goes out in fragments.
        offload = self._core.transmit_offload and length <= self._core.path_mtu(address)
        datagram = udp.build_udp(
            endpoint.local_port, port, data, source, address, checksum_partial=offload
        )
        self._core.send_ip(
            source, address, ipv4.PROTO_UDP, datagram, segment_size=0 if offload else COMPLETE
        )
        self.stats["datagrams_sent"] += 1

    def receive(
        self,
        header: ipv4.IPv4Header | ipv6.IPv6Header,
        payload: memoryview,
        packet: memoryview,
        now: float,
    ) -> None:
        stats = self.stats
        stats["datagrams_received"] += 1
        verify = self._core.verify_transport_checksums
        try:
            udp_header, data = udp.parse_udp(
                payload,
                source_address=header.source if verify else None,
                destination_address=header.destination if verify else None,
            )
        except WireError as error:
            stats["dropped_" + error.reason] += 1
            return
        if udp_header.checksum == 0 and len(header.source) == 16:
            stats["dropped_missing_checksum"] += 1  # RFC 8200 §8.1, even when not verifying
            return
        endpoint = self._lookup(header.destination, udp_header.destination_port)
        interceptor = self.interceptor
        if (
            (endpoint is None or endpoint.local_address is None)
            and interceptor is not None
            and interceptor.covers(header.destination)
        ):
            if interceptor.udp_datagram(
                header.source, header.destination, udp_header.source_port,
                udp_header.destination_port, data, now,
            ):  # fmt: skip
                return
            endpoint = None  # intercepted, but not for UDP: port unreachable
        if endpoint is None:
            stats["no_port"] += 1
            # RFC 1122 §4.1.3.1: SHOULD send port unreachable (never for broadcasts).
            self._core.send_icmp_error(
                icmpv4.TYPE_DESTINATION_UNREACHABLE, icmpv4.CODE_PORT_UNREACHABLE,
                header, packet, now,
            )  # fmt: skip
            return
        if endpoint.remote is not None and endpoint.remote != (
            header.source,
            udp_header.source_port,
        ):
            stats["dropped_not_from_remote"] += 1
            return
        self._core.events.append(
            UdpDatagramReceived(endpoint, bytes(data), header.source, udp_header.source_port)
        )

    def icmp_error(
        self, source: bytes, destination: bytes, quoted: memoryview, error: OSError, now: float
    ) -> None:
        """Report an ICMP error to the connected endpoint that sent the quoted datagram.

        As Linux without IP_RECVERR: unconnected endpoints are not told.
        """
        if len(quoted) < 4:
            return
        source_port = int.from_bytes(quoted[0:2], "big")
        destination_port = int.from_bytes(quoted[2:4], "big")
        endpoint = self._lookup(source, source_port)
        if endpoint is None or endpoint.remote != (destination, destination_port):
            self.stats["icmp_errors_ignored"] += 1
            return
        self.stats["icmp_errors_reported"] += 1
        self._core.events.append(UdpErrorReceived(endpoint, error, destination, destination_port))

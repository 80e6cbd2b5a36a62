"""The stack's own addresses and its routing decision, for IPv4 and IPv6.

The table holds three kinds of route, looked up longest prefix first, as a
host's ``ip route`` does: connected prefixes (one per address), static routes
added by the user, and at most one default gateway per family. Source
addresses follow RFC 6724 §5's basic rules.
"""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import dataclass
from typing import Final

__all__ = [
    "IPAddress",
    "IPNetwork",
    "Interface",
    "Route",
    "RouteEntry",
    "RoutingTable",
    "parse_interface",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Entries cached per destination before the cache is cleared (bounded memory).
_CACHE_LIMIT: Final = 4096
#: RFC 4291 §2.7.1: all-nodes multicast, link-local scope.
ALL_NODES: Final = ipaddress.IPv6Address("ff02::1").packed
_LINK_LOCAL: Final = ipaddress.IPv6Network("fe80::/10")


@dataclass(frozen=True, slots=True)
class Interface:
    """One address of the stack with its on-link prefix, e.g. ``198.18.0.2/24``."""

    address: bytes
    network: IPNetwork

    @property
    def version(self) -> int:
        return self.network.version


@dataclass(frozen=True, slots=True)
class Route:
    """Where a packet to some destination goes: its source address and next hop."""

    source: bytes
    next_hop: bytes


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One line of :meth:`RoutingTable.entries`: ``ip route``'s view.

    ``kind`` is ``"connected"``, ``"static"`` or ``"default"``; ``via`` the
    gateway (None for connected prefixes); ``source`` the preferred source.
    """

    network: str
    via: str | None
    source: str
    kind: str


def parse_interface(text: str) -> Interface:
    """Parse ``"198.18.0.2/24"`` (a bare address means a host prefix). ValueError if bad."""
    if not isinstance(text, str):
        raise TypeError(f"address must be a str like '198.18.0.2/24', got {type(text).__name__}")
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError as exc:
        raise ValueError(f"not an interface address like '198.18.0.2/24': {text!r}") from exc
    if interface.ip.is_multicast or interface.ip.is_unspecified:
        raise ValueError(f"{text!r} cannot be a host address")
    return Interface(interface.ip.packed, interface.network)


def _common_prefix(a: bytes, b: bytes) -> int:
    """Bits two addresses share from the left (RFC 6724 §2.2 CommonPrefixLen)."""
    difference = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return len(a) * 8 - difference.bit_length()


def _scope(address: bytes) -> int:
    """A rough RFC 6724 §3.1 scope: 2 link-local, 14 global (smaller is narrower)."""
    if len(address) == 16 and ipaddress.IPv6Address(address) in _LINK_LOCAL:
        return 2
    return 14


class RoutingTable:
    """Connected prefixes, static routes and one default gateway per family.

    Lookups are longest-prefix over a handful of entries, cached per destination.
    """

    __slots__ = (
        "_cache",
        "_gateways",
        "_static",
        "broadcast_addresses",
        "interfaces",
        "local_addresses",
    )

    def __init__(self, interfaces: list[Interface], gateways: list[bytes]) -> None:
        if not interfaces:
            raise ValueError("a stack needs at least one address")
        self.interfaces = interfaces
        self.local_addresses: frozenset[bytes] = frozenset(i.address for i in interfaces)
        self._gateways: dict[int, bytes] = {}
        #: (network, gateway); a gateway of None is an on-link prefix (e.g. from an RA).
        self._static: list[tuple[IPNetwork, bytes | None]] = []
        for gateway in gateways:
            version = 4 if len(gateway) == 4 else 6
            if self._interface_for(gateway) is None:
                text = ipaddress.ip_address(gateway)
                raise ValueError(f"gateway {text} is not on any of the stack's networks")
            if version in self._gateways:
                raise ValueError(f"one default gateway per family: two IPv{version} ones given")
            self._gateways[version] = gateway
        self._cache: dict[bytes, Route] = {}
        #: Limited broadcast plus each IPv4 network's directed broadcast (RFC 919, RFC 922).
        self.broadcast_addresses: frozenset[bytes] = frozenset(
            [b"\xff\xff\xff\xff"]
            + [
                i.network.broadcast_address.packed
                for i in interfaces
                if i.version == 4 and i.network.prefixlen < 31
            ]
        )

    @property
    def families(self) -> frozenset[int]:
        """The IP versions the stack has an address in."""
        return frozenset(i.version for i in self.interfaces)

    def gateway(self, version: int) -> bytes | None:
        """The default gateway of one family, if any."""
        return self._gateways.get(version)

    def set_gateway(self, gateway: bytes | None, version: int) -> None:
        """Set (or with None remove) the default gateway of a family (e.g. from an RA)."""
        if gateway is None:
            self._gateways.pop(version, None)
        else:
            if self._interface_for(gateway) is None and _scope(gateway) != 2:
                raise ValueError(f"gateway {ipaddress.ip_address(gateway)} is not on-link")
            self._gateways[version] = gateway
        self._cache.clear()

    def add_route(self, network: str, via: str) -> None:
        """Add a static route: ``network`` (e.g. ``"198.19.0.0/16"``) through gateway ``via``.

        ``via`` must be on one of the stack's networks. ValueError otherwise.
        """
        net = ipaddress.ip_network(network, strict=False)
        gateway = ipaddress.ip_address(via)
        if net.version != gateway.version:
            raise ValueError(f"route {network} via {via}: the families differ")
        if self._interface_for(gateway.packed) is None:
            raise ValueError(f"gateway {via} is not on any of the stack's networks")
        self._static.append((net, gateway.packed))
        self._static.sort(key=lambda entry: -entry[0].prefixlen)
        self._cache.clear()

    def add_on_link(self, network: IPNetwork) -> None:
        """Declare ``network`` on-link (RFC 4861 §6.3.4 prefix information, L flag)."""
        if any(net == network for net, _ in self._static) or any(
            i.network == network for i in self.interfaces
        ):
            return
        if not any(i.version == network.version for i in self.interfaces):
            return
        self._static.append((network, None))
        self._static.sort(key=lambda entry: -entry[0].prefixlen)
        self._cache.clear()

    def _interface_for(self, destination: bytes) -> Interface | None:
        address = ipaddress.ip_address(destination)
        best: Interface | None = None
        for interface in self.interfaces:
            if (
                address.version == interface.version
                and address in interface.network
                and (best is None or interface.network.prefixlen > best.network.prefixlen)
            ):
                best = interface
        return best

    def select_source(self, destination: bytes, next_hop: bytes | None = None) -> bytes:
        """RFC 6724 §5's basic rules among our addresses of the destination's family.

        Rule 1 (the destination itself), rule 2 (matching scope), then prefer an
        address on the next hop's network, then rule 8 (longest common prefix).
        """
        candidates = [i for i in self.interfaces if len(i.address) == len(destination)]
        scope = _scope(destination)
        hop = ipaddress.ip_address(next_hop) if next_hop is not None else None

        def rank(interface: Interface) -> tuple[bool, bool, bool, int]:
            return (
                interface.address == destination,
                _scope(interface.address) == scope,
                hop is not None and hop in interface.network,
                _common_prefix(interface.address, destination),
            )

        return max(candidates, key=rank).address

    def route(self, destination: bytes) -> Route:
        """Return the route to ``destination`` or raise ``OSError(ENETUNREACH)``."""
        cached = self._cache.get(destination)
        if cached is not None:
            return cached
        route = self._lookup(destination)
        if len(self._cache) > _CACHE_LIMIT:
            self._cache.clear()
        self._cache[destination] = route
        return route

    def _lookup(self, destination: bytes) -> Route:
        interface = self._interface_for(destination)
        address = ipaddress.ip_address(destination)
        for network, via in self._static:
            if (
                network.version == address.version
                and address in network
                and (interface is None or network.prefixlen > interface.network.prefixlen)
            ):
                hop = destination if via is None else via
                return Route(self.select_source(destination, via), hop)
        if interface is not None:
            return Route(interface.address, destination)
        link_scope = address.version == 6 and (address.is_link_local or address.is_multicast)
        if link_scope and any(i.version == 6 for i in self.interfaces):
            return Route(self.select_source(destination), destination)
        gateway = self._gateways.get(address.version)
        if gateway is None:
            raise OSError(errno.ENETUNREACH, f"Network is unreachable: no route to {address}")
        return Route(self.select_source(destination, gateway), gateway)

    def is_broadcast(self, destination: bytes) -> bool:
        """Limited broadcast or the directed broadcast of one of our IPv4 networks."""
        return destination in self.broadcast_addresses

    def entries(self) -> list[RouteEntry]:
        """The table as ``ip route`` lists it: connected, static, then defaults."""
        result = [
            RouteEntry(str(i.network), None, str(ipaddress.ip_address(i.address)), "connected")
            for i in self.interfaces
        ]
        for network, via in self._static:
            source = self.select_source(network.network_address.packed, via)
            result.append(RouteEntry(
                str(network), None if via is None else str(ipaddress.ip_address(via)),
                str(ipaddress.ip_address(source)), "on-link" if via is None else "static",
            ))  # fmt: skip
        for version, gateway in sorted(self._gateways.items()):
            any_address = "0.0.0.0/0" if version == 4 else "::/0"
            unspecified = bytes(4 if version == 4 else 16)
            source = self.select_source(unspecified, gateway)
            result.append(RouteEntry(
                any_address, str(ipaddress.ip_address(gateway)),
                str(ipaddress.ip_address(source)), "default",
            ))  # fmt: skip
        return result

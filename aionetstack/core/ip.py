"""The stack's own addresses and its routing decision (on-link or via the gateway)."""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import dataclass

__all__ = ["Interface", "Route", "RoutingTable", "parse_interface"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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


class RoutingTable:
    """Connected routes for each interface plus at most one default gateway per family.

    Route lookups are longest-prefix over a handful of entries, cached per destination.
    """

    __slots__ = ("_cache", "_gateways", "broadcast_addresses", "interfaces", "local_addresses")

    def __init__(self, interfaces: list[Interface], gateways: list[bytes]) -> None:
        if not interfaces:
            raise ValueError("a stack needs at least one address")
        self.interfaces = interfaces
        self.local_addresses: frozenset[bytes] = frozenset(i.address for i in interfaces)
        self._gateways: dict[int, bytes] = {}
        for gateway in gateways:
            version = 4 if len(gateway) == 4 else 6
            if self._interface_for(gateway) is None:
                text = ipaddress.ip_address(gateway)
                raise ValueError(f"gateway {text} is not on any of the stack's networks")
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

    def route(self, destination: bytes) -> Route:
        """Return the route to ``destination`` or raise ``OSError(ENETUNREACH)``."""
        cached = self._cache.get(destination)
        if cached is not None:
            return cached
        interface = self._interface_for(destination)
        if interface is not None:
            route = Route(interface.address, destination)
        else:
            gateway = self._gateways.get(4 if len(destination) == 4 else 6)
            if gateway is None:
                text = ipaddress.ip_address(destination)
                raise OSError(errno.ENETUNREACH, f"Network is unreachable: no route to {text}")
            via = self._interface_for(gateway)
            assert via is not None  # checked in __init__
            route = Route(via.address, gateway)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[destination] = route
        return route

    def is_broadcast(self, destination: bytes) -> bool:
        """Limited broadcast or the directed broadcast of one of our IPv4 networks."""
        return destination in self.broadcast_addresses

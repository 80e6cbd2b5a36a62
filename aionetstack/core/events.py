"""Events the core hands to its driver through ``StackCore.next_event()``.

TCP's own events live in ``core/tcp/events.py``; these are the IP, ICMP and UDP ones.
Addresses are packed bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "EchoReplyReceived",
    "EchoUnreachable",
    "UdpDatagramReceived",
    "UdpEndpointLike",
    "UdpErrorReceived",
]


class UdpEndpointLike(Protocol):
    """What an event says about the endpoint it is for (``core.udp.UdpEndpoint``).

    Declared here so that this module imports none of the layers that produce events.
    """

    local_address: bytes | None
    local_port: int
    user_data: object


@dataclass(slots=True)
class EchoReplyReceived:
    """An ICMP echo reply to one of our echo requests (RFC 792)."""

    source: bytes
    identifier: int
    sequence: int
    payload: bytes
    ttl: int


@dataclass(slots=True)
class EchoUnreachable:
    """An ICMP error that quotes one of our echo requests: the ping will not be answered."""

    destination: bytes
    identifier: int
    sequence: int
    error: OSError
    reporter: bytes


@dataclass(slots=True)
class UdpDatagramReceived:
    """A datagram for a bound UDP endpoint."""

    endpoint: UdpEndpointLike
    data: bytes
    source: bytes
    source_port: int


@dataclass(slots=True)
class UdpErrorReceived:
    """An ICMP error quoting a datagram the endpoint sent (e.g. port unreachable)."""

    endpoint: UdpEndpointLike
    error: OSError
    destination: bytes
    destination_port: int

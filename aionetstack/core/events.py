"""Events the core hands to its driver through ``StackCore.next_event()``.

TCP's own events live in ``core/tcp/events.py``; these are the IP, ICMP and UDP ones.
Addresses are packed bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .udp import UdpEndpoint

__all__ = ["EchoReplyReceived", "EchoUnreachable", "UdpDatagramReceived", "UdpErrorReceived"]


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

    endpoint: UdpEndpoint
    data: bytes
    source: bytes
    source_port: int


@dataclass(slots=True)
class UdpErrorReceived:
    """An ICMP error quoting a datagram the endpoint sent (e.g. port unreachable)."""

    endpoint: UdpEndpoint
    error: OSError
    destination: bytes
    destination_port: int

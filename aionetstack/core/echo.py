"""ICMP echo requests of one stack, loop-independent (both drivers' ``ping`` use it).

:class:`EchoRequests` numbers and sends requests and turns a matching reply
event into an :class:`EchoReply`; waiting for the reply is the driver's part.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from .events import EchoReplyReceived
from .stack import StackCore

__all__ = ["DEFAULT_PING_SIZE", "EchoReply", "EchoRequests"]

#: Payload bytes of the classic 64-byte ping (iputils' default; RFC 792 sets none).
DEFAULT_PING_SIZE: Final = 56
#: The largest echo payload: an IP datagram's 65,535 bytes less the IP header (IPv4;
#: IPv6's payload length excludes its header) and the 8-byte ICMP echo header.
#: Anything over the path MTU goes out in fragments.
_MAX_PAYLOAD: Final = {4: 65535 - 20 - 8, 16: 65535 - 8}


@dataclass(frozen=True, slots=True)
class EchoReply:
    """One answered ping: round-trip time in seconds, reply TTL, ICMP bytes, who answered."""

    rtt: float
    ttl: int
    size: int
    source: str
    sequence: int


class EchoRequests:
    """Echo requests (RFC 792) with one identifier and a running sequence number."""

    __slots__ = ("_core", "_identifier", "_sequence")

    def __init__(self, core: StackCore, identifier: int) -> None:
        self._core = core
        self._identifier = identifier
        self._sequence = 0

    def validate(self, size: int, timeout: float, destination: bytes | None = None) -> None:
        """ValueError for a payload no IP datagram to ``destination`` holds, or a timeout <= 0."""
        room = _MAX_PAYLOAD[len(destination) if destination is not None else 4]
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= room:
            raise ValueError(f"size must be an int in 0..{room} (larger ones are fragmented)")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")

    def next_key(self) -> tuple[int, int]:
        """The (identifier, sequence) of the next request."""
        self._sequence = (self._sequence + 1) & 0xFFFF
        return (self._identifier, self._sequence)

    def send(self, destination: bytes, key: tuple[int, int], size: int, ttl: int | None) -> None:
        """Queue the request ``key`` (``OSError(ENETUNREACH)`` without a route)."""
        payload = bytes((i + 8) & 0xFF for i in range(size))  # iputils' pattern after its stamp
        self._core.send_echo_request(destination, key[0], key[1], payload, ttl=ttl)

    @staticmethod
    def reply(event: EchoReplyReceived, rtt: float) -> EchoReply:
        """The :class:`EchoReply` for a reply event that arrived ``rtt`` seconds after sending."""
        return EchoReply(
            rtt=rtt, ttl=event.ttl, size=8 + len(event.payload),
            source=str(ipaddress.ip_address(event.source)), sequence=event.sequence,
        )  # fmt: skip

"""ARP for IPv4 over Ethernet (RFC 826): request and reply packets.

Hardware addresses are 6 packed bytes, protocol addresses 4.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .error import WireError

__all__ = [
    "ARP_PACKET_LENGTH",
    "HARDWARE_ETHERNET",
    "OPERATION_REPLY",
    "OPERATION_REQUEST",
    "ArpPacket",
    "build_arp",
    "build_arp_reply",
    "build_arp_request",
    "parse_arp",
]

#: RFC 826 "ar$hrd": 1 is Ethernet (IANA "Hardware Types").
HARDWARE_ETHERNET: Final = 1
#: RFC 826 "ar$pro": the EtherType of IPv4.
_PROTOCOL_IPV4: Final = 0x0800
_HARDWARE_LENGTH: Final = 6
_PROTOCOL_LENGTH: Final = 4
#: RFC 826 "ar$op" values.
OPERATION_REQUEST: Final = 1
OPERATION_REPLY: Final = 2
#: 8 fixed bytes, two hardware and two protocol addresses.
ARP_PACKET_LENGTH: Final = 28
#: RFC 826: the target hardware address of a request is not known yet.
_UNKNOWN_HARDWARE: Final = bytes(_HARDWARE_LENGTH)

_PACKET: Final = struct.Struct("!HHBBH6s4s6s4s")


@dataclass(slots=True)
class ArpPacket:
    """An ARP request or reply for IPv4 over Ethernet."""

    operation: int
    sender_hardware: bytes
    sender_protocol: bytes
    target_hardware: bytes
    target_protocol: bytes

    @property
    def is_request(self) -> bool:
        """True for a request ("who has target_protocol?")."""
        return self.operation == OPERATION_REQUEST


def parse_arp(data: bytes | bytearray | memoryview) -> ArpPacket:
    """Parse an ARP packet (the Ethernet payload; trailing padding is ignored).

    Only Ethernet/IPv4 requests and replies are accepted: anything else is
    rejected with reason ``"unsupported_arp"``. Raises :class:`WireError`.
    """
    if len(data) < ARP_PACKET_LENGTH:
        raise WireError(f"ARP packet of {len(data)} bytes is too short", "truncated")
    (hardware, protocol, hardware_length, protocol_length, operation,
     sender_hw, sender_ip, target_hw, target_ip) = _PACKET.unpack_from(data)  # fmt: skip
    if (hardware, protocol) != (HARDWARE_ETHERNET, _PROTOCOL_IPV4):
        raise WireError(f"ARP for hardware {hardware}/protocol {protocol:#x}", "unsupported_arp")
    if (hardware_length, protocol_length) != (_HARDWARE_LENGTH, _PROTOCOL_LENGTH):
        raise WireError("ARP address lengths are not 6 and 4", "unsupported_arp")
    if operation not in (OPERATION_REQUEST, OPERATION_REPLY):
        raise WireError(f"ARP operation {operation} is not request or reply", "unsupported_arp")
    return ArpPacket(operation, sender_hw, sender_ip, target_hw, target_ip)


def build_arp(packet: ArpPacket) -> bytes:
    """Return the 28 bytes of ``packet``. Bad fields raise :class:`ValueError`."""
    if packet.operation not in (OPERATION_REQUEST, OPERATION_REPLY):
        raise ValueError(f"ARP operation {packet.operation} is not request or reply")
    for name in ("sender_hardware", "target_hardware"):
        if len(getattr(packet, name)) != _HARDWARE_LENGTH:
            raise ValueError(f"{name} must be 6 packed bytes")
    for name in ("sender_protocol", "target_protocol"):
        if len(getattr(packet, name)) != _PROTOCOL_LENGTH:
            raise ValueError(f"{name} must be 4 packed bytes")
    return _PACKET.pack(
        HARDWARE_ETHERNET,
        _PROTOCOL_IPV4,
        _HARDWARE_LENGTH,
        _PROTOCOL_LENGTH,
        packet.operation,
        packet.sender_hardware,
        packet.sender_protocol,
        packet.target_hardware,
        packet.target_protocol,
    )


def build_arp_request(
    sender_hardware: bytes, sender_protocol: bytes, target_protocol: bytes
) -> bytes:
    """Return a request asking who has ``target_protocol`` (target hardware all zero)."""
    packet = ArpPacket(
        OPERATION_REQUEST, sender_hardware, sender_protocol, _UNKNOWN_HARDWARE, target_protocol
    )
    return build_arp(packet)


def build_arp_reply(request: ArpPacket, hardware: bytes) -> bytes:
    """Return the reply to ``request``: its target protocol address is at ``hardware``.

    RFC 826 "Packet Reception": swap sender and target, fill in the local
    hardware address, set the opcode to reply.
    """
    packet = ArpPacket(
        OPERATION_REPLY,
        hardware,
        request.target_protocol,
        request.sender_hardware,
        request.sender_protocol,
    )
    return build_arp(packet)

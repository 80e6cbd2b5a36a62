"""ICMPv4 messages (RFC 792): echo request/reply, destination unreachable, time exceeded."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .checksum import internet_checksum
from .error import WireError

__all__ = [
    "CODE_FRAGMENTATION_NEEDED",
    "CODE_HOST_UNREACHABLE",
    "CODE_NET_UNREACHABLE",
    "CODE_PORT_UNREACHABLE",
    "CODE_PROTOCOL_UNREACHABLE",
    "ICMP_HEADER_LENGTH",
    "TYPE_DESTINATION_UNREACHABLE",
    "TYPE_ECHO_REPLY",
    "TYPE_ECHO_REQUEST",
    "TYPE_TIME_EXCEEDED",
    "IcmpMessage",
    "build_echo",
    "build_error",
    "build_icmpv4",
    "parse_icmpv4",
]

# RFC 792 message types.
TYPE_ECHO_REPLY: Final = 0
TYPE_DESTINATION_UNREACHABLE: Final = 3
TYPE_ECHO_REQUEST: Final = 8
TYPE_TIME_EXCEEDED: Final = 11
# RFC 792 destination-unreachable codes (RFC 1191 for code 4's next-hop MTU).
CODE_NET_UNREACHABLE: Final = 0
CODE_HOST_UNREACHABLE: Final = 1
CODE_PROTOCOL_UNREACHABLE: Final = 2
CODE_PORT_UNREACHABLE: Final = 3
CODE_FRAGMENTATION_NEEDED: Final = 4

#: type, code, checksum, and the 4-byte "rest of header".
ICMP_HEADER_LENGTH: Final = 8
#: RFC 1812 §4.3.2.3: an error quotes as much of the original as fits in 576 bytes.
_MAX_ERROR_PACKET: Final = 576
_IPV4_HEADER_LENGTH: Final = 20

_HEADER: Final = struct.Struct("!BBHHH")
_ERROR_TYPES: Final = frozenset({TYPE_DESTINATION_UNREACHABLE, TYPE_TIME_EXCEEDED})


@dataclass(slots=True)
class IcmpMessage:
    """An ICMPv4 message.

    For echo messages ``identifier``/``sequence`` are the rest-of-header words;
    for errors they hold its two halves (``sequence`` is the next-hop MTU of
    "fragmentation needed") and ``payload`` is the quoted original datagram.
    """

    type: int
    code: int
    identifier: int = 0
    sequence: int = 0
    payload: bytes = b""
    checksum: int = 0

    @property
    def is_error(self) -> bool:
        """True for the error messages this stack understands."""
        return self.type in _ERROR_TYPES


def parse_icmpv4(
    data: bytes | bytearray | memoryview, *, verify_checksum: bool = True
) -> IcmpMessage:
    """Parse an ICMPv4 message (the IP payload). Raises :class:`WireError`."""
    if len(data) < ICMP_HEADER_LENGTH:
        raise WireError(f"ICMP message of {len(data)} bytes is too short", "truncated")
    if verify_checksum and internet_checksum(data) != 0:
        raise WireError("ICMP checksum mismatch", "bad_checksum")
    icmp_type, code, checksum, first, second = _HEADER.unpack_from(data)
    return IcmpMessage(icmp_type, code, first, second, bytes(data[ICMP_HEADER_LENGTH:]), checksum)


def build_icmpv4(message: IcmpMessage) -> bytes:
    """Return the bytes of ``message`` with its checksum computed."""
    if not 0 <= message.type <= 0xFF or not 0 <= message.code <= 0xFF:
        raise ValueError("ICMP type and code must fit in 8 bits")
    raw = bytearray(ICMP_HEADER_LENGTH + len(message.payload))
    _HEADER.pack_into(
        raw,
        0,
        message.type,
        message.code,
        0,
        message.identifier & 0xFFFF,
        message.sequence & 0xFFFF,
    )
    raw[ICMP_HEADER_LENGTH:] = message.payload
    checksum = internet_checksum(raw)
    raw[2] = checksum >> 8
    raw[3] = checksum & 0xFF
    return bytes(raw)


def build_echo(*, reply: bool, identifier: int, sequence: int, payload: bytes = b"") -> bytes:
    """Return an echo request (``reply=False``) or echo reply (RFC 792 p.14)."""
    icmp_type = TYPE_ECHO_REPLY if reply else TYPE_ECHO_REQUEST
    return build_icmpv4(IcmpMessage(icmp_type, 0, identifier, sequence, payload))


def build_error(
    icmp_type: int, code: int, original_packet: bytes | memoryview, *, next_hop_mtu: int = 0
) -> bytes:
    """Return an ICMP error quoting ``original_packet`` (its IP header and data).

    The quote is cut so that the whole error packet, with its own 20-byte IP
    header, stays within 576 bytes (RFC 1812 §4.3.2.3; RFC 792 asks for at
    least the header plus 64 bits).
    """
    if icmp_type not in _ERROR_TYPES:
        raise ValueError(f"ICMP type {icmp_type} is not an error type this stack sends")
    room = _MAX_ERROR_PACKET - _IPV4_HEADER_LENGTH - ICMP_HEADER_LENGTH
    quote = bytes(original_packet[:room])
    return build_icmpv4(IcmpMessage(icmp_type, code, 0, next_hop_mtu, quote))

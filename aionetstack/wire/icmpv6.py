"""ICMPv6 messages (RFC 4443) and neighbour discovery messages (RFC 4861 §4.3-4.4).

The checksum is mandatory and covers the IPv6 pseudo-header (RFC 4443 §2.3),
so parse and build take the packet's source and destination addresses
(16 packed bytes each).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .checksum import internet_checksum, pseudo_header_sum
from .error import WireError

__all__ = [
    "CODE_ADDRESS_UNREACHABLE",
    "CODE_ADMINISTRATIVELY_PROHIBITED",
    "CODE_HOP_LIMIT_EXCEEDED",
    "CODE_NO_ROUTE",
    "CODE_PORT_UNREACHABLE",
    "CODE_REASSEMBLY_TIME_EXCEEDED",
    "ICMPV6_HEADER_LENGTH",
    "OPTION_SOURCE_LINK_ADDRESS",
    "OPTION_TARGET_LINK_ADDRESS",
    "PROTO_ICMPV6",
    "TYPE_DESTINATION_UNREACHABLE",
    "TYPE_ECHO_REPLY",
    "TYPE_ECHO_REQUEST",
    "TYPE_NEIGHBOR_ADVERTISEMENT",
    "TYPE_NEIGHBOR_SOLICITATION",
    "TYPE_PACKET_TOO_BIG",
    "TYPE_PARAMETER_PROBLEM",
    "TYPE_TIME_EXCEEDED",
    "Icmpv6Message",
    "NeighborAdvertisement",
    "NeighborSolicitation",
    "build_echo",
    "build_error",
    "build_icmpv6",
    "build_neighbor_advertisement",
    "build_neighbor_solicitation",
    "parse_icmpv6",
    "parse_neighbor_advertisement",
    "parse_neighbor_solicitation",
    "solicited_node_address",
]

#: IANA protocol number (IPv6 next header) of ICMPv6.
PROTO_ICMPV6: Final = 58

# RFC 4443 §2.1 message types; RFC 4861 §4 for neighbour discovery.
TYPE_DESTINATION_UNREACHABLE: Final = 1
TYPE_PACKET_TOO_BIG: Final = 2
TYPE_TIME_EXCEEDED: Final = 3
TYPE_PARAMETER_PROBLEM: Final = 4
TYPE_ECHO_REQUEST: Final = 128
TYPE_ECHO_REPLY: Final = 129
TYPE_NEIGHBOR_SOLICITATION: Final = 135
TYPE_NEIGHBOR_ADVERTISEMENT: Final = 136
# RFC 4443 §3.1 destination unreachable codes.
CODE_NO_ROUTE: Final = 0
CODE_ADMINISTRATIVELY_PROHIBITED: Final = 1
CODE_ADDRESS_UNREACHABLE: Final = 3
CODE_PORT_UNREACHABLE: Final = 4
# RFC 4443 §3.3 time exceeded codes.
CODE_HOP_LIMIT_EXCEEDED: Final = 0
CODE_REASSEMBLY_TIME_EXCEEDED: Final = 1
# RFC 4861 §4.6.1 link-layer address option types.
OPTION_SOURCE_LINK_ADDRESS: Final = 1
OPTION_TARGET_LINK_ADDRESS: Final = 2

#: type, code, checksum and the 4-byte message body word (RFC 4443 §2.1).
ICMPV6_HEADER_LENGTH: Final = 8
#: RFC 4443 §2.1: types 0-127 are errors.
_ERROR_TYPE_LIMIT: Final = 128
#: RFC 4443 §2.4 (c): an error must fit in the minimum IPv6 MTU (RFC 8200 §5).
_MINIMUM_MTU: Final = 1280
_IPV6_HEADER_LENGTH: Final = 40
_ADDRESS_LENGTH: Final = 16
#: RFC 4861 §4.3/§4.4: header, reserved/flags word, 16-byte target.
_ND_MINIMUM_LENGTH: Final = 24
#: RFC 4861 §4.6: option lengths count 8-octet units.
_OPTION_UNIT: Final = 8
# RFC 4861 §4.4 neighbor advertisement flag bits of the body word.
_FLAG_ROUTER: Final = 0x8000_0000
_FLAG_SOLICITED: Final = 0x4000_0000
_FLAG_OVERRIDE: Final = 0x2000_0000
_MULTICAST_PREFIX: Final = 0xFF
#: RFC 4291 §2.7.1: ff02::1:ff00:0/104, the solicited-node prefix.
_SOLICITED_NODE_PREFIX: Final = bytes.fromhex("ff02 0000 0000 0000 0000 0001 ff")

_HEADER: Final = struct.Struct("!BBHI")


@dataclass(slots=True)
class Icmpv6Message:
    """An ICMPv6 message.

    ``body`` is the 32-bit word after the checksum: identifier and sequence
    of an echo, the MTU of "packet too big", the pointer of "parameter
    problem", the flags of a neighbour advertisement. ``payload`` is the rest
    (echo data, the quoted packet of an error, the ND target and options).
    """

    type: int
    code: int
    body: int = 0
    payload: bytes = b""
    checksum: int = 0

    @property
    def is_error(self) -> bool:
        """True for error messages (RFC 4443 §2.1: types 0-127)."""
        return self.type < _ERROR_TYPE_LIMIT

    @property
    def identifier(self) -> int:
        """The echo identifier (RFC 4443 §4.1): the body's high half."""
        return self.body >> 16

    @property
    def sequence(self) -> int:
        """The echo sequence number (RFC 4443 §4.1): the body's low half."""
        return self.body & 0xFFFF

    @property
    def mtu(self) -> int:
        """The MTU of a "packet too big" message (RFC 4443 §3.2)."""
        return self.body


@dataclass(slots=True)
class NeighborSolicitation:
    """A neighbour solicitation (RFC 4861 §4.3)."""

    target: bytes
    source_link_address: bytes | None = None


@dataclass(slots=True)
class NeighborAdvertisement:
    """A neighbour advertisement (RFC 4861 §4.4)."""

    target: bytes
    router: bool = False
    solicited: bool = False
    override: bool = False
    target_link_address: bytes | None = None


def parse_icmpv6(
    data: bytes | bytearray | memoryview,
    source_address: bytes,
    destination_address: bytes,
    *,
    verify_checksum: bool = True,
) -> Icmpv6Message:
    """Parse an ICMPv6 message (the upper-layer payload). Raises :class:`WireError`."""
    if len(data) < ICMPV6_HEADER_LENGTH:
        raise WireError(f"ICMPv6 message of {len(data)} bytes is too short", "truncated")
    if verify_checksum:
        pseudo = pseudo_header_sum(source_address, destination_address, PROTO_ICMPV6, len(data))
        if internet_checksum(data, pseudo) != 0:
            raise WireError("ICMPv6 checksum mismatch", "bad_checksum")
    icmp_type, code, checksum, body = _HEADER.unpack_from(data)
    return Icmpv6Message(icmp_type, code, body, bytes(data[ICMPV6_HEADER_LENGTH:]), checksum)


def build_icmpv6(
    message: Icmpv6Message, source_address: bytes, destination_address: bytes
) -> bytes:
    """Return the bytes of ``message`` with its pseudo-header checksum computed."""
    if len(source_address) != _ADDRESS_LENGTH or len(destination_address) != _ADDRESS_LENGTH:
        raise ValueError("ICMPv6 addresses must be 16 packed bytes")
    if not 0 <= message.type <= 0xFF or not 0 <= message.code <= 0xFF:
        raise ValueError("ICMPv6 type and code must fit in 8 bits")
    raw = bytearray(ICMPV6_HEADER_LENGTH + len(message.payload))
    _HEADER.pack_into(raw, 0, message.type, message.code, 0, message.body & 0xFFFF_FFFF)
    raw[ICMPV6_HEADER_LENGTH:] = message.payload
    pseudo = pseudo_header_sum(source_address, destination_address, PROTO_ICMPV6, len(raw))
    checksum = internet_checksum(raw, pseudo)
    raw[2] = checksum >> 8
    raw[3] = checksum & 0xFF
    return bytes(raw)


def build_echo(
    source_address: bytes,
    destination_address: bytes,
    *,
    reply: bool,
    identifier: int,
    sequence: int,
    payload: bytes = b"",
) -> bytes:
    """Return an echo request (``reply=False``) or reply (RFC 4443 §4.1-4.2)."""
    icmp_type = TYPE_ECHO_REPLY if reply else TYPE_ECHO_REQUEST
    body = ((identifier & 0xFFFF) << 16) | (sequence & 0xFFFF)
    message = Icmpv6Message(icmp_type, 0, body, payload)
    return build_icmpv6(message, source_address, destination_address)


def build_error(
    icmp_type: int,
    code: int,
    original_packet: bytes | memoryview,
    source_address: bytes,
    destination_address: bytes,
    *,
    body: int = 0,
) -> bytes:
    """Return an ICMPv6 error quoting as much of ``original_packet`` as fits.

    ``body`` is the MTU for "packet too big" and the pointer for "parameter
    problem". The quote is cut so that the error, with its own IPv6 header,
    fits in 1280 bytes (RFC 4443 §2.4 (c)).
    """
    if icmp_type >= _ERROR_TYPE_LIMIT:
        raise ValueError(f"ICMPv6 type {icmp_type} is not an error type")
    room = _MINIMUM_MTU - _IPV6_HEADER_LENGTH - ICMPV6_HEADER_LENGTH
    message = Icmpv6Message(icmp_type, code, body, bytes(original_packet[:room]))
    return build_icmpv6(message, source_address, destination_address)


def parse_neighbor_solicitation(message: Icmpv6Message) -> NeighborSolicitation:
    """Read a neighbour solicitation out of a parsed message (RFC 4861 §4.3, §7.1.1)."""
    target, options = _parse_neighbor_message(message, TYPE_NEIGHBOR_SOLICITATION)
    return NeighborSolicitation(target, options.get(OPTION_SOURCE_LINK_ADDRESS))


def parse_neighbor_advertisement(message: Icmpv6Message) -> NeighborAdvertisement:
    """Read a neighbour advertisement out of a parsed message (RFC 4861 §4.4, §7.1.2)."""
    target, options = _parse_neighbor_message(message, TYPE_NEIGHBOR_ADVERTISEMENT)
    return NeighborAdvertisement(
        target=target,
        router=bool(message.body & _FLAG_ROUTER),
        solicited=bool(message.body & _FLAG_SOLICITED),
        override=bool(message.body & _FLAG_OVERRIDE),
        target_link_address=options.get(OPTION_TARGET_LINK_ADDRESS),
    )


def _parse_neighbor_message(
    message: Icmpv6Message, expected_type: int
) -> tuple[bytes, dict[int, bytes]]:
    if message.type != expected_type:
        raise WireError(f"ICMPv6 type {message.type} is not {expected_type}", "bad_type")
    if message.code != 0:
        raise WireError(f"neighbour discovery code {message.code} is not 0", "bad_code")
    payload = message.payload
    if ICMPV6_HEADER_LENGTH + len(payload) < _ND_MINIMUM_LENGTH:
        raise WireError("neighbour discovery message too short", "truncated")
    target = payload[:_ADDRESS_LENGTH]
    if target[0] == _MULTICAST_PREFIX:
        raise WireError("neighbour discovery target is multicast", "bad_target")
    return target, _parse_link_address_options(payload[_ADDRESS_LENGTH:])


def _parse_link_address_options(options: bytes) -> dict[int, bytes]:
    """Return the data of the link-layer address options, keyed by option type.

    Options of other types are skipped by their length; a zero length is
    invalid (RFC 4861 §4.6). For Ethernet the data is the 6-byte address.
    """
    found: dict[int, bytes] = {}
    offset = 0
    while offset < len(options):
        if offset + 2 > len(options):
            raise WireError("neighbour discovery option truncated", "bad_option")
        length = options[offset + 1] * _OPTION_UNIT
        if length == 0:
            raise WireError("neighbour discovery option of length zero", "bad_option")
        if offset + length > len(options):
            raise WireError("neighbour discovery option runs past the message", "bad_option")
        option_type = options[offset]
        if option_type in (OPTION_SOURCE_LINK_ADDRESS, OPTION_TARGET_LINK_ADDRESS):
            found.setdefault(option_type, options[offset + 2 : offset + length])
        offset += length
    return found


def _link_address_option(option_type: int, link_address: bytes) -> bytes:
    units = -(-(2 + len(link_address)) // _OPTION_UNIT)
    option = bytes((option_type, units)) + link_address
    return option + bytes(units * _OPTION_UNIT - len(option))


def build_neighbor_solicitation(
    solicitation: NeighborSolicitation, source_address: bytes, destination_address: bytes
) -> bytes:
    """Return a neighbour solicitation (RFC 4861 §4.3).

    RFC 4861 §7.2.2: the source link-layer address option must be left out
    when the source is the unspecified address (duplicate address detection).
    """
    _check_target(solicitation.target)
    payload = solicitation.target
    if solicitation.source_link_address is not None:
        payload += _link_address_option(
            OPTION_SOURCE_LINK_ADDRESS, solicitation.source_link_address
        )
    message = Icmpv6Message(TYPE_NEIGHBOR_SOLICITATION, 0, 0, payload)
    return build_icmpv6(message, source_address, destination_address)


def build_neighbor_advertisement(
    advertisement: NeighborAdvertisement, source_address: bytes, destination_address: bytes
) -> bytes:
    """Return a neighbour advertisement (RFC 4861 §4.4)."""
    _check_target(advertisement.target)
    flags = 0
    if advertisement.router:
        flags |= _FLAG_ROUTER
    if advertisement.solicited:
        flags |= _FLAG_SOLICITED
    if advertisement.override:
        flags |= _FLAG_OVERRIDE
    payload = advertisement.target
    if advertisement.target_link_address is not None:
        payload += _link_address_option(
            OPTION_TARGET_LINK_ADDRESS, advertisement.target_link_address
        )
    message = Icmpv6Message(TYPE_NEIGHBOR_ADVERTISEMENT, 0, flags, payload)
    return build_icmpv6(message, source_address, destination_address)


def _check_target(target: bytes) -> None:
    if len(target) != _ADDRESS_LENGTH:
        raise ValueError("neighbour discovery target must be 16 packed bytes")


def solicited_node_address(address: bytes) -> bytes:
    """Return the solicited-node multicast address of ``address`` (RFC 4291 §2.7.1)."""
    if len(address) != _ADDRESS_LENGTH:
        raise ValueError("address must be 16 packed bytes")
    return _SOLICITED_NODE_PREFIX + address[-3:]

"""IPv4 headers (RFC 791).

Addresses are kept as 4 packed bytes: that is what goes on the wire and what
demultiplexing keys are built from. Convert at the API edge with ``ipaddress``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .checksum import internet_checksum
from .error import WireError

__all__ = [
    "FIXED_WORDS",
    "FLAG_DF",
    "FRAGMENT_BITS",
    "HEADER",
    "IPV4_HEADER_LENGTH",
    "MARTIAN_FIRST_OCTETS",
    "PROTO_ICMP",
    "PROTO_ICMPV6",
    "PROTO_TCP",
    "PROTO_UDP",
    "IPv4Header",
    "build_ipv4",
    "build_ipv4_header",
    "parse_ipv4",
]

#: Protocol numbers (IANA "Assigned Internet Protocol Numbers").
PROTO_ICMP: Final = 1
PROTO_TCP: Final = 6
PROTO_UDP: Final = 17
PROTO_ICMPV6: Final = 58

#: RFC 791 §3.1: a header without options is five 32-bit words.
IPV4_HEADER_LENGTH: Final = 20
_MAX_TOTAL_LENGTH: Final = 0xFFFF
FLAG_DF: Final = 0x4000  # RFC 791 §3.1 "Flags" bit 1: Don't Fragment
_FLAG_MF: Final = 0x2000  # bit 2: More Fragments
_OFFSET_MASK: Final = 0x1FFF

#: The fixed 20-byte header: version/IHL, TOS, total length, identification,
#: flags/fragment offset, TTL, protocol, checksum, source, destination.
HEADER: Final = struct.Struct("!BBHHHBBH4s4s")
#: MF and the fragment offset: either set makes a packet a fragment (RFC 791 §3.1).
FRAGMENT_BITS: Final = _FLAG_MF | _OFFSET_MASK
#: RFC 1122 §3.2.1.3 / RFC 6890: 0/8 "this network", 127/8 loopback, 224/4 multicast
#: and 240/4 reserved are never the source of a packet a host accepts.
MARTIAN_FIRST_OCTETS: Final = frozenset([0, 127, *range(224, 256)])
#: The words of a plain header (``wire/ipv4_send.py``) that never change: version/IHL/TOS and DF.
FIXED_WORDS: Final = 0x4500 + FLAG_DF


@dataclass(slots=True)
class IPv4Header:
    """The fields of an IPv4 header. ``fragment_offset`` is in bytes."""

    source: bytes
    destination: bytes
    protocol: int
    ttl: int = 64
    tos: int = 0
    identification: int = 0
    dont_fragment: bool = True
    more_fragments: bool = False
    fragment_offset: int = 0
    total_length: int = 0
    header_length: int = IPV4_HEADER_LENGTH
    checksum: int = 0
    options: bytes = b""

    @property
    def is_fragment(self) -> bool:
        """True for any piece of a fragmented datagram (RFC 791 §2.3)."""
        return self.more_fragments or self.fragment_offset != 0


def parse_ipv4(
    data: bytes | bytearray | memoryview, *, verify_checksum: bool = True
) -> tuple[IPv4Header, memoryview]:
    """Parse an IPv4 packet into its header and payload.

    Validates version, IHL, total length and (unless told not to) the header
    checksum. Bytes past ``total_length`` (link padding) are cut off the payload.
    Options are kept raw and otherwise skipped. Raises :class:`WireError`.
    """
    view = memoryview(data)
    if len(view) < IPV4_HEADER_LENGTH:
        raise WireError(f"IPv4 packet of {len(view)} bytes is shorter than a header", "truncated")
    (ver_ihl, tos, total_length, ident, flags_offset, ttl, protocol, checksum, src, dst) = (
        HEADER.unpack_from(view)
    )
    if ver_ihl >> 4 != 4:
        raise WireError(f"IP version {ver_ihl >> 4} is not 4", "bad_version")
    header_length = (ver_ihl & 0x0F) * 4
    if header_length < IPV4_HEADER_LENGTH:
        raise WireError(f"IHL {header_length // 4} is below the minimum of 5", "bad_header_length")
    if header_length > len(view):
        raise WireError(f"IHL says {header_length} bytes, packet has {len(view)}", "truncated")
    if total_length < header_length:
        raise WireError(
            f"total length {total_length} < header length {header_length}", "bad_length"
        )
    if total_length > len(view):
        raise WireError(f"total length {total_length} > {len(view)} bytes received", "truncated")
    if verify_checksum and internet_checksum(view[:header_length]) != 0:
        raise WireError("IPv4 header checksum mismatch", "bad_checksum")
    # Positional construction: this runs once per received packet.
    options = bytes(view[IPV4_HEADER_LENGTH:header_length]) if header_length > 20 else b""
    header = IPv4Header(
        src, dst, protocol, ttl, tos, ident,
        flags_offset & FLAG_DF != 0, flags_offset & _FLAG_MF != 0,
        (flags_offset & _OFFSET_MASK) * 8, total_length, header_length, checksum,
        options,
    )  # fmt: skip
    return header, view[header_length:total_length]


def build_ipv4_header(header: IPv4Header, payload_length: int) -> bytes:
    """Return the header bytes (checksum filled in) for a payload of the given length.

    ``header.total_length``, ``header_length`` and ``checksum`` are ignored and
    computed. Options must be padded to a multiple of 4 bytes by the caller.
    """
    options = header.options
    if len(options) % 4 or len(options) > 40:
        raise ValueError("IPv4 options must be a multiple of 4 bytes, at most 40")
    header_length = IPV4_HEADER_LENGTH + len(options)
    total_length = header_length + payload_length
    if total_length > _MAX_TOTAL_LENGTH:
        raise ValueError(f"IPv4 total length {total_length} exceeds 65535")
    if header.fragment_offset % 8 or not 0 <= header.fragment_offset <= _OFFSET_MASK * 8:
        raise ValueError("fragment_offset must be a multiple of 8 bytes in 0..65528")
    if len(header.source) != 4 or len(header.destination) != 4:
        raise ValueError("IPv4 addresses must be 4 packed bytes")
    if not all(0 <= value <= 0xFF for value in (header.ttl, header.tos, header.protocol)):
        raise ValueError("ttl, tos and protocol must fit in 8 bits")
    flags_offset = (header.fragment_offset // 8) & _OFFSET_MASK
    if header.dont_fragment:
        flags_offset |= FLAG_DF
    if header.more_fragments:
        flags_offset |= _FLAG_MF
    raw = bytearray(header_length)
    HEADER.pack_into(
        raw, 0,
        0x40 | (header_length // 4), header.tos, total_length, header.identification & 0xFFFF,
        flags_offset, header.ttl, header.protocol, 0, header.source, header.destination,
    )  # fmt: skip
    raw[IPV4_HEADER_LENGTH:] = options
    checksum = internet_checksum(raw)
    raw[10] = checksum >> 8
    raw[11] = checksum & 0xFF
    return bytes(raw)


def build_ipv4(header: IPv4Header, payload: bytes | bytearray | memoryview) -> bytes:
    """Return a whole IPv4 packet: the header (checksum computed) then ``payload``."""
    return build_ipv4_header(header, len(payload)) + bytes(payload)

"""UDP datagrams (RFC 768) over IPv4 and IPv6.

Addresses are packed bytes: 4 for IPv4, 16 for IPv6. Their length tells the
parser and builder which pseudo-header and which zero-checksum rule apply.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .checksum import internet_checksum, pseudo_header_sum
from .error import WireError

__all__ = [
    "PROTO_UDP",
    "UDP_HEADER_LENGTH",
    "UdpHeader",
    "build_udp",
    "parse_udp",
    "udp_checksum",
]

#: IANA protocol number of UDP (RFC 768).
PROTO_UDP: Final = 17
#: RFC 768: source port, destination port, length, checksum; 16 bits each.
UDP_HEADER_LENGTH: Final = 8
#: RFC 768: the length field is 16 bits and counts the header too.
_MAX_UDP_LENGTH: Final = 0xFFFF
_MAX_PORT: Final = 0xFFFF
_IPV4_ADDRESS_LENGTH: Final = 4
_IPV6_ADDRESS_LENGTH: Final = 16

_HEADER: Final = struct.Struct("!HHHH")


@dataclass(slots=True)
class UdpHeader:
    """The four fields of a UDP header. ``length`` counts header and data."""

    source_port: int
    destination_port: int
    length: int
    checksum: int


def parse_udp(
    data: bytes | bytearray | memoryview,
    *,
    source_address: bytes | None = None,
    destination_address: bytes | None = None,
) -> tuple[UdpHeader, memoryview]:
    """Parse a UDP datagram (the IP payload) into its header and data.

    The length field must be at least 8 and no more than the bytes given;
    bytes past it are ignored. When both addresses are given the checksum is
    verified over their pseudo-header. A zero checksum means "not computed"
    over IPv4 (RFC 768) and is accepted; over IPv6 it is invalid (RFC 8200
    §8.1) and rejected with reason ``"missing_checksum"``. Without addresses
    the checksum is not looked at (a TUN with checksum offload, for one).
    Raises :class:`WireError` only.
    """
    view = memoryview(data)
    if len(view) < UDP_HEADER_LENGTH:
        raise WireError(f"UDP datagram of {len(view)} bytes is shorter than a header", "truncated")
    source_port, destination_port, length, checksum = _HEADER.unpack_from(view)
    if length < UDP_HEADER_LENGTH:
        raise WireError(f"UDP length {length} is below the header size", "bad_length")
    if length > len(view):
        raise WireError(f"UDP length {length} > {len(view)} bytes received", "truncated")
    datagram = view[:length]
    if source_address is not None and destination_address is not None:
        _verify_checksum(datagram, checksum, source_address, destination_address)
    header = UdpHeader(source_port, destination_port, length, checksum)
    return header, datagram[UDP_HEADER_LENGTH:]


def _verify_checksum(
    datagram: memoryview, checksum: int, source_address: bytes, destination_address: bytes
) -> None:
    if checksum == 0:
        if len(source_address) == _IPV4_ADDRESS_LENGTH:
            return  # RFC 768: "all zero ... means that the transmitter generated no checksum"
        raise WireError("UDP over IPv6 without a checksum", "missing_checksum")
    pseudo = pseudo_header_sum(source_address, destination_address, PROTO_UDP, len(datagram))
    if internet_checksum(datagram, pseudo) != 0:
        raise WireError("UDP checksum mismatch", "bad_checksum")


def udp_checksum(datagram: bytes | bytearray | memoryview, pseudo_header: int) -> int:
    """Return the value to transmit in the checksum field of ``datagram``.

    ``datagram`` must hold zero in its checksum field. A computed 0 goes out
    as 0xFFFF, since 0 means "no checksum" (RFC 768).
    """
    checksum = internet_checksum(datagram, pseudo_header)
    return checksum or 0xFFFF


def build_udp(
    src_port: int,
    dst_port: int,
    payload: bytes | bytearray | memoryview,
    source_address: bytes,
    destination_address: bytes,
    *,
    checksum_partial: bool = False,
) -> bytes:
    """Return a UDP datagram with its checksum computed over the pseudo-header.

    With ``checksum_partial`` the checksum field holds only the folded
    pseudo-header sum, which is what a NIC (or a TUN with
    ``VIRTIO_NET_HDR_F_NEEDS_CSUM``) expects to complete. Bad arguments raise
    :class:`ValueError`.
    """
    _check_port(src_port, "source")
    _check_port(dst_port, "destination")
    if len(source_address) not in (_IPV4_ADDRESS_LENGTH, _IPV6_ADDRESS_LENGTH):
        raise ValueError("source_address must be 4 or 16 packed bytes")
    if len(destination_address) != len(source_address):
        raise ValueError("source and destination addresses must be of the same family")
    length = UDP_HEADER_LENGTH + len(payload)
    if length > _MAX_UDP_LENGTH:
        raise ValueError(f"UDP datagram of {length} bytes exceeds 65535")
    raw = bytearray(length)
    _HEADER.pack_into(raw, 0, src_port, dst_port, length, 0)
    raw[UDP_HEADER_LENGTH:] = payload
    pseudo = pseudo_header_sum(source_address, destination_address, PROTO_UDP, length)
    checksum = pseudo if checksum_partial else udp_checksum(raw, pseudo)
    raw[6] = checksum >> 8
    raw[7] = checksum & 0xFF
    return bytes(raw)


def _check_port(port: int, which: str) -> None:
    if not 0 <= port <= _MAX_PORT:
        raise ValueError(f"{which} port {port} is not in 0..65535")

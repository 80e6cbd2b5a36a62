"""The virtio_net_hdr prefix of a TUN opened with IFF_VNET_HDR.

Ten little-endian bytes before every packet, both ways (virtio spec 1.2
§5.1.6 "struct virtio_net_hdr", legacy layout without ``num_buffers``;
``include/uapi/linux/virtio_net.h``). With it the kernel hands over and
accepts 64 KB segments (GSO/TSO) and leaves checksums to the other side:
``NEEDS_CSUM`` means the checksum field at ``csum_start + csum_offset``
holds only the pseudo-header sum.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .error import WireError

__all__ = [
    "CSUM_OFFSET_TCP",
    "CSUM_OFFSET_UDP",
    "VIRTIO_NET_HDR_F_DATA_VALID",
    "VIRTIO_NET_HDR_F_NEEDS_CSUM",
    "VIRTIO_NET_HDR_GSO_ECN",
    "VIRTIO_NET_HDR_GSO_NONE",
    "VIRTIO_NET_HDR_GSO_TCPV4",
    "VIRTIO_NET_HDR_GSO_TCPV6",
    "VIRTIO_NET_HDR_GSO_UDP",
    "VIRTIO_NET_HDR_GSO_UDP_L4",
    "VNET_HEADER_LENGTH",
    "VNET_HEADER_NONE",
    "VnetHeader",
    "build_vnet_header",
    "pack_vnet_header_into",
    "parse_vnet_header",
]

# virtio_net.h flags.
VIRTIO_NET_HDR_F_NEEDS_CSUM: Final = 1
VIRTIO_NET_HDR_F_DATA_VALID: Final = 2
# virtio_net.h GSO types; GSO_ECN is a bit or-ed into the others.
VIRTIO_NET_HDR_GSO_NONE: Final = 0
VIRTIO_NET_HDR_GSO_TCPV4: Final = 1
VIRTIO_NET_HDR_GSO_UDP: Final = 3
VIRTIO_NET_HDR_GSO_TCPV6: Final = 4
VIRTIO_NET_HDR_GSO_UDP_L4: Final = 5
VIRTIO_NET_HDR_GSO_ECN: Final = 0x80

#: Bytes of the header (``TUNGETVNETHDRSZ`` returns 10 without num_buffers).
VNET_HEADER_LENGTH: Final = 10
#: A header saying "nothing to do": no checksum request, no segmentation.
VNET_HEADER_NONE: Final = bytes(VNET_HEADER_LENGTH)
#: Offset of the checksum field from the start of a TCP header (RFC 9293 §3.1).
CSUM_OFFSET_TCP: Final = 16
#: Offset of the checksum field from the start of a UDP header (RFC 768).
CSUM_OFFSET_UDP: Final = 6

_KNOWN_FLAGS: Final = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID
_KNOWN_GSO_TYPES: Final = frozenset(
    {
        VIRTIO_NET_HDR_GSO_NONE,
        VIRTIO_NET_HDR_GSO_TCPV4,
        VIRTIO_NET_HDR_GSO_UDP,
        VIRTIO_NET_HDR_GSO_TCPV6,
        VIRTIO_NET_HDR_GSO_UDP_L4,
    }
)
_HEADER: Final = struct.Struct("<BBHHHH")


@dataclass(frozen=True, slots=True)
class VnetHeader:
    """The six fields of a virtio_net_hdr.

    ``hdr_len`` is the length of the headers up to the transport payload,
    ``gso_size`` the payload bytes per segment, ``csum_start`` where
    checksumming starts (the transport header) and ``csum_offset`` where,
    from there, the checksum is stored.
    """

    flags: int = 0
    gso_type: int = VIRTIO_NET_HDR_GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    @property
    def needs_checksum(self) -> bool:
        """True when the packet's transport checksum is partial (pseudo-header only)."""
        return bool(self.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)

    @property
    def is_gso(self) -> bool:
        """True when the packet is a superpacket to be cut into ``gso_size`` pieces."""
        return self.gso_type & ~VIRTIO_NET_HDR_GSO_ECN != VIRTIO_NET_HDR_GSO_NONE


def parse_vnet_header(data: bytes | bytearray | memoryview) -> VnetHeader:
    """Parse the first ten bytes of ``data``.

    Unknown flag bits or GSO types are rejected (``"bad_vnet_header"``): the
    packet's layout could not be trusted. Raises :class:`WireError`.
    """
    if len(data) < VNET_HEADER_LENGTH:
        raise WireError(f"vnet header needs 10 bytes, got {len(data)}", "truncated")
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = _HEADER.unpack_from(data)
    if flags & ~_KNOWN_FLAGS:
        raise WireError(f"unknown vnet header flags {flags:#x}", "bad_vnet_header")
    if gso_type & ~VIRTIO_NET_HDR_GSO_ECN not in _KNOWN_GSO_TYPES:
        raise WireError(f"unknown GSO type {gso_type:#x}", "bad_vnet_header")
    return VnetHeader(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def build_vnet_header(header: VnetHeader) -> bytes:
    """Return the ten bytes of ``header``. Out-of-range fields raise :class:`ValueError`."""
    buffer = bytearray(VNET_HEADER_LENGTH)
    pack_vnet_header_into(buffer, 0, header)
    return bytes(buffer)


def pack_vnet_header_into(buffer: bytearray | memoryview, offset: int, header: VnetHeader) -> None:
    """Write ``header`` into ``buffer`` at ``offset`` (for preallocated send buffers)."""
    try:
        _HEADER.pack_into(
            buffer,
            offset,
            header.flags,
            header.gso_type,
            header.hdr_len,
            header.gso_size,
            header.csum_start,
            header.csum_offset,
        )
    except struct.error as error:
        raise ValueError(f"vnet header field out of range: {header}") from error

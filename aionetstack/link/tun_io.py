"""The TUN's per-packet system calls: one read, one gathering write.

:func:`read_packet`, :func:`write_packet` and :func:`write_offloaded` are the C functions of
``link/_tunio.c`` when that module was built (``ACCELERATED`` says so) and otherwise
their Python twins here, under one contract. The C read answers an empty queue with
``None``: through ``io.FileIO`` or ``os``, the ``EAGAIN`` that ends every batch of
reads builds an ``OSError`` (its message decoded from ``strerror``) only to drop it,
about a third of the cost of a read. The C write takes the header, the packet and
its payload views as they are (no tuple built per packet). :func:`write_offloaded`
builds the virtio_net_hdr of a packet whose checksum the kernel completes, in C
on the caller's stack, and writes it in the same call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from ..wire.vnet import (
    CSUM_OFFSET_TCP,
    CSUM_OFFSET_UDP,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VnetHeader,
    build_vnet_header,
)

__all__ = [
    "ACCELERATED",
    "offload_header",
    "read_packet",
    "read_packet_python",
    "write_offloaded",
    "write_offloaded_python",
    "write_packet",
    "write_packet_python",
]

Buffer = bytes | bytearray | memoryview


def read_packet_python(fd: int, buffer: bytearray | memoryview) -> int | None:
    """One ``read(2)`` of ``fd`` into ``buffer``: the byte count, or ``None`` when the
    queue is empty (``EAGAIN``). ``OSError`` for any other failure (``EINTR`` is
    retried, PEP 475)."""
    try:
        return os.readv(fd, (buffer,))
    except BlockingIOError:
        return None


def write_packet_python(
    fd: int, head: Buffer | None, packet: Buffer, tail: tuple[Buffer, ...]
) -> int:
    """One ``writev(2)`` of ``head`` (``None``: nothing), ``packet``, then ``tail``'s
    buffers: the bytes written less ``head``'s length. ``OSError`` on failure
    (``BlockingIOError`` for a full queue; ``EINVAL`` past the kernel's ``IOV_MAX``
    buffers)."""
    if not isinstance(tail, tuple):
        raise TypeError("tail must be a tuple")
    if head is None:
        return os.writev(fd, (packet, *tail))
    return os.writev(fd, (head, packet, *tail)) - len(head)


#: The IP protocol numbers of TCP and UDP (IANA; RFC 9293 §3.1, RFC 768).
_IPPROTO_TCP: Final = 6
_IPPROTO_UDP: Final = 17
#: The IPv6 fixed header's length (RFC 8200 §3): no extension headers are offloaded.
_IPV6_HEADER_LENGTH: Final = 40
#: The largest link framing write_offloaded takes (a TAP's Ethernet header is 14 bytes).
_MAX_LINK_HEADER: Final = 0xFF


def offload_header(packet: Buffer, segment_size: int, link_header: int = 0) -> bytes:
    """The virtio_net_hdr asking the kernel to complete the TCP or UDP checksum of the IP
    packet at ``packet[link_header:]`` (and with ``segment_size`` > 0, to cut its TCP
    payload into segments of that size); its offsets count the ``link_header`` bytes.

    ValueError for a packet that is not TCP or UDP over IPv4/IPv6 (no extension
    headers), for UDP to be cut, and for one too short to hold its headers.
    """
    if not 0 <= segment_size <= 0xFFFF:
        raise ValueError("segment_size must be in 0..65535")
    if not 0 <= link_header <= _MAX_LINK_HEADER:
        raise ValueError("link_header must be in 0..255")
    ip = memoryview(packet)[link_header:]
    try:
        version = ip[0] >> 4
        if version == 4:
            start, protocol = (ip[0] & 0x0F) * 4, ip[9]
        elif version == 6:
            start, protocol = _IPV6_HEADER_LENGTH, ip[6]
        else:
            raise ValueError("not an IP packet")
        transport_length = (ip[start + 12] >> 4) * 4 if protocol == _IPPROTO_TCP else 8
    except IndexError:
        raise ValueError("the packet ends inside its headers") from None
    if protocol == _IPPROTO_TCP:
        offset = CSUM_OFFSET_TCP
    elif protocol == _IPPROTO_UDP and not segment_size:
        offset = CSUM_OFFSET_UDP
    else:
        raise ValueError("only TCP (and unsegmented UDP) can be offloaded")
    gso_type = VIRTIO_NET_HDR_GSO_NONE
    if segment_size:
        gso_type = VIRTIO_NET_HDR_GSO_TCPV4 if version == 4 else VIRTIO_NET_HDR_GSO_TCPV6
    headers_length = link_header + start + transport_length if segment_size else 0
    return build_vnet_header(VnetHeader(
        VIRTIO_NET_HDR_F_NEEDS_CSUM, gso_type, headers_length, segment_size,
        link_header + start, offset,
    ))  # fmt: skip


def write_offloaded_python(
    fd: int, packet: Buffer, segment_size: int, tail: tuple[Buffer, ...], link_header: int
) -> int:
    """:func:`write_packet_python` of ``packet`` and ``tail`` behind
    :func:`offload_header`'s virtio_net_hdr: the bytes written less the header's.
    ValueError (nothing written) for a packet the device cannot complete."""
    return write_packet_python(fd, offload_header(packet, segment_size, link_header), packet, tail)


read_packet: Callable[[int, bytearray | memoryview], int | None]
write_packet: Callable[[int, Buffer | None, Buffer, tuple[Buffer, ...]], int]
write_offloaded: Callable[[int, Buffer, int, tuple[Buffer, ...], int], int]
try:
    from ._tunio import read_packet, write_offloaded, write_packet
except ImportError:  # built without a C compiler: the same contract in Python
    read_packet, write_packet = read_packet_python, write_packet_python
    write_offloaded = write_offloaded_python

#: The C reads and writes (``link/_tunio.c``) are in use.
ACCELERATED: Final = read_packet is not read_packet_python

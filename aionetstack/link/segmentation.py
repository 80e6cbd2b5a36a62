"""Software GSO: a link without offload completes checksums and cuts TCP super-packets.

A link that lacks checksum and segmentation offload (``TunLink(offload=False)``,
a TAP without it) still tells the core ``transmit_offload``: the core then builds
one TCP segment of up to 64 KB (headers once, payload as views of the send buffer)
instead of one per MSS, and this module does, as late as possible, what a
device's TSO would: cut it into MSS-sized pieces and complete each checksum (as
Linux's ``skb_gso_segment`` / ``tcp_gso_segment`` do when a device lacks TSO).

The packets handed over follow ``Link.send_offloaded``'s contract (link/base.py):
an IPv4 or IPv6 packet (no IPv6 extension headers) carrying TCP or UDP whose
checksum field holds only the folded pseudo-header sum over the whole transport
length (``CHECKSUM_PARTIAL``). ``offset`` skips a link header (a TAP's Ethernet
header) in front of the IP header; it is copied onto every piece.

Each piece of a cut TCP packet gets (RFC 9293 §3.1, RFC 3168 §6.1.2, RFC 791 §3.1):

* its own sequence number, the IPv4 total length or IPv6 payload length, and an
  IPv4 identification one higher than the previous piece's (as Linux does for
  TSO; the packets carry DF, so the value only has to differ, RFC 6864 §4.1);
* FIN and PSH only on the last piece, CWR only on the first;
* the TCP checksum and the IPv4 header checksum, computed from sums of the fixed
  parts taken once (RFC 1071 §2: the sum is linear in the 16-bit words), so each
  piece costs one pass over its payload (``word_sum``, see wire/checksum.py).

:func:`cut_tcp_packets`, what the TUN link calls, returns the pieces whole; it is the
C cut of ``link/_gso.c`` when that module was built (``ACCELERATED``) and otherwise
:func:`cut_tcp`, the reference, with each piece joined.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Final

from ..wire.checksum import ones_complement_sum, word_sum

__all__ = ["ACCELERATED", "complete_checksum", "cut_tcp", "cut_tcp_packets"]

_native_cut: Callable[[bytes | bytearray | memoryview, int, tuple[bytes | memoryview, ...], int],
                      list[bytes]] | None  # fmt: skip
try:
    from ._gso import cut_tcp_packets as _native_cut
except ImportError:  # built without a C compiler: cut_tcp does the same
    _native_cut = None
#: :func:`cut_tcp_packets` runs the C cut of ``link/_gso.c``.
ACCELERATED: Final = _native_cut is not None

_IPPROTO_TCP: Final = 6
_IPPROTO_UDP: Final = 17
_IPV6_HEADER_LENGTH: Final = 40
#: RFC 9293 §3.1 / RFC 3168 §6.1: the control bits the cut moves between pieces.
_FIN: Final = 0x01
_PSH: Final = 0x08
_CWR: Final = 0x80
_MASK: Final = 0xFFFF
_SEQ_MASK: Final = 0xFFFFFFFF
_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")


def _ip_layout(packet: bytes | bytearray | memoryview, offset: int) -> tuple[int, int, int]:
    """(IP version, IP header length, transport protocol) of the packet at ``offset``.

    Raises ``ValueError`` for anything that is not IPv4/IPv6 carrying TCP or UDP.
    """
    first = packet[offset]
    version = first >> 4
    if version == 4:
        header_length, protocol = (first & 0x0F) * 4, packet[offset + 9]
        if header_length < 20:
            raise ValueError("IPv4 header length below 20 bytes")
    elif version == 6:
        header_length, protocol = _IPV6_HEADER_LENGTH, packet[offset + 6]
    else:
        raise ValueError(f"not an IP packet (version {version})")
    if protocol not in (_IPPROTO_TCP, _IPPROTO_UDP):
        raise ValueError(f"cannot complete a checksum for protocol {protocol}")
    return version, header_length, protocol


def complete_checksum(
    packet: bytes | bytearray | memoryview,
    tail: tuple[bytes | memoryview, ...] = (),
    offset: int = 0,
) -> bytearray:
    """The whole packet (``packet`` then ``tail``) with its TCP/UDP checksum completed.

    The field holds the pseudo-header sum already, so the checksum is the
    complement of the sum over the transport bytes as they are. A UDP checksum
    that computes to zero is sent as 0xFFFF (RFC 768). Raises ``ValueError`` for
    a packet that is not TCP or UDP over IPv4/IPv6.
    """
    _version, header_length, protocol = _ip_layout(packet, offset)
    data = bytearray(packet)
    for part in tail:
        data += part
    start = offset + header_length
    field = start + (16 if protocol == _IPPROTO_TCP else 6)
    if len(data) < field + 2:
        raise ValueError("transport header truncated")
    checksum = ~ones_complement_sum(memoryview(data)[start:]) & _MASK
    if checksum == 0 and protocol == _IPPROTO_UDP:
        checksum = _MASK
    _U16.pack_into(data, field, checksum)
    return data


def cut_tcp(
    packet: bytes | bytearray | memoryview,
    segment_size: int,
    tail: tuple[bytes | memoryview, ...] = (),
    offset: int = 0,
) -> Iterator[tuple[bytearray, bytes | memoryview]]:
    """Cut a partial-checksum TCP packet into pieces of ``segment_size`` payload bytes.

    Yields ``(headers, payload)`` per piece, first to last: the link header (the
    first ``offset`` bytes), IP and TCP headers with every field and checksum
    filled in, then the piece's payload (a view, no copy when the payload is one
    buffer). ``headers`` is one buffer reused for every piece: write (or copy) it
    before taking the next. Raises ``ValueError`` for a packet that is not TCP
    over IPv4/IPv6 or a ``segment_size`` below 1.
    """
    if segment_size < 1:
        raise ValueError(f"segment_size must be >= 1, got {segment_size}")
    version, ip_length, protocol = _ip_layout(packet, offset)
    if protocol != _IPPROTO_TCP:
        raise ValueError("only TCP packets are cut (UDP segmentation is not offered)")
    start = offset + ip_length
    tcp_length = (packet[start + 12] >> 4) * 4
    end = start + tcp_length
    if tcp_length < 20 or len(packet) < end:
        raise ValueError("TCP header truncated")
    headers = bytearray(packet[:end])
    rest = memoryview(packet)[end:]
    payload: bytes | memoryview
    if not tail:
        payload = rest
    elif not rest and len(tail) == 1:
        payload = memoryview(tail[0])
    else:
        payload = b"".join((rest, *tail))
    seq0 = _U32.unpack_from(headers, start + 4)[0]
    flags = headers[start + 13]
    # The sums of the parts every piece shares (RFC 1071 §2: the sum is linear), with the
    # fields that differ zeroed: sequence number, flags, checksum (TCP); length,
    # identification, checksum (IPv4 header); length (pseudo-header, RFC 9293 §3.1).
    if version == 4:
        pseudo = int.from_bytes(headers[offset + 12 : offset + 20], "big") + _IPPROTO_TCP
        identification0 = _U16.unpack_from(headers, offset + 4)[0]
        headers[offset + 2 : offset + 6] = bytes(4)
        headers[offset + 10 : offset + 12] = bytes(2)
        ip_sum = int.from_bytes(headers[offset:start], "big")
    else:
        pseudo = int.from_bytes(headers[offset + 8 : offset + 40], "big") + _IPPROTO_TCP
        identification0 = ip_sum = 0
    headers[start + 4 : start + 8] = bytes(4)
    headers[start + 13] = 0
    headers[start + 16 : start + 18] = bytes(2)
    fixed = pseudo + int.from_bytes(headers[start:end], "big")
    total = len(payload)
    # The IPv4 total length or IPv6 payload length of the largest piece (RFC 791 §3.1,
    # RFC 8200 §3) must fit its 16 bits.
    if (ip_length if version == 4 else 0) + tcp_length + min(segment_size, total) > _MASK:
        raise ValueError("a piece would be longer than the IP length field allows")
    last_start = ((total - 1) // segment_size) * segment_size if total else 0
    pack16 = _U16.pack_into
    pack32 = _U32.pack_into
    position = 0
    index = 0
    while True:
        piece = payload[position : position + segment_size]
        size = len(piece)
        seq = (seq0 + position) & _SEQ_MASK
        piece_flags = flags
        if position != last_start:
            piece_flags &= ~(_FIN | _PSH)
        if index:
            piece_flags &= ~_CWR
        segment_length = tcp_length + size
        value = fixed + segment_length + (seq >> 16) + (seq & _MASK) + piece_flags
        if size:
            value += word_sum(piece)
        folded = value % _MASK
        pack32(headers, start + 4, seq)
        headers[start + 13] = piece_flags
        # ~0 is written as 0xFFFF... and a zero sum as 0: both verify (RFC 1624 §3).
        pack16(headers, start + 16, ~folded & _MASK if folded else 0)
        if version == 4:
            length = ip_length + segment_length
            identification = (identification0 + index) & _MASK
            ip_value = (ip_sum + length + identification) % _MASK
            pack16(headers, offset + 2, length)
            pack16(headers, offset + 4, identification)
            pack16(headers, offset + 10, ~ip_value & _MASK if ip_value else 0)
        else:
            pack16(headers, offset + 4, segment_length)
        yield headers, piece
        position += segment_size
        index += 1
        if position >= total:
            return


def cut_tcp_packets(
    packet: bytes | bytearray | memoryview,
    segment_size: int,
    tail: tuple[bytes | memoryview, ...] = (),
    offset: int = 0,
) -> list[bytes]:
    """:func:`cut_tcp`'s pieces, each one ``bytes`` (headers then payload), first to last.

    Raises ``ValueError`` for what :func:`cut_tcp` refuses (or a packet too short to
    read, which :func:`cut_tcp` may report as ``IndexError``).
    """
    if _native_cut is not None:
        return _native_cut(packet, segment_size, tail, offset)
    return [
        bytes(headers) + piece for headers, piece in cut_tcp(packet, segment_size, tail, offset)
    ]

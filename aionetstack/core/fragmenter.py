"""Fragmentation on send (RFC 791 §3.2, RFC 8200 §4.5): pure functions, one datagram in,
its fragments out. Reassembly is ``core/fragments.py``'s.

Every fragment but the last carries a multiple of 8 payload bytes (offsets count
8-octet units) and the more-fragments flag. IPv4 fragments go without DF (the
datagram is being fragmented, RFC 1191 §3 applies to whole packets); IPv6 ones
carry a fragment header right after the fixed header (we add no other extension
headers, so the whole payload is the fragmentable part).
"""

from __future__ import annotations

import struct
from typing import Final

from ..wire import ipv4, ipv6

__all__ = ["FRAGMENT_HEADER_LENGTH", "fragment_ipv4", "fragment_ipv6"]

#: RFC 8200 §4.5: the fragment header is 8 bytes.
FRAGMENT_HEADER_LENGTH: Final = 8
#: The fixed IPv6 header (RFC 8200 §3): version/class/flow, length, next header, hop limit,
#: source, destination.
IPV6_FIXED_HEADER: Final = struct.Struct("!IHBB16s16s")
_IPV6_FRAGMENT: Final = struct.Struct("!BBHI")
_UNIT: Final = 8


def fragment_ipv4(
    source: bytes, destination: bytes, protocol: int, payload: bytes | bytearray | memoryview,
    *, ttl: int, mtu: int, identification: int,
) -> list[bytes]:  # fmt: skip
    """The IPv4 fragments of one datagram for a path of ``mtu`` bytes.

    ValueError for a datagram longer than 65,535 bytes (RFC 791 §3.1).
    """
    if ipv4.IPV4_HEADER_LENGTH + len(payload) > 0xFFFF:
        raise ValueError(f"IPv4 datagram of {len(payload)} payload bytes exceeds 65535")
    step = (mtu - ipv4.IPV4_HEADER_LENGTH) // _UNIT * _UNIT
    view = memoryview(payload)
    fragments: list[bytes] = []
    for offset in range(0, len(view), step):
        piece = view[offset : offset + step]
        header = ipv4.IPv4Header(
            source, destination, protocol, ttl, identification=identification,
            dont_fragment=False, more_fragments=offset + step < len(view),
            fragment_offset=offset,
        )  # fmt: skip
        fragments.append(ipv4.build_ipv4_header(header, len(piece)) + bytes(piece))
    return fragments


def fragment_ipv6(
    source: bytes, destination: bytes, protocol: int, payload: bytes | bytearray | memoryview,
    *, hop_limit: int, mtu: int, identification: int,
) -> list[bytes]:  # fmt: skip
    """The IPv6 fragments of one packet's payload for a path of ``mtu`` bytes.

    ValueError for a payload longer than 65,535 bytes (no jumbograms).
    """
    if len(payload) > 0xFFFF:
        raise ValueError(f"IPv6 payload of {len(payload)} bytes exceeds 65535")
    step = (mtu - ipv6.IPV6_HEADER_LENGTH - FRAGMENT_HEADER_LENGTH) // _UNIT * _UNIT
    view = memoryview(payload)
    fragments: list[bytes] = []
    for offset in range(0, len(view), step):
        piece = view[offset : offset + step]
        more = offset + step < len(view)
        header = IPV6_FIXED_HEADER.pack(
            6 << 28, FRAGMENT_HEADER_LENGTH + len(piece), ipv6.NEXT_HEADER_FRAGMENT,
            hop_limit, source, destination,
        )  # fmt: skip
        fragment = _IPV6_FRAGMENT.pack(protocol, 0, offset | int(more), identification)
        fragments.append(b"".join((header, fragment, piece)))
    return fragments

"""IPv6 headers (RFC 8200): the fixed header and the extension-header chain.

Addresses are kept as 16 packed bytes. Hop-by-hop, routing and destination
options headers are skipped to reach the upper-layer protocol; a fragment
header stops the walk and is reported, not reassembled.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .error import WireError

__all__ = [
    "IPV6_HEADER_LENGTH",
    "NEXT_HEADER_DESTINATION_OPTIONS",
    "NEXT_HEADER_FRAGMENT",
    "NEXT_HEADER_HOP_BY_HOP",
    "NEXT_HEADER_NONE",
    "NEXT_HEADER_ROUTING",
    "ExtensionChain",
    "FragmentHeader",
    "IPv6Header",
    "build_ipv6",
    "build_ipv6_header",
    "parse_ipv6",
    "skip_extension_headers",
]

#: RFC 8200 §3: the fixed header is 40 bytes.
IPV6_HEADER_LENGTH: Final = 40
#: RFC 8200 §4 extension header types (IANA "IPv6 Extension Header Types").
NEXT_HEADER_HOP_BY_HOP: Final = 0
NEXT_HEADER_ROUTING: Final = 43
NEXT_HEADER_FRAGMENT: Final = 44
NEXT_HEADER_NONE: Final = 59
NEXT_HEADER_DESTINATION_OPTIONS: Final = 60

_SKIPPED_EXTENSIONS: Final = frozenset(
    {NEXT_HEADER_HOP_BY_HOP, NEXT_HEADER_ROUTING, NEXT_HEADER_DESTINATION_OPTIONS}
)
#: RFC 8200 §4.5: the fragment header is always 8 bytes.
_FRAGMENT_HEADER_LENGTH: Final = 8
#: RFC 8200 §4.3/§4.4/§4.6: Hdr Ext Len counts 8-octet units after the first 8.
_EXTENSION_UNIT: Final = 8
_FRAGMENT_OFFSET_MASK: Final = 0xFFF8
_FRAGMENT_MORE: Final = 0x0001
_MAX_PAYLOAD_LENGTH: Final = 0xFFFF
_ADDRESS_LENGTH: Final = 16

_HEADER: Final = struct.Struct("!IHBB16s16s")
_FRAGMENT: Final = struct.Struct("!BxHI")


@dataclass(slots=True)
class IPv6Header:
    """The fields of the IPv6 fixed header (RFC 8200 §3)."""

    source: bytes
    destination: bytes
    next_header: int
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0
    payload_length: int = 0


@dataclass(slots=True)
class FragmentHeader:
    """An IPv6 fragment header (RFC 8200 §4.5). ``offset`` is in bytes."""

    next_header: int
    offset: int
    more_fragments: bool
    identification: int


@dataclass(slots=True)
class ExtensionChain:
    """Where the extension headers end.

    ``protocol`` is the upper-layer next header value (or the one after the
    fragment header), ``payload`` its bytes, ``header_length`` the bytes of
    extension headers passed over, and ``fragment`` the fragment header that
    stopped the walk, if any.
    """

    protocol: int
    payload: memoryview
    header_length: int
    fragment: FragmentHeader | None = None


def parse_ipv6(data: bytes | bytearray | memoryview) -> tuple[IPv6Header, memoryview]:
    """Parse the fixed header; return it and the payload (extension headers included).

    Validates the version and that the payload length fits in the bytes
    given; bytes past it (link padding) are cut off. Raises :class:`WireError`.
    """
    view = memoryview(data)
    if len(view) < IPV6_HEADER_LENGTH:
        raise WireError(f"IPv6 packet of {len(view)} bytes is shorter than a header", "truncated")
    first_word, payload_length, next_header, hop_limit, source, destination = _HEADER.unpack_from(
        view
    )
    version = first_word >> 28
    if version != 6:
        raise WireError(f"IP version {version} is not 6", "bad_version")
    end = IPV6_HEADER_LENGTH + payload_length
    if end > len(view):
        raise WireError(f"payload length {payload_length} > {len(view) - 40} bytes", "truncated")
    header = IPv6Header(
        source=source,
        destination=destination,
        next_header=next_header,
        hop_limit=hop_limit,
        traffic_class=(first_word >> 20) & 0xFF,
        flow_label=first_word & 0xFFFFF,
        payload_length=payload_length,
    )
    return header, view[IPV6_HEADER_LENGTH:end]


def skip_extension_headers(
    next_header: int, payload: bytes | bytearray | memoryview
) -> ExtensionChain:
    """Walk past hop-by-hop, routing and destination options headers.

    The walk stops at the first other header: an upper-layer protocol, "no
    next header", or a fragment header (parsed and reported). A hop-by-hop
    header anywhere but first is rejected (RFC 8200 §4.1), as is any header
    running past the payload. Raises :class:`WireError`.
    """
    view = memoryview(payload)
    offset = 0
    while next_header in _SKIPPED_EXTENSIONS:
        if next_header == NEXT_HEADER_HOP_BY_HOP and offset != 0:
            raise WireError("hop-by-hop options header not first", "bad_extension")
        if offset + 2 > len(view):
            raise WireError("extension header truncated", "truncated")
        length = (view[offset + 1] + 1) * _EXTENSION_UNIT
        if offset + length > len(view):
            raise WireError(f"extension header of {length} bytes truncated", "truncated")
        next_header = view[offset]
        offset += length
    if next_header != NEXT_HEADER_FRAGMENT:
        return ExtensionChain(next_header, view[offset:], offset)
    if offset + _FRAGMENT_HEADER_LENGTH > len(view):
        raise WireError("fragment header truncated", "truncated")
    inner, offset_flags, identification = _FRAGMENT.unpack_from(view, offset)
    fragment = FragmentHeader(
        next_header=inner,
        offset=offset_flags & _FRAGMENT_OFFSET_MASK,
        more_fragments=bool(offset_flags & _FRAGMENT_MORE),
        identification=identification,
    )
    offset += _FRAGMENT_HEADER_LENGTH
    return ExtensionChain(inner, view[offset:], offset, fragment)


def build_ipv6_header(header: IPv6Header, payload_length: int) -> bytes:
    """Return the 40 header bytes for a payload of the given length.

    ``header.payload_length`` is ignored and computed. Bad values raise
    :class:`ValueError`.
    """
    if len(header.source) != _ADDRESS_LENGTH or len(header.destination) != _ADDRESS_LENGTH:
        raise ValueError("IPv6 addresses must be 16 packed bytes")
    if not 0 <= payload_length <= _MAX_PAYLOAD_LENGTH:
        raise ValueError(f"IPv6 payload length {payload_length} is not in 0..65535")
    if not 0 <= header.traffic_class <= 0xFF:
        raise ValueError("traffic_class must fit in 8 bits")
    if not 0 <= header.flow_label <= 0xFFFFF:
        raise ValueError("flow_label must fit in 20 bits")
    if not 0 <= header.next_header <= 0xFF or not 0 <= header.hop_limit <= 0xFF:
        raise ValueError("next_header and hop_limit must fit in 8 bits")
    first_word = (6 << 28) | (header.traffic_class << 20) | header.flow_label
    return _HEADER.pack(
        first_word,
        payload_length,
        header.next_header,
        header.hop_limit,
        header.source,
        header.destination,
    )


def build_ipv6(header: IPv6Header, payload: bytes | bytearray | memoryview) -> bytes:
    """Return a whole IPv6 packet: the fixed header then ``payload``."""
    return build_ipv6_header(header, len(payload)) + bytes(payload)

"""IPv6 receive checks (RFC 8200): the extension-header walk with its bounds.

The walk passes over hop-by-hop, destination options and routing headers and
stops at the upper-layer protocol or a fragment header. It is bounded in the
number of headers and their total length, since each costs work and a chain of
many tiny headers is a known way to hide the transport header from filters
(RFC 7112). What it refuses comes back as a :class:`ParameterProblem` to answer
with ICMPv6 (RFC 4443 §3.4) or, for a silently dropped chain, a reason name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..wire import ipv6

__all__ = [
    "MAX_EXTENSION_BYTES",
    "MAX_EXTENSION_HEADERS",
    "ExtensionWalk",
    "ParameterProblem",
    "walk_extension_headers",
]

#: Most extension headers walked before the upper layer (Linux bounds hop-by-hop and
#: destination options at 8 each: ``max_hbh_opts_number``/``max_dst_opts_number``).
MAX_EXTENSION_HEADERS: Final = 8
#: Most bytes of extension headers walked (RFC 8200 allows up to 2,048 per header;
#: a host needs far less, and RFC 7112 wants the whole chain in the first fragment).
MAX_EXTENSION_BYTES: Final = 1024

#: RFC 4443 §3.4 parameter problem codes.
CODE_ERRONEOUS_FIELD: Final = 0
CODE_UNRECOGNIZED_NEXT_HEADER: Final = 1
#: Offset of the Next Header field in the fixed header (RFC 8200 §3).
_FIXED_NEXT_HEADER_OFFSET: Final = 6
_UNIT: Final = 8
_FRAGMENT_HEADER_LENGTH: Final = 8


@dataclass(frozen=True, slots=True)
class ParameterProblem:
    """Why a packet is refused with ICMPv6 parameter problem (RFC 4443 §3.4).

    ``pointer`` is the offset, from the start of the packet, of the field in error.
    """

    code: int
    pointer: int
    reason: str


@dataclass(slots=True)
class ExtensionWalk:
    """Where the walk stopped.

    ``protocol`` is the upper-layer next header; ``offset`` where its bytes start
    in the IPv6 payload; ``pointer`` the packet offset of the Next Header field
    that named it (for an "unrecognized next header" answer); ``fragment`` the
    fragment header, if the walk stopped at one (``offset`` is then just past it).
    """

    protocol: int
    offset: int
    pointer: int
    fragment: ipv6.FragmentHeader | None = None


_OPTION_HEADERS: Final = frozenset(
    {ipv6.NEXT_HEADER_HOP_BY_HOP, ipv6.NEXT_HEADER_DESTINATION_OPTIONS}
)


def walk_extension_headers(
    next_header: int, payload: bytes | bytearray | memoryview
) -> ExtensionWalk | ParameterProblem | str:
    """Walk the chain after the fixed header; see the module docstring.

    Returns the walk, a :class:`ParameterProblem`, or a ``str`` drop reason
    (``"truncated"``, ``"too_many_extension_headers"``, ...). Never raises.
    """
    offset = 0
    pointer = _FIXED_NEXT_HEADER_OFFSET
    count = 0
    length_total = len(payload)
    while True:
        if next_header == ipv6.NEXT_HEADER_FRAGMENT:
            if offset + _FRAGMENT_HEADER_LENGTH > length_total:
                return "truncated"
            inner = payload[offset]
            flags = int.from_bytes(payload[offset + 2 : offset + 4], "big")
            identification = int.from_bytes(payload[offset + 4 : offset + 8], "big")
            fragment = ipv6.FragmentHeader(
                next_header=inner, offset=flags & 0xFFF8, more_fragments=bool(flags & 1),
                identification=identification,
            )  # fmt: skip
            return ExtensionWalk(inner, offset + _FRAGMENT_HEADER_LENGTH, offset + 40, fragment)
        if next_header not in _OPTION_HEADERS and next_header != ipv6.NEXT_HEADER_ROUTING:
            return ExtensionWalk(next_header, offset, pointer)
        if next_header == ipv6.NEXT_HEADER_HOP_BY_HOP and offset != 0:
            # RFC 8200 §4.1: hop-by-hop only right after the fixed header.
            return ParameterProblem(CODE_UNRECOGNIZED_NEXT_HEADER, pointer, "bad_extension")
        count += 1
        if count > MAX_EXTENSION_HEADERS:
            return "too_many_extension_headers"
        if offset + 2 > length_total:
            return "truncated"
        length = (payload[offset + 1] + 1) * _UNIT
        if offset + length > length_total:
            return "truncated"
        if offset + length > MAX_EXTENSION_BYTES:
            return "extension_headers_too_long"
        if next_header == ipv6.NEXT_HEADER_ROUTING:
            problem = _check_routing_header(payload, offset)
            if problem is not None:
                return problem
        pointer = 40 + offset
        next_header = payload[offset]
        offset += length


def _check_routing_header(
    payload: bytes | bytearray | memoryview, offset: int
) -> ParameterProblem | None:
    """RFC 8200 §4.4: a host is the final destination, so Segments Left must be 0.

    A routing header with segments left is one we would have to forward along:
    we are no router, so it is answered with parameter problem, code 0, pointing
    at the Routing Type field (as for a type we do not recognize).
    """
    if offset + 4 > len(payload):
        return None  # caught by the length check of the caller on the next turn
    segments_left = payload[offset + 3]
    if segments_left:
        return ParameterProblem(CODE_ERRONEOUS_FIELD, 40 + offset + 2, "routing_header")
    return None

"""The send path's IPv4 headers (RFC 791 §3.1): 20 bytes, no options, DF set, not a
fragment, the checksum computed from the fields.

Every packet the stack sends in plain IPv4 takes one of these.
:func:`simple_ipv4_header` is ``wire/_headers.c``'s ``ipv4_header`` when that module
was built (``ACCELERATED``) and otherwise :func:`simple_ipv4_header_python`, its
reference (compiled by mypyc, ``aionetstack/compiled.py``): the same bytes, held to it
by ``tests/wire/test_ipv4_send.py``. :func:`ipv4.build_ipv4_header
<.ipv4.build_ipv4_header>` builds any other header and checks its arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .ipv4 import FIXED_WORDS, FLAG_DF, HEADER, IPV4_HEADER_LENGTH

__all__ = [
    "ACCELERATED",
    "simple_ipv4_header",
    "simple_ipv4_header_python",
    "simple_ipv4_headers",
]

#: RFC 1071 §1: the ones' complement sum is the sum modulo 0xFFFF (0 read as 0xFFFF).
_ONES: Final = 0xFFFF


def _address_words(source: bytes, destination: bytes) -> int:
    """The four 16-bit words of two 4-byte addresses, summed (no big integer)."""
    return (
        (source[0] << 8 | source[1]) + (source[2] << 8 | source[3])
        + (destination[0] << 8 | destination[1]) + (destination[2] << 8 | destination[3])
    )  # fmt: skip


def simple_ipv4_header_python(  # noqa: PLR0917 - the C function's positional call
    source: bytes,
    destination: bytes,
    protocol: int,
    payload_length: int,
    ttl: int,
    identification: int,
) -> bytes:
    """A 20-byte header (no options, DF set, not a fragment) with its checksum.

    The caller guarantees valid arguments (4-byte addresses, 8-bit fields,
    ``20 + payload_length <= 65535``); the C function checks them too (ValueError).
    """
    total_length = IPV4_HEADER_LENGTH + payload_length
    # The header's 16-bit words summed modulo 0xFFFF are the fixed words, the variable
    # ones and the addresses' words, without packing twice. Never 0 (the version word is
    # in it), so the folded sum is 1..0xFFFF and its complement is the checksum.
    folded = (
        FIXED_WORDS + total_length + identification + (ttl << 8 | protocol)
        + _address_words(source, destination)
    ) % _ONES or _ONES  # fmt: skip
    return HEADER.pack(0x45, 0, total_length, identification, FLAG_DF, ttl, protocol,
                       _ONES - folded, source, destination)  # fmt: skip


simple_ipv4_header: Callable[[bytes, bytes, int, int, int, int], bytes]
try:
    from ._headers import ipv4_header as simple_ipv4_header
except ImportError:  # built without a C compiler: the same header in Python
    simple_ipv4_header = simple_ipv4_header_python

#: The C header (``wire/_headers.c``) is in use.
ACCELERATED: Final = simple_ipv4_header is not simple_ipv4_header_python


def simple_ipv4_headers(  # noqa: PLR0917
    source: bytes,
    destination: bytes,
    protocol: int,
    payload_lengths: list[int],
    ttl: int,
    identification: int,
) -> list[bytes]:
    """:func:`simple_ipv4_header` for packets sent in a row between the same addresses,
    their identifications counting up from ``identification`` (mod 2**16)."""
    header = simple_ipv4_header
    headers = []
    for payload_length in payload_lengths:
        headers.append(header(source, destination, protocol, payload_length, ttl, identification))
        identification = (identification + 1) & 0xFFFF
    return headers

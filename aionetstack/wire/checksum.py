"""The Internet checksum (RFC 1071), pseudo-headers and incremental update (RFC 1624).

The sum uses the identity 2**16 == 1 (mod 0xFFFF): the one's complement sum of
16-bit words equals the big-endian integer of the data modulo 0xFFFF, with the
one exception that a non-zero sum of "negative zero" comes out as 0 and must
read 0xFFFF (see ``reference/limits.md`` §4). ``int.from_bytes`` does the word
walking in C, which makes this the fastest stdlib way to checksum.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "checksum_update",
    "internet_checksum",
    "ones_complement_sum",
    "pseudo_header_sum",
]

_MASK: Final = 0xFFFF


def ones_complement_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """Return the folded (not complemented) one's complement sum of ``data``.

    ``initial`` is a folded partial sum to add, such as a pseudo-header sum.
    An odd trailing byte is padded with zero on the right (RFC 1071 §4.1).
    The result is in ``0..0xFFFF``; it is 0 only when everything summed is zero.
    """
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8
    value += initial
    folded = value % _MASK
    if folded == 0 and value:
        return _MASK
    return folded


def internet_checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """Return the Internet checksum of ``data`` (RFC 1071): the complemented sum.

    To verify, checksum the whole header/packet with its checksum field in place:
    a correct one gives 0.
    """
    return ~ones_complement_sum(data, initial) & _MASK


def pseudo_header_sum(source: bytes, destination: bytes, protocol: int, length: int) -> int:
    """Folded sum of the IPv4 (RFC 793 §3.1) or IPv6 (RFC 8200 §8.1) pseudo-header.

    ``source``/``destination`` are 4 or 16 packed bytes; ``length`` is the
    upper-layer length. Both layouts sum to the same value, so one function serves.
    """
    value = int.from_bytes(source, "big") + int.from_bytes(destination, "big") + protocol + length
    folded = value % _MASK
    if folded == 0 and value:
        return _MASK
    return folded


def checksum_update(checksum: int, old_word: int, new_word: int) -> int:
    """Update ``checksum`` after a 16-bit field changed (RFC 1624 eqn. 3).

    ``HC' = ~(~HC + ~m + m')``; avoids the -0 pitfall of eqn. 2.
    """
    total = (~checksum & _MASK) + (~old_word & _MASK) + new_word
    total = (total & _MASK) + (total >> 16)
    total = (total & _MASK) + (total >> 16)
    return ~total & _MASK

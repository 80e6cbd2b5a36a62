"""The Internet checksum (RFC 1071), pseudo-headers and incremental update (RFC 1624).

Every sum here starts from :func:`word_sum`: the one's complement sum of a
buffer's big-endian 16-bit words, the one per-byte loop of the checksum. It is
the C function of ``wire/_csum.c`` when that module was built (``pip install``
builds it where a C compiler is found; ``ACCELERATED`` says so) and otherwise
:func:`word_sum_python`, which uses the identity 2**16 == 1 (mod 0xFFFF): the
sum of 16-bit words equals the big-endian integer of the data modulo 0xFFFF,
``int.from_bytes`` walking the words in C. Both meet one contract, so callers
reduce either with ``% 0xFFFF``, minding the one exception: a non-zero sum of
"negative zero" comes out of the modulo as 0 and must read 0xFFFF (see
``reference/limits.md`` §4). For 1,448 bytes the C sum takes about 0.2 µs
here, the Python one about 5 µs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

__all__ = [
    "ACCELERATED",
    "checksum_update",
    "internet_checksum",
    "ones_complement_sum",
    "pseudo_header_sum",
    "word_sum",
    "word_sum_python",
]

_MASK: Final = 0xFFFF
#: Folding points for the pure-Python sum of a packet of about an MTU: its integer is
#: cut in halves twice at multiples of 16 bits (2**16 == 1 mod 0xFFFF, so the sum of
#: the halves is congruent), which leaves the caller's modulo a quarter of the digits.
_FOLD_SIZES: Final = range(1024, 1501)
_FOLD_HIGH: Final = 5792
_FOLD_LOW: Final = 2896
_FOLD_HIGH_MASK: Final = (1 << _FOLD_HIGH) - 1
_FOLD_LOW_MASK: Final = (1 << _FOLD_LOW) - 1


def word_sum_python(data: bytes | bytearray | memoryview) -> int:
    """The contract of :func:`word_sum`, in Python: a non-negative int congruent
    modulo 0xFFFF to the sum of ``data``'s big-endian 16-bit words (an odd last
    byte padded with zero on the right, RFC 1071 §4.1), 0 only when every byte
    is 0. Not reduced below 0x10000: callers take ``% 0xFFFF`` once."""
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8
    if len(data) in _FOLD_SIZES:
        value = (value >> _FOLD_HIGH) + (value & _FOLD_HIGH_MASK)
        value = (value >> _FOLD_LOW) + (value & _FOLD_LOW_MASK)
    return value


word_sum: Callable[[bytes | bytearray | memoryview], int]
try:
    from ._csum import word_sum
except ImportError:  # built without a C compiler: the same contract in Python
    word_sum = word_sum_python
#: The C word sum (``wire/_csum.c``) is in use.
ACCELERATED: Final = word_sum is not word_sum_python


def ones_complement_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """Return the folded (not complemented) one's complement sum of ``data``.

    ``initial`` is a folded partial sum to add, such as a pseudo-header sum.
    An odd trailing byte is padded with zero on the right (RFC 1071 §4.1).
    The result is in ``0..0xFFFF``; it is 0 only when everything summed is zero.
    """
    value = word_sum(data) + initial
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

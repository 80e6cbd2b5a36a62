"""Sequence number arithmetic modulo 2**32 (RFC 9293 §3.4; RFC 1982 serial numbers).

Compiled by mypyc (``aionetstack/compiled.py``): the TCP connection compares and
subtracts sequence numbers on every segment, and a compiled caller reaches these as
native calls. ``wire/tcp.py`` exports them too.
"""

from __future__ import annotations

from typing import Final

__all__ = ["seq_add", "seq_diff", "seq_geq", "seq_gt", "seq_leq", "seq_lt"]

_SEQ_MASK: Final = (1 << 32) - 1
_SEQ_HALF: Final = 1 << 31


def seq_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**32."""
    return (a + n) & _SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` in ``-2**31 .. 2**31-1`` (positive when ``a`` is after ``b``)."""
    return ((a - b + _SEQ_HALF) & _SEQ_MASK) - _SEQ_HALF


def seq_lt(a: int, b: int) -> bool:
    """``a < b`` modulo 2**32."""
    return 0 < ((b - a) & _SEQ_MASK) < _SEQ_HALF


def seq_leq(a: int, b: int) -> bool:
    """``a <= b`` modulo 2**32."""
    return ((b - a) & _SEQ_MASK) < _SEQ_HALF


def seq_gt(a: int, b: int) -> bool:
    """``a > b`` modulo 2**32."""
    return 0 < ((a - b) & _SEQ_MASK) < _SEQ_HALF


def seq_geq(a: int, b: int) -> bool:
    """``a >= b`` modulo 2**32."""
    return ((a - b) & _SEQ_MASK) < _SEQ_HALF

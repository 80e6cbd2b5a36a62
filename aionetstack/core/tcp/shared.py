"""One object for a value many connections hold alike, instead of one copy each.

An ``int`` above 256 or a ``bytes`` address is a separate 32- to 37-byte object every
time it is computed or parsed, so each connection would otherwise keep its own copy of
its MSS, initial window, pseudo-header sum and addresses. :func:`shared` returns the
first object seen with an equal value. Used at connection setup, and where a value
changes rarely (the largest window offered only grows), never per packet.
The table is bounded: once full, new values are returned as they are (still correct,
merely not shared), so hostile peers cannot grow it.
"""

from __future__ import annotations

from typing import Final, TypeVar

__all__ = ["shared"]

#: Distinct values kept (MSS values, windows, peer and local addresses, pseudo sums).
SHARED_LIMIT: Final = 4096

_T = TypeVar("_T", int, bytes)
_table: dict[object, object] = {}


def shared(value: _T) -> _T:
    """An object equal to ``value``: the same one for every equal value while room lasts."""
    found = _table.get(value)
    if found is not None:
        return found  # type: ignore[return-value]
    if len(_table) < SHARED_LIMIT:
        _table[value] = value
    return value

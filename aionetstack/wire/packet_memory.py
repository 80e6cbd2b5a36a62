"""Memory that a link reads packets into and lends out as views (see ``link/receive_pool``).

A :class:`PacketMemory` is a ``bytearray`` with one promise attached: its owner writes
into it again only once no view of it is alive. A ``memoryview`` of one is therefore as
stable as a view of ``bytes`` for whoever holds it, and may be kept without a copy
(``core/tcp/receive.py`` keeps such views in the receive buffer).
"""

from __future__ import annotations

__all__ = ["PacketMemory"]


class PacketMemory(bytearray):
    """A ``bytearray`` never written while a view of it exists (the owner's promise)."""

    __slots__ = ()

"""What the core hands its driver to put on the link."""

from __future__ import annotations

from typing import Final, NamedTuple, TypeAlias

__all__ = ["COMPLETE", "EmittedSegment", "OffloadedPacket"]

#: The ``segment_size`` of a packet whose checksums are all computed (``StackCore.send_ip``).
COMPLETE: Final = -1


#: A transport segment for ``emit_many``: its header (checksum field holding the pseudo-header
#: sum), the TSO segment size (0: not cut), the payload's parts and their total length.
EmittedSegment: TypeAlias = tuple[bytes, int, tuple[bytes | memoryview, ...], int]


class OffloadedPacket(NamedTuple):
    """An IP packet for ``Link.send_offloaded``.

    Its TCP/UDP checksum field holds only the folded pseudo-header sum, for the
    device to complete (``CHECKSUM_PARTIAL``); a TCP packet longer than the MTU
    is cut by the device into segments of ``segment_size`` payload bytes (TSO).
    """

    packet: bytes
    segment_size: int
    #: Payload parts that follow ``packet`` (its IP and TCP headers) on the wire, kept as
    #: the views of the send buffer they are: the link gathers them (``writev``) and
    #: nothing copies a 64 KB segment in Python. Empty: ``packet`` is the whole packet.
    tail: tuple[bytes | memoryview, ...] = ()

    def whole(self) -> bytes:
        """The packet as one ``bytes`` (a copy when there is a tail)."""
        return b"".join((self.packet, *self.tail)) if self.tail else self.packet

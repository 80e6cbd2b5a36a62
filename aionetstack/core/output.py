"""What the core hands its driver to put on the link."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeAlias

__all__ = ["COMPLETE", "CallbackOutput", "EmittedSegment", "OffloadedPacket", "SegmentOutput"]

#: The ``segment_size`` of a packet whose checksums are all computed (``StackCore.send_ip``).
COMPLETE: Final = -1


#: A transport segment for ``emit_many``: its header (checksum field holding the pseudo-header
#: sum), the TSO segment size (0: not cut), the payload's parts and their total length.
EmittedSegment: TypeAlias = tuple[bytes, int, tuple[bytes | memoryview, ...], int]


class OffloadedPacket:
    """An IP packet for ``Link.send_offloaded``.

    Its TCP/UDP checksum field holds only the folded pseudo-header sum, for the
    device to complete (``CHECKSUM_PARTIAL``); a TCP packet longer than the MTU
    is cut by the device into segments of ``segment_size`` payload bytes (TSO).
    Compiled by mypyc with the IP output that makes one per packet sent: a plain
    class with three fields costs a fraction of a ``NamedTuple``'s construction.
    Equal when its three fields are.
    """

    __slots__ = ("packet", "segment_size", "tail")

    def __init__(
        self, packet: bytes, segment_size: int, tail: tuple[bytes | memoryview, ...] = ()
    ) -> None:
        self.packet = packet
        self.segment_size = segment_size
        #: Payload parts that follow ``packet`` (its IP and TCP headers) on the wire, kept
        #: as the views of the send buffer they are: the link gathers them (``writev``)
        #: and nothing copies a 64 KB segment in Python. Empty: ``packet`` is the whole
        #: packet.
        self.tail = tail

    def whole(self) -> bytes:
        """The packet as one ``bytes`` (a copy when there is a tail)."""
        return b"".join((self.packet, *self.tail)) if self.tail else self.packet

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OffloadedPacket):
            return NotImplemented
        return (
            self.packet == other.packet
            and self.segment_size == other.segment_size
            and self.tail == other.tail
        )

    def __hash__(self) -> int:
        return hash((self.packet, self.segment_size, self.tail))

    def __repr__(self) -> str:
        return (
            f"OffloadedPacket(packet={self.packet!r}, segment_size={self.segment_size}, "
            f"tail={self.tail!r})"
        )


class SegmentOutput:
    """Where a transport hands the segments it finished: the IP layer's output for one
    protocol (``StackCore.transport_output``), or a test's or simulator's callables
    (:class:`CallbackOutput`).

    A concrete class, not a Protocol, so that compiled callers reach it natively. Its
    ``emit`` raises ``NotImplementedError`` until a subclass overrides it.
    """

    def emit(
        self,
        source: bytes,
        destination: bytes,
        segment: bytes,
        segment_size: int = COMPLETE,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        """Send ``segment`` (then ``tail``) from ``source`` to ``destination``.

        ``segment_size`` other than :data:`COMPLETE`: its checksum field holds only the
        pseudo-header sum, for the link to complete; above 0, the link cuts it into
        segments of that much payload (``StackCore.send_ip``).
        """
        raise NotImplementedError

    def emit_many(self, source: bytes, destination: bytes, segments: list[EmittedSegment]) -> None:
        """Send partial-checksum segments of one connection in order (the bulk path);
        here each goes to :meth:`emit` in turn."""
        for header, segment_size, parts, _ in segments:
            self.emit(source, destination, header, segment_size, parts)


class CallbackOutput(SegmentOutput):
    """A :class:`SegmentOutput` that calls ``emit(source, destination, segment[,
    segment_size, tail])`` (``segment_size`` and ``tail`` passed only for
    partial-checksum segments) and, when given, ``emit_many(source, destination,
    segments)``."""

    def __init__(
        self,
        emit: Callable[..., None],
        emit_many: Callable[[bytes, bytes, list[EmittedSegment]], None] | None = None,
    ) -> None:
        self.callback = emit
        self.many_callback = emit_many

    def emit(
        self,
        source: bytes,
        destination: bytes,
        segment: bytes,
        segment_size: int = COMPLETE,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        if segment_size == COMPLETE:
            self.callback(source, destination, segment)
        else:
            self.callback(source, destination, segment, segment_size, tail)

    def emit_many(self, source: bytes, destination: bytes, segments: list[EmittedSegment]) -> None:
        if self.many_callback is None:
            super().emit_many(source, destination, segments)
        else:
            self.many_callback(source, destination, segments)

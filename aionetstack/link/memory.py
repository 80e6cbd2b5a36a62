"""Two in-process links wired back to back, optionally through seeded impairments.

``MemoryLink.pair()`` is the link for tests, examples and the no-privilege demo:
what one end sends, the other receives. Each end owns a non-blocking Linux
``eventfd`` that becomes readable when something is queued for it, so an event
loop watches it exactly like a TUN's fd.

Both ends must be driven from one thread and on one clock (``now`` values are
compared across the two ends when packets are delayed).
"""

from __future__ import annotations

import os
from collections import deque
from typing import Final

from .impair import ImpairedPath, Impairment

__all__ = ["DEFAULT_MEMORY_QUEUE_LIMIT", "MemoryLink"]

#: Packets queued towards an end without impairment before tail drop: a bound on
#: memory (like a NIC ring), deep enough that a live driver never reaches it.
DEFAULT_MEMORY_QUEUE_LIMIT: Final = 65536
#: RFC 791 §3.2: every IPv4 host must handle 68-byte datagrams without fragmenting.
_MIN_MTU: Final = 68
#: The largest IPv4 total length (RFC 791 §3.1), and the largest packet an IPv6
#: link can carry without a jumbogram.
_MAX_MTU: Final = 65535
_EVENT_ONE: Final = (1).to_bytes(8, "little")

_ImpairmentSpec = Impairment | tuple[Impairment | None, Impairment | None] | None


class _Inbox:
    """Packets on their way to one end: a FIFO, or an :class:`ImpairedPath`."""

    __slots__ = ("path", "queue", "queue_dropped")

    def __init__(self, impairment: Impairment | None, salt: str) -> None:
        self.path = ImpairedPath(impairment, salt) if impairment is not None else None
        self.queue: deque[bytes] = deque()
        self.queue_dropped = 0

    def put(self, packet: bytes, now: float) -> None:
        if self.path is not None:
            self.path.submit(packet, now)
        elif len(self.queue) >= DEFAULT_MEMORY_QUEUE_LIMIT:
            self.queue_dropped += 1
        else:
            self.queue.append(packet)

    def take(self, limit: int, now: float) -> list[bytes]:
        if self.path is not None:
            return self.path.release(now, limit)
        queue = self.queue
        count = min(limit, len(queue))
        return [queue.popleft() for _ in range(count)]

    def due_time(self) -> float | None:
        """When the next packet is deliverable (``-inf``: it already is), or None."""
        if self.path is not None:
            return self.path.next_release()
        return -float("inf") if self.queue else None

    def counters(self) -> dict[str, int]:
        if self.path is not None:
            return self.path.counters()
        return {"queue_dropped": self.queue_dropped}


class MemoryLink:
    """One end of an in-process link. Build two with :meth:`pair`.

    ``send`` queues a packet for the peer and signals its eventfd;
    ``receive_batch(limit, now)`` hands over the packets due by ``now`` and
    drains the eventfd (re-signalling it if due packets are left behind
    ``limit``); ``get_timer`` is when the next held-back packet becomes due.
    Packets longer than ``mtu`` are dropped and counted, as a NIC would.
    """

    __slots__ = (
        "_closed",
        "_eventfd",
        "_inbox",
        "_peer",
        "_salt",
        "_signalled",
        "max_packet_size",
        "mtu",
        "receive_checksums_partial",
        "received_bytes",
        "received_packets",
        "send_dropped_closed",
        "send_dropped_oversize",
        "sent_bytes",
        "sent_packets",
        "transmit_offload",
    )

    def __init__(self, mtu: int, inbox: _Inbox, offload: bool = False) -> None:
        """Use :meth:`pair`; a lone end has no peer and drops what it sends."""
        self.mtu = mtu
        # With offload the wire is perfect memory, as Linux treats loopback and veth:
        # checksums are left partial and super-packets pass whole (GSO/GRO pass-through).
        self.transmit_offload = offload
        self.receive_checksums_partial = offload
        self.max_packet_size = _MAX_MTU if offload else mtu
        self._inbox = inbox
        self._peer: MemoryLink | None = None
        self._eventfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._signalled = False
        self._closed = False
        self.sent_packets = 0
        self.sent_bytes = 0
        self.received_packets = 0
        self.received_bytes = 0
        self.send_dropped_oversize = 0
        self.send_dropped_closed = 0

    @classmethod
    def pair(
        cls, mtu: int = 1500, impairment: _ImpairmentSpec = None, *, offload: bool | None = None
    ) -> tuple[MemoryLink, MemoryLink]:
        """Return two ends ``(a, b)`` wired together.

        ``impairment`` is None (a perfect wire), one :class:`Impairment` applied
        to each direction (each with its own random stream), or a tuple
        ``(a_to_b, b_to_a)`` whose items may be None.

        ``offload`` (default: on for a perfect wire, off with any impairment)
        lets the stacks skip transport checksums and pass TCP super-packets of
        up to 64 KB whole, as Linux does over loopback and veth. It cannot be
        combined with an impairment: loss and corruption act per real packet.
        """
        if isinstance(mtu, bool) or not isinstance(mtu, int):
            raise TypeError(f"mtu must be an int, got {type(mtu).__name__}")
        if not _MIN_MTU <= mtu <= _MAX_MTU:
            raise ValueError(f"mtu must be in {_MIN_MTU}..{_MAX_MTU} bytes, got {mtu}")
        a_to_b, b_to_a = _split_impairment(impairment)
        impaired = a_to_b is not None or b_to_a is not None
        if offload is None:
            offload = not impaired
        elif offload and impaired:
            raise ValueError("offload=True cannot be combined with an impairment")
        end_a = cls(mtu, _Inbox(b_to_a, "b->a"), offload)
        end_b = cls(mtu, _Inbox(a_to_b, "a->b"), offload)
        end_a._peer = end_b
        end_b._peer = end_a
        return end_a, end_b

    # -- the Link protocol ------------------------------------------------------------

    def fileno(self) -> int:
        """The eventfd: readable while packets may be waiting for this end."""
        self._check_open()
        return self._eventfd

    def send(self, packet: bytes | bytearray | memoryview, now: float) -> None:
        """Queue ``packet`` for the peer; oversize packets and a closed peer are counted drops."""
        self._deliver(packet, self.mtu, now)

    def send_offloaded(
        self,
        packet: bytes | bytearray | memoryview,
        segment_size: int,
        now: float,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        """Queue a partial-checksum packet (up to ``max_packet_size``) for the peer, whole."""
        if not self.transmit_offload:
            raise ValueError("this MemoryLink pair was made without offload")
        self._deliver(b"".join((packet, *tail)) if tail else packet, self.max_packet_size, now)

    def _deliver(self, packet: bytes | bytearray | memoryview, limit: int, now: float) -> None:
        self._check_open()
        size = len(packet)
        if size > limit:
            self.send_dropped_oversize += 1
            return
        peer = self._peer
        if peer is None or peer._closed:
            self.send_dropped_closed += 1
            return
        self.sent_packets += 1
        self.sent_bytes += size
        peer._inbox.put(bytes(packet), now)
        peer._signal()

    def receive_batch(self, limit: int, now: float) -> list[bytes]:
        """Up to ``limit`` packets due by ``now``; never blocks."""
        self._check_open()
        if self._signalled:
            self._drain()
        packets = self._inbox.take(limit, now)
        if packets:
            self.received_packets += len(packets)
            self.received_bytes += sum(map(len, packets))
        due = self._inbox.due_time()
        if due is not None and due <= now:
            self._signal()  # stopped at the limit: more are deliverable
        return packets

    def get_timer(self) -> float | None:
        """When the next packet held back for this end becomes due, or None."""
        if self._closed:
            return None
        due = self._inbox.due_time()
        if due is None or due == -float("inf"):
            return None  # nothing held, or deliverable now (the fd is readable)
        return due

    def statistics(self) -> dict[str, int]:
        """Counters of this end; ``in_*`` describe the path towards it (its impairment)."""
        stats = {
            "sent_packets": self.sent_packets,
            "sent_bytes": self.sent_bytes,
            "received_packets": self.received_packets,
            "received_bytes": self.received_bytes,
            "send_dropped_oversize": self.send_dropped_oversize,
            "send_dropped_closed": self.send_dropped_closed,
        }
        for name, value in self._inbox.counters().items():
            stats[f"in_{name}"] = value
        return stats

    def close(self) -> None:
        """Close the eventfd; the peer's later sends are counted drops. Idempotent."""
        if self._closed:
            return
        self._closed = True
        os.close(self._eventfd)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    # -- internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on a closed MemoryLink")

    def _signal(self) -> None:
        if not self._signalled:
            os.write(self._eventfd, _EVENT_ONE)
            self._signalled = True

    def _drain(self) -> None:
        try:
            os.read(self._eventfd, 8)
        except BlockingIOError:
            pass
        self._signalled = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._eventfd}"
        return f"<MemoryLink mtu={self.mtu} {state}>"


def _split_impairment(spec: _ImpairmentSpec) -> tuple[Impairment | None, Impairment | None]:
    if spec is None or isinstance(spec, Impairment):
        return spec, spec
    if isinstance(spec, tuple) and len(spec) == 2:
        for item in spec:
            if item is not None and not isinstance(item, Impairment):
                raise TypeError(
                    f"impairment tuple items must be Impairment or None, got {type(item).__name__}"
                )
        return spec[0], spec[1]
    raise TypeError(
        "impairment must be None, an Impairment, or a tuple (a_to_b, b_to_a), "
        f"got {type(spec).__name__}"
    )

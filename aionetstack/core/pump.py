"""The loop-independent half of a driver: moving packets and events between a core and a link.

Both drivers (``aio/driver.py`` on asyncio, ``anyio/driver.py`` on anyio's asyncio
or trio backend) do the same four things at the same moments; only *when* they
are woken differs. :class:`Pump` is those four things, so the two stay identical:

* :meth:`Pump.receive` takes one bounded batch from the link into the core (through
  software GRO, ``core/gro.py``, on a link without receive offload);
* :meth:`Pump.process` delivers every pending event, then puts every packet the
  core has on the link, until both are empty (one flush per batch or tick);
* :meth:`Pump.expire` runs the core's due timers (and says whether the link
  holds packets that are due now);
* :meth:`Pump.deadline` is the single deadline for the whole stack: the earlier
  of the core's and the link's.

It performs no I/O of its own: it calls the link object it is given, which is
duck-typed by :class:`PacketPort` (``link/`` owns the file descriptors, and
``core`` never imports it). A bug inside the core or a dispatcher is reported
through ``report`` and counted, never allowed to wedge the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .ethernet import EthernetHost
from .gro import Coalescer
from .output import OffloadedPacket
from .stack import StackCore

__all__ = ["EventHandlers", "PacketPort", "Pump", "PumpedCore"]


class PumpedCore(Protocol):
    """What the pump calls on its core (:class:`StackCore` or :class:`EthernetHost`)."""

    def receive_packet(self, data: bytes | bytearray | memoryview, now: float) -> None: ...

    def packets_to_send(self, now: float) -> list[bytes | OffloadedPacket]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


class PacketPort(Protocol):
    """What the pump needs from a link (a subset of ``link.base.Link``)."""

    def receive_batch(self, limit: int, now: float) -> Sequence[bytes | memoryview]: ...

    def send(self, packet: bytes, now: float) -> None: ...

    def send_offloaded(
        self,
        packet: bytes,
        segment_size: int,
        now: float,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None: ...

    def get_timer(self) -> float | None: ...


class EventHandlers:
    """A driver's dispatch of the core's events: calling it with an event calls the
    handler given for the event's exact class; an event of another class is dropped.

    Compiled with the pump, which calls it natively (``Pump``'s ``dispatch``).
    ``EventHandlers({})`` drops every event.
    """

    __slots__ = ("_handlers",)

    def __init__(self, handlers: Mapping[type, Callable[[Any], None]]) -> None:
        self._handlers: dict[type, Callable[[Any], None]] = dict(handlers)

    def __call__(self, event: object) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)


class Pump:
    """Move packets and events between ``core`` and ``link``; ``dispatch`` gets every event.

    ``report(doing, error)`` is told about exceptions the core or ``dispatch``
    raised (bugs); :attr:`internal_errors` counts them.
    """

    __slots__ = (
        "_batch",
        "_core",
        "_dispatch",
        "_events",
        "_gro",
        "_link",
        "_processing",
        "_report",
        "internal_errors",
    )

    def __init__(
        self,
        core: StackCore | EthernetHost,
        link: PacketPort,
        dispatch: EventHandlers,
        report: Callable[[str, Exception], None],
        *,
        batch: int = 256,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self._core: PumpedCore = core
        #: The core's event queue (the same deque for the core's life).
        self._events = core.events
        self._link = link
        self._dispatch = dispatch
        self._report = report
        self._batch = batch
        self._processing = False
        #: Software GRO (config.ip.gro): merges the data of a link that hands over
        #: MTU-sized packets, and thins pure ACKs on every link.
        self._gro: Coalescer | None = None
        if isinstance(core, StackCore) and core.config.ip.gro:
            self._gro = Coalescer(
                core,
                verify=core.verify_transport_checksums,
                merge=not getattr(link, "receive_checksums_partial", False),
            )
            core.add_statistics("gro", self._gro.statistics)
        #: Exceptions the core or a dispatcher raised (bugs), reported and survived.
        self.internal_errors = 0

    def receive(self, now: float) -> int:
        """Feed up to one batch of the link's packets to the core; return how many.

        A full batch may leave packets behind: the link's fd then stays
        readable (the ``Link`` contract), so the driver comes back after the
        other ready work.
        """
        packets = self._link.receive_batch(self._batch, now)
        if self._gro is not None and len(packets) > 1:
            self._gro.receive(packets, now, self._internal_error)
            return len(packets)
        receive = self._core.receive_packet
        for packet in packets:
            try:
                receive(packet, now)
            except Exception as error:  # a core bug must not wedge the loop
                self._internal_error("receiving a packet", error)
        return len(packets)

    def expire(self, now: float) -> bool:
        """Run the core's timers due at ``now``; True when the link has packets due too."""
        try:
            self._core.handle_timer(now)
        except Exception as error:
            self._internal_error("handling a timer", error)
        link_deadline = self._link.get_timer()
        return link_deadline is not None and link_deadline <= now

    def process(self, now: float) -> None:
        """Deliver every pending event and put every pending packet on the link.

        Re-entered from a callback (a dispatcher that flushes at once), it returns: the
        loop already running below delivers and sends what that callback produced.
        """
        if self._processing:
            return
        self._processing = True
        try:
            self._process(now)
        finally:
            self._processing = False

    def _process(self, now: float) -> None:
        core = self._core
        events = self._events
        dispatch = self._dispatch
        link = self._link
        send = link.send
        send_offloaded = link.send_offloaded
        while True:
            while events:
                event = events.popleft()
                try:
                    dispatch(event)
                except Exception as error:
                    self._internal_error(f"delivering {type(event).__name__}", error)
            try:
                packets = core.packets_to_send(now)
            except Exception as error:
                self._internal_error("collecting output", error)
                packets = []
            for packet in packets:
                if isinstance(packet, bytes):
                    send(packet, now)
                elif packet.tail:  # OffloadedPacket: headers, then views of the send buffer
                    send_offloaded(packet.packet, packet.segment_size, now, packet.tail)
                else:  # OffloadedPacket: the link completes the checksum, maybe segments
                    send_offloaded(packet.packet, packet.segment_size, now)
            if not events:
                break

    def deadline(self) -> float | None:
        """The earliest of the core's timer and the link's (held-back packets), or None."""
        deadline = self._core.get_timer()
        link_deadline = self._link.get_timer()
        if link_deadline is not None and (deadline is None or link_deadline < deadline):
            return link_deadline
        return deadline

    def _internal_error(self, doing: str, error: Exception) -> None:
        self.internal_errors += 1
        self._report(doing, error)

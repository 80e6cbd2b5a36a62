"""The asyncio driver: binds a sans-I/O ``StackCore`` and a ``Link`` to a running loop.

One reader callback on the link's fd drains it in bounded batches, feeds every
packet to the core, delivers the events, flushes the output once and re-arms a
single ``call_at`` timer for the whole stack (DESIGN.md §2). Application
writes ask for one coalesced flush per loop tick with :meth:`request_flush`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..core.ethernet import EthernetHost
from ..core.stack import StackCore
from ..link.base import Link

__all__ = ["AsyncioDriver"]


class AsyncioDriver:
    """Run ``core`` over ``link`` on ``loop``; ``dispatch`` receives every core event."""

    __slots__ = (
        "_batch",
        "_core",
        "_dispatch",
        "_flush_pending",
        "_link",
        "_loop",
        "_running",
        "_timer_deadline",
        "_timer_handle",
        "internal_errors",
    )

    def __init__(
        self,
        core: StackCore | EthernetHost,
        link: Link,
        loop: asyncio.AbstractEventLoop,
        dispatch: Callable[[object], None],
        *,
        batch: int = 256,
    ) -> None:
        self._core = core
        self._link = link
        self._loop = loop
        self._dispatch = dispatch
        self._batch = batch
        self._flush_pending = False
        self._timer_handle: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._running = False
        #: Exceptions the core or a dispatcher raised (bugs), reported and survived.
        self.internal_errors = 0

    def start(self) -> None:
        """Start watching the link."""
        self._running = True
        self._loop.add_reader(self._link.fileno(), self._on_readable)
        self._rearm_timer()

    def stop(self) -> None:
        """Stop watching the link and cancel the timer. Idempotent."""
        if not self._running:
            return
        self._running = False
        self._loop.remove_reader(self._link.fileno())
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None

    def request_flush(self) -> None:
        """Ask for one flush at the end of this loop tick (coalesces many writes)."""
        if not self._flush_pending and self._running:
            self._flush_pending = True
            self._loop.call_soon(self._on_flush)

    def flush_now(self) -> None:
        """Deliver pending events and put pending output on the link immediately."""
        if self._running:
            self._process(self._loop.time())

    # -- callbacks ----------------------------------------------------------------

    def _on_readable(self) -> None:
        now = self._loop.time()
        packets = self._link.receive_batch(self._batch, now)
        receive = self._core.receive_packet
        for packet in packets:
            try:
                receive(packet, now)
            except Exception as error:  # a core bug must not wedge the loop
                self._internal_error("receiving a packet", error)
        # A full batch may leave packets behind: the fd then stays readable (the Link
        # contract), so the loop calls us again after the other ready callbacks.
        self._process(now)

    def _on_flush(self) -> None:
        self._flush_pending = False
        if self._running:
            self._process(self._loop.time())

    def _on_timer(self) -> None:
        self._timer_handle = None
        self._timer_deadline = None
        if not self._running:
            return
        now = self._loop.time()
        try:
            self._core.handle_timer(now)
        except Exception as error:
            self._internal_error("handling a timer", error)
        link_deadline = self._link.get_timer()
        if link_deadline is not None and link_deadline <= now:
            self._on_readable()  # the link holds packets that are now due
        else:
            self._process(now)

    # -- the one place output happens ----------------------------------------------

    def _process(self, now: float) -> None:
        core = self._core
        dispatch = self._dispatch
        send = self._link.send
        send_offloaded = self._link.send_offloaded
        while True:
            event = core.next_event()
            while event is not None:
                try:
                    dispatch(event)
                except Exception as error:
                    self._internal_error(f"delivering {type(event).__name__}", error)
                event = core.next_event()
            try:
                packets = core.packets_to_send(now)
            except Exception as error:
                self._internal_error("collecting output", error)
                packets = []
            for packet in packets:
                if isinstance(packet, bytes):
                    send(packet, now)
                else:  # OffloadedPacket: the link completes the checksum, maybe segments
                    send_offloaded(packet.packet, packet.segment_size, now)
            if not core.events:
                break
        self._rearm_timer()

    def _internal_error(self, doing: str, error: Exception) -> None:
        """Report a bug inside the stack to the loop's handler, count it, and carry on."""
        self.internal_errors += 1
        self._loop.call_exception_handler({
            "message": f"aionetstack: internal error while {doing}", "exception": error,
        })  # fmt: skip

    def _rearm_timer(self) -> None:
        if not self._running:
            return
        deadline = self._core.get_timer()
        link_deadline = self._link.get_timer()
        if link_deadline is not None and (deadline is None or link_deadline < deadline):
            deadline = link_deadline
        if deadline == self._timer_deadline:
            return
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        self._timer_deadline = deadline
        if deadline is not None:
            self._timer_handle = self._loop.call_at(deadline, self._on_timer)

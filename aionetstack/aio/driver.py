"""The asyncio driver: binds a sans-I/O ``StackCore`` and a ``Link`` to a running loop.

One reader callback on the link's fd drains it in bounded batches, feeds every
packet to the core, delivers the events, flushes the output once and re-arms a
single ``call_at`` timer for the whole stack (DESIGN.md §2). Application
writes ask for one coalesced flush per loop tick with :meth:`request_flush`
(a ``call_soon``). A stream server's answer leaves in the loop iteration in which
its task wrote it: delivering the request asked for a flush after the task's wake-up,
so that flush runs right after the task, and the answers of every task woken in the
same pass leave with it. A write with no flush pending waits for the next iteration.
What happens at
each wake-up is :class:`~aionetstack.core.pump.Pump`'s, shared with the anyio
driver; this module only decides *when*, with asyncio callbacks.

The loop timer is only ever moved earlier: when the earliest deadline moves
later (a delayed ACK or RTO pushed back by every transaction), the armed timer
stays and, when it fires early, the core finds nothing due and it is re-armed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..core.ethernet import EthernetHost
from ..core.pump import EventHandlers, Pump
from ..core.stack import StackCore
from ..link.base import Link

__all__ = ["AsyncioDriver"]


class AsyncioDriver:
    """Run ``core`` over ``link`` on ``loop``; ``dispatch`` receives every core event."""

    __slots__ = (
        "_flush_pending",
        "_link",
        "_loop",
        "_on_link_error",
        "_pump",
        "_running",
        "_timer_deadline",
        "_timer_handle",
        "link_errors",
    )

    def __init__(
        self,
        core: StackCore | EthernetHost,
        link: Link,
        loop: asyncio.AbstractEventLoop,
        dispatch: EventHandlers,
        *,
        batch: int = 256,
        on_link_error: Callable[[OSError], None] | None = None,
    ) -> None:
        self._link = link
        self._loop = loop
        self._pump = Pump(core, link, dispatch, self._report, batch=batch)
        self._flush_pending = False
        self._timer_handle: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._running = False
        #: The link failed for good (an OSError from receive or send): the driver stopped.
        self.link_errors = 0
        self._on_link_error = on_link_error

    @property
    def internal_errors(self) -> int:
        """Exceptions the core or a dispatcher raised (bugs), reported and survived."""
        return self._pump.internal_errors

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
        try:
            self._pump.receive(now)
        except OSError as error:
            self._link_failed(error)
            return
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
        if self._pump.expire(now):
            self._on_readable()  # the link holds packets that are now due
        else:
            self._process(now)

    # -- the one place output happens ----------------------------------------------

    def _process(self, now: float) -> None:
        try:
            self._pump.process(now)
        except OSError as error:
            self._link_failed(error)
            return
        self._rearm_timer()

    def _link_failed(self, error: OSError) -> None:
        """The link raised (a device that is gone, not one that is merely down: links
        count those drops themselves). Stop watching it, so a dead fd that polls as
        readable cannot spin the loop, and hand the error to the owner."""
        if not self._running:
            return
        self.link_errors += 1
        self._running = False
        try:
            self._loop.remove_reader(self._link.fileno())
        except (OSError, ValueError):
            pass  # the fd is already unusable
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        if self._on_link_error is not None:
            self._on_link_error(error)
        else:
            self._loop.call_exception_handler({
                "message": "aionetstack: the link failed; the stack stopped", "exception": error,
            })  # fmt: skip

    def _report(self, doing: str, error: Exception) -> None:
        """Report a bug inside the stack to the loop's handler (the pump counts it)."""
        self._loop.call_exception_handler({
            "message": f"aionetstack: internal error while {doing}", "exception": error,
        })  # fmt: skip

    def _rearm_timer(self) -> None:
        if not self._running:
            return
        deadline = self._pump.deadline()
        current = self._timer_deadline
        if deadline is None or (current is not None and current <= deadline):
            return  # the armed timer (if any) fires no later than needed; early is harmless
        if self._timer_handle is not None:
            self._timer_handle.cancel()
        self._timer_deadline = deadline
        self._timer_handle = self._loop.call_at(deadline, self._on_timer)

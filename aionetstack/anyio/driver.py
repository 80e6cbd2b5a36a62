"""The anyio driver: a ``StackCore`` and a ``Link`` run by tasks, on asyncio or trio.

Three tasks in one task group, each as small as the asyncio driver's callbacks
(what happens at a wake-up is :class:`~aionetstack.core.pump.Pump`'s, shared
with ``aio/driver.py``):

* the reader waits for the link's fd to become readable (``anyio.wait_readable``),
  takes one bounded batch into the core, then delivers events and flushes once;
  after a full batch it lets the other tasks run and drains on without waiting;
* the timer sleeps in one cancel scope whose deadline *moves* to the stack's
  single earliest deadline (the core's timers and the link's held-back packets);
  when the deadline passes it runs the due timers;
* the flusher waits for :meth:`AnyioDriver.request_flush`: every application
  write asks for a flush, and all the writes made before the flusher next runs
  go out in one flush.

Times are ``anyio.current_time()``: the running loop's clock on asyncio,
trio's clock on trio.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import anyio
import anyio.abc
import anyio.lowlevel

from ..core.ethernet import EthernetHost
from ..core.pump import EventHandlers, Pump
from ..core.stack import StackCore
from ..link.base import Link

__all__ = ["AnyioDriver"]

logger = logging.getLogger("aionetstack")


class AnyioDriver:
    """Run ``core`` over ``link`` under anyio; ``dispatch`` receives every core event.

    Start it with ``await task_group.start(driver.run)``; :meth:`stop` ends it.
    """

    __slots__ = (
        "_batch",
        "_deadline",
        "_finished",
        "_flush_event",
        "_flush_pending",
        "_link",
        "_on_link_error",
        "_pump",
        "_running",
        "_scope",
        "_timer_scope",
        "link_errors",
    )

    def __init__(
        self,
        core: StackCore | EthernetHost,
        link: Link,
        dispatch: EventHandlers,
        *,
        batch: int = 256,
        on_link_error: Callable[[OSError], None] | None = None,
    ) -> None:
        self._link = link
        self._batch = batch
        self._pump = Pump(core, link, dispatch, self._report, batch=batch)
        self._flush_pending = False
        self._flush_event: anyio.Event | None = None
        self._deadline = math.inf
        self._timer_scope: anyio.CancelScope | None = None
        self._scope: anyio.CancelScope | None = None
        self._finished: anyio.Event | None = None
        self._running = False
        self._on_link_error = on_link_error
        #: The link raised (it is gone): the driver stopped.
        self.link_errors = 0

    @property
    def internal_errors(self) -> int:
        """Exceptions the core or a dispatcher raised (bugs), logged and survived."""
        return self._pump.internal_errors

    @property
    def running(self) -> bool:
        return self._running

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Drive the stack until :meth:`stop` (or cancellation)."""
        if self._scope is not None:
            raise RuntimeError("this driver has already run")
        self._flush_event = anyio.Event()
        self._finished = anyio.Event()
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                self._running = True
                async with anyio.create_task_group() as group:
                    group.start_soon(self._read_loop)
                    group.start_soon(self._timer_loop)
                    group.start_soon(self._flush_loop)
                    self._rearm()
                    task_status.started()
        finally:
            self._running = False
            self._finished.set()

    def stop(self) -> None:
        """Stop the driver's tasks (they end at their next checkpoint). Idempotent."""
        self._running = False
        if self._scope is not None:
            self._scope.cancel()

    async def wait_stopped(self) -> None:
        """Wait until :meth:`run` has returned (the link's fd is no longer watched)."""
        if self._finished is not None:
            await self._finished.wait()

    def request_flush(self) -> None:
        """Ask for one flush soon; many requests before it runs make one flush."""
        if not self._flush_pending and self._running:
            self._flush_pending = True
            assert self._flush_event is not None
            self._flush_event.set()

    def flush_now(self) -> None:
        """Deliver pending events and put pending output on the link immediately."""
        if self._running:
            self._process(anyio.current_time())

    # -- the three tasks ------------------------------------------------------------

    async def _read_loop(self) -> None:
        fd = self._link.fileno()
        pump = self._pump
        batch = self._batch
        while self._running:
            await anyio.wait_readable(fd)
            while self._running:
                now = anyio.current_time()
                try:
                    taken = pump.receive(now)
                except OSError as error:
                    self._link_failed(error)
                    return
                self._process(now)
                if taken < batch:
                    break  # empty, or a link's byte budget (a TUN's): the fd says which
                # A full batch: more may be waiting. Let the other tasks run, then go on
                # draining without asking the loop to watch the fd again.
                await anyio.lowlevel.checkpoint()

    async def _timer_loop(self) -> None:
        while True:
            with anyio.CancelScope(deadline=self._deadline) as scope:
                self._timer_scope = scope
                try:
                    await anyio.sleep_forever()
                finally:
                    self._timer_scope = None
            # Only the deadline ends the sleep (an outer cancellation propagates).
            self._deadline = math.inf
            now = anyio.current_time()
            if self._pump.expire(now):
                try:
                    self._pump.receive(now)  # the link holds packets that are now due
                except OSError as error:
                    self._link_failed(error)
                    return
            self._process(now)

    async def _flush_loop(self) -> None:
        while True:
            assert self._flush_event is not None
            await self._flush_event.wait()
            self._flush_event = anyio.Event()
            self._flush_pending = False
            self._process(anyio.current_time())

    # -- helpers ----------------------------------------------------------------------

    def _process(self, now: float) -> None:
        try:
            self._pump.process(now)
        except OSError as error:
            self._link_failed(error)
            return
        self._rearm()

    def _link_failed(self, error: OSError) -> None:
        """The link raised (a device that is gone, not one that is merely down: links
        count those drops themselves): stop, and hand the error to the owner."""
        if not self._running:
            return
        self.link_errors += 1
        self.stop()
        if self._on_link_error is not None:
            self._on_link_error(error)
        else:
            logger.error("aionetstack: the link failed; the stack stopped: %s", error)

    def _rearm(self) -> None:
        """Move the timer's deadline to the stack's earliest one."""
        deadline = self._pump.deadline()
        value = math.inf if deadline is None else deadline
        if value == self._deadline:
            return
        self._deadline = value
        scope = self._timer_scope
        if scope is not None:
            scope.deadline = value

    def _report(self, doing: str, error: Exception) -> None:
        logger.error("aionetstack: internal error while %s", doing, exc_info=error)

"""The stub resolver (``names.StubResolver``) run by anyio tasks over the stack.

The same sans-I/O machine the asyncio stack drives (``aio/resolver.py``), bound
to anyio: each ``SendDatagram`` gets a fresh UDP endpoint of the stack on a
random ephemeral port (RFC 5452 §10), unconnected so the machine sees, checks
and counts datagrams from anywhere, and a task that hands it every datagram;
each ``OpenStream`` a task with a TCP connection through the stack. One task
sleeps in a cancel scope whose deadline follows the machine's earliest timer.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.lowlevel

from ..names import Lookup, OpenStream, Release, SendDatagram, StubResolver
from .connection import AsyncConnection
from .udp import UdpQueue

if TYPE_CHECKING:
    from ..core.stack import StackCore
    from .driver import AnyioDriver

__all__ = ["AnyioResolver"]

#: Datagrams held per query socket (a reply and a few strays).
_QUERY_QUEUE = 8


class _Waiting:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = anyio.Event()


class AnyioResolver:
    """Runs one :class:`StubResolver` over ``core`` with tasks in ``group``."""

    def __init__(self, machine: StubResolver, core: StackCore, driver: AnyioDriver) -> None:
        self.machine = machine
        self._core = core
        self._driver = driver
        self._group: anyio.abc.TaskGroup | None = None
        self._scopes: dict[int, anyio.CancelScope] = {}
        self._queues: dict[int, UdpQueue] = {}
        self._deadline = math.inf
        self._timer_scope: anyio.CancelScope | None = None
        self._run_scope = anyio.CancelScope()
        self._closed = False

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """The resolver's own task group and timer, until :meth:`close`."""
        with self._run_scope:
            async with anyio.create_task_group() as group:
                self._group = group
                task_status.started()
                while True:
                    with anyio.CancelScope(deadline=self._deadline) as scope:
                        self._timer_scope = scope
                        try:
                            await anyio.sleep_forever()
                        finally:
                            self._timer_scope = None
                    # A deadline may fire a little early (the loop's clock resolution).
                    now = max(anyio.current_time(), self._deadline)
                    self._deadline = math.inf
                    self.machine.handle_timer(now=now)
                    self.pump()

    async def resolve(self, name: str, rdtypes: Sequence[int]) -> Lookup:
        """Resolve ``name`` for ``rdtypes`` (ValueError for a name that cannot be asked)."""
        if self._closed or self._group is None:
            raise RuntimeError("the stack is not running")
        lookup = self.machine.lookup(name, rdtypes, now=anyio.current_time())
        waiting = _Waiting()
        lookup.user_data = waiting
        self.pump()
        try:
            if lookup.user_data is waiting:  # not answered at once (hosts table, cache)
                await waiting.event.wait()
            else:
                await anyio.lowlevel.checkpoint()
        except BaseException:
            self.machine.cancel(lookup)
            self.pump()
            raise
        return lookup

    def pump(self) -> None:
        """Carry out the machine's commands, finish lookups, move the timer."""
        machine = self.machine
        for command in machine.commands():
            if isinstance(command, SendDatagram):
                self._send_datagram(command)
            elif isinstance(command, OpenStream):
                self._start(command.token, self._stream, command)
            elif isinstance(command, Release):
                self._release(command.token)
        while (lookup := machine.next_event()) is not None:
            waiting = lookup.user_data
            lookup.user_data = None
            if isinstance(waiting, _Waiting):
                waiting.event.set()
        when = machine.get_timer()
        deadline = math.inf if when is None else when
        if deadline != self._deadline:
            self._deadline = deadline
            if self._timer_scope is not None:
                self._timer_scope.deadline = deadline

    def close(self) -> None:
        """Stop every query (the stack is closing)."""
        self._closed = True
        for token in list(self._scopes) + list(self._queues):
            self._release(token)
        self._run_scope.cancel()

    # -- inside -------------------------------------------------------------------

    def _start(self, token: int, function: object, command: object) -> None:
        assert self._group is not None
        scope = anyio.CancelScope()
        self._scopes[token] = scope

        async def run() -> None:
            with scope:
                await function(command)  # type: ignore[operator]
            self._scopes.pop(token, None)

        self._group.start_soon(run)

    def _send_datagram(self, command: SendDatagram) -> None:
        endpoint = self._core.udp.bind(None, 0, None)  # a random ephemeral port
        queue = UdpQueue(self._driver, endpoint, _QUERY_QUEUE)
        self._queues[command.token] = queue
        try:
            endpoint.sendto(command.payload, (command.server, command.port))
        except OSError:
            pass  # no route: the try times out and the machine moves on (as glibc)
        self._driver.request_flush()
        self._start(command.token, self._datagrams, (command.token, queue))

    async def _datagrams(self, item: tuple[int, UdpQueue]) -> None:
        token, queue = item
        while True:
            try:
                data, (host, port) = await queue.receive()
            except OSError:
                return  # closed (released)
            source = (ipaddress.ip_address(host).packed, port)
            self.machine.receive_datagram(token, data, source, now=anyio.current_time())
            self.pump()

    async def _stream(self, command: OpenStream) -> None:
        core = self._core
        connection: AsyncConnection | None = None
        try:
            route = core.routes.route(command.server)
            tcp = core.tcp.connect(route.source, command.server, command.port,
                                   anyio.current_time())  # fmt: skip
            connection = AsyncConnection(self._driver, tcp)
            self._driver.request_flush()
            await connection.wait_connected()
            await connection.send_all(memoryview(command.payload))
            while data := await connection.receive(0x10002):
                self.machine.receive_stream(command.token, data, now=anyio.current_time())
                self.pump()
                if command.token not in self._scopes:
                    return  # settled or moved on
        except OSError:
            pass  # refused, reset, unreachable: the machine moves to the next server
        finally:
            if connection is not None:
                connection.close()
        if self._scopes.pop(command.token, None) is not None:
            self.machine.stream_closed(command.token, now=anyio.current_time())
            self.pump()

    def _release(self, token: int) -> None:
        queue = self._queues.pop(token, None)
        if queue is not None:
            queue.close()
        scope = self._scopes.pop(token, None)
        if scope is not None:
            scope.cancel()

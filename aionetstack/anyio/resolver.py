"""The stub resolver under anyio (asyncio or trio): the same machine as the asyncio face.

``AnyioResolver`` drives a :class:`~aionetstack.names.StubResolver` with the
stack's own sockets: a fresh unconnected UDP endpoint on a random ephemeral
port per try (a reader task hands every datagram, with its source, to the
machine, which checks and counts it), a stack TCP connection per truncated
answer, and one timer task whose cancel-scope deadline follows the machine's
earliest deadline. Tasks run in the stack's task group.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

import anyio

from ..names import Lookup, OpenStream, Release, SendDatagram, StubResolver
from .udp import UdpQueue

__all__ = ["AnyioResolver"]


class ResolverHost(Protocol):
    """What the resolver needs from the stack."""

    def open_udp(
        self, local_host: str | None, local_port: int, remote: tuple[bytes, int] | None
    ) -> UdpQueue: ...

    def start_soon(self, function: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None: ...

    async def connect_tcp(self, remote_host: str, remote_port: int) -> Any: ...


class AnyioResolver:
    """Runs one :class:`StubResolver` over an :class:`~aionetstack.anyio.AnyioStack`."""

    def __init__(self, machine: StubResolver, host: ResolverHost) -> None:
        self.machine = machine
        self._host = host
        self._datagrams: dict[int, UdpQueue] = {}
        self._streams: dict[int, anyio.CancelScope] = {}
        self._timer: anyio.CancelScope | None = None
        self._closed = False

    async def resolve(self, name: str, rdtypes: Sequence[int]) -> Lookup:
        """Resolve ``name``; ``ConnectionAbortedError`` if the stack closes meanwhile."""
        if self._closed:
            raise ConnectionAbortedError("the stack is closed")
        lookup = self.machine.lookup(name, rdtypes, now=anyio.current_time())
        done = anyio.Event()
        lookup.user_data = done
        self.pump()
        try:
            await done.wait()
        except BaseException:
            if not lookup.done:
                self.machine.cancel(lookup)
                self.pump()
            raise
        if not lookup.done:
            raise ConnectionAbortedError("the stack was closed")
        return lookup

    def pump(self) -> None:
        """Carry out the machine's commands, finish lookups, move the timer."""
        machine = self.machine
        commands = machine.commands()
        if not self._closed:
            for command in commands:
                if isinstance(command, SendDatagram):
                    self._send_datagram(command)
                elif isinstance(command, OpenStream):
                    scope = anyio.CancelScope()
                    self._streams[command.token] = scope
                    self._host.start_soon(self._stream, command, scope)
                elif isinstance(command, Release):
                    self._release(command.token)
        while (lookup := machine.next_event()) is not None:
            if isinstance(lookup.user_data, anyio.Event):
                lookup.user_data.set()
        self._arm()

    def close(self) -> None:
        """Release every socket; waiting lookups end with ``ConnectionAbortedError``."""
        self._closed = True
        for token in list(self._datagrams) + list(self._streams):
            self._release(token)
        if self._timer is not None:
            self._timer.cancel()
        for lookup in self.machine.in_progress():  # wake every waiter
            if isinstance(lookup.user_data, anyio.Event):
                lookup.user_data.set()

    # -- inside -------------------------------------------------------------------

    def _send_datagram(self, command: SendDatagram) -> None:
        try:
            queue = self._host.open_udp(None, 0, None)  # a random ephemeral port
        except OSError:
            return  # no free port: nothing goes out, and the try times out
        self._datagrams[command.token] = queue
        try:
            queue.endpoint.sendto(command.payload, (command.server, command.port))
            queue.driver.request_flush()
        except OSError:
            pass  # no route: the try times out and the next server is asked
        self._host.start_soon(self._read_datagrams, command.token, queue)

    async def _read_datagrams(self, token: int, queue: UdpQueue) -> None:
        with contextlib.suppress(OSError):  # closed (released) ends the reader
            while True:
                data, (host, port) = await queue.receive()
                source = (ipaddress.ip_address(host).packed, port)
                self.machine.receive_datagram(token, data, source, now=anyio.current_time())
                self.pump()

    async def _stream(self, command: OpenStream, scope: anyio.CancelScope) -> None:
        with scope:
            try:
                stream = await self._host.connect_tcp(
                    str(ipaddress.ip_address(command.server)), command.port
                )
            except OSError:
                stream = None
            if stream is not None:
                async with stream:
                    with contextlib.suppress(OSError, anyio.EndOfStream,
                                             anyio.BrokenResourceError):  # fmt: skip
                        await stream.send(command.payload)
                        while command.token in self._streams:
                            data = await stream.receive()
                            self.machine.receive_stream(
                                command.token, data, now=anyio.current_time()
                            )
                            self.pump()
        if self._streams.pop(command.token, None) is not None:
            self.machine.stream_closed(command.token, now=anyio.current_time())
            self.pump()

    def _release(self, token: int) -> None:
        queue = self._datagrams.pop(token, None)
        if queue is not None:
            queue.close()
        scope = self._streams.pop(token, None)
        if scope is not None:
            scope.cancel()

    def _arm(self) -> None:
        deadline = self.machine.get_timer()
        if self._closed:
            return
        if self._timer is None:
            if deadline is None:
                return
            self._timer = anyio.CancelScope(deadline=deadline)
            self._host.start_soon(self._run_timer, self._timer)
        else:
            self._timer.deadline = math.inf if deadline is None else deadline

    async def _run_timer(self, scope: anyio.CancelScope) -> None:
        """Sleep until the machine's deadline (moved by ``_arm``); then run its timers."""
        while not self._closed:
            with scope:
                await anyio.sleep_forever()
            if self._closed:
                return  # close() cancelled the scope; otherwise its deadline passed
            now = max(anyio.current_time(), scope.deadline)
            scope = anyio.CancelScope()
            self._timer = scope
            self.machine.handle_timer(now=now)
            self.pump()
            deadline = self.machine.get_timer()
            scope.deadline = math.inf if deadline is None else deadline

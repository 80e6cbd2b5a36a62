"""The stub resolver on an asyncio loop: UDP sockets and TCP connections of the stack.

``StackResolver`` drives a :class:`~aionetstack.names.StubResolver`: each
``SendDatagram`` gets a fresh UDP endpoint on a random ephemeral port (RFC
6056 through the core's port choice; RFC 5452 §10), unconnected so that the
machine sees, checks and counts datagrams from anywhere; each ``OpenStream``
a TCP connection through the stack. One ``call_at`` timer follows the
machine's earliest deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from ..names import Lookup, OpenStream, Release, SendDatagram, StubResolver
from .addresses import text_address
from .datagram import DatagramTransport

if TYPE_CHECKING:
    from ..core.stack import StackCore
    from .driver import AsyncioDriver

__all__ = ["StackResolver"]

OpenStreamFunction = Callable[
    [str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
]


class _Datagrams(asyncio.DatagramProtocol):
    """Hands every datagram of one query's socket to the machine, with its source."""

    def __init__(self, resolver: StackResolver, token: int) -> None:
        self._resolver = resolver
        self._token = token

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        source = (ipaddress.ip_address(str(addr[0])).packed, int(addr[1]))
        self._resolver.machine.receive_datagram(
            self._token, data, source, now=asyncio.get_running_loop().time()
        )
        self._resolver.pump()

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors are not answers: the try's timeout moves on (as glibc)


class StackResolver:
    """Runs one :class:`StubResolver` over the stack ``core`` on the running loop."""

    def __init__(
        self,
        machine: StubResolver,
        core: StackCore,
        driver: Callable[[], AsyncioDriver],
        open_stream: OpenStreamFunction,
    ) -> None:
        self.machine = machine
        self._core = core
        self._driver = driver
        self._open_stream = open_stream
        self._datagrams: dict[int, DatagramTransport] = {}
        self._streams: dict[int, asyncio.Task[None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        self._waiting: set[asyncio.Future[Lookup]] = set()

    async def resolve(self, name: str, rdtypes: Sequence[int]) -> Lookup:
        """Resolve ``name`` for ``rdtypes``; ValueError for a name that cannot be asked."""
        if self._closed:
            raise ConnectionAbortedError("the stack is closed")
        loop = asyncio.get_running_loop()
        lookup = self.machine.lookup(name, rdtypes, now=loop.time())
        future: asyncio.Future[Lookup] = loop.create_future()
        lookup.user_data = future
        self._waiting.add(future)
        try:
            self.pump()
            return await future
        except BaseException:  # cancelled (or a failure): its sockets are released
            if not lookup.done:
                self.machine.cancel(lookup)
                self.pump()
            raise
        finally:
            self._waiting.discard(future)

    def pump(self) -> None:
        """Carry out the machine's commands, finish lookups, re-arm the timer."""
        machine = self.machine
        if self._closed:
            machine.commands()  # nothing goes out once the stack is closed
            return
        for command in machine.commands():
            if isinstance(command, SendDatagram):
                self._send_datagram(command)
            elif isinstance(command, OpenStream):
                task = asyncio.get_running_loop().create_task(self._stream(command))
                self._streams[command.token] = task
            elif isinstance(command, Release):
                self._release(command.token)
        while (lookup := machine.next_event()) is not None:
            future = lookup.user_data
            if isinstance(future, asyncio.Future) and not future.done():
                future.set_result(lookup)
        self._arm()

    def close(self) -> None:
        """Stop every query: sockets closed, waiting lookups failed (ConnectionAbortedError)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for token in list(self._datagrams) + list(self._streams):
            self._release(token)
        for future in self._waiting:
            if not future.done():
                future.set_exception(ConnectionAbortedError("the stack was closed"))

    # -- inside -------------------------------------------------------------------

    def _send_datagram(self, command: SendDatagram) -> None:
        try:
            endpoint = self._core.udp.bind(None, 0, None)  # a random ephemeral port
        except OSError:
            return  # no free port: nothing goes out, and the try times out
        protocol = _Datagrams(self, command.token)
        loop = asyncio.get_running_loop()
        transport = DatagramTransport(loop, self._driver(), endpoint, protocol)
        self._datagrams[command.token] = transport
        transport.sendto(command.payload, (text_address(command.server), command.port))

    async def _stream(self, command: OpenStream) -> None:
        loop = asyncio.get_running_loop()
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await self._open_stream(text_address(command.server), command.port)
            writer.write(command.payload)
            while data := await reader.read(0x10002):
                self.machine.receive_stream(command.token, data, now=loop.time())
                self.pump()
                if command.token not in self._streams:
                    return  # settled or moved on
        except OSError:
            pass  # refused, reset, unreachable: the machine moves to the next server
        finally:
            if writer is not None:
                writer.close()
        if self._streams.pop(command.token, None) is not None:
            self.machine.stream_closed(command.token, now=loop.time())
            self.pump()

    def _release(self, token: int) -> None:
        transport = self._datagrams.pop(token, None)
        if transport is not None:
            transport.close()
        task = self._streams.pop(token, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _arm(self) -> None:
        when = self.machine.get_timer()
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None and not self._closed:
            self._timer = asyncio.get_running_loop().call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        # asyncio may run a call_at handle up to its clock resolution early.
        now = max(asyncio.get_running_loop().time(), self._timer_at or 0.0)
        self._timer = None
        self._timer_at = None
        self.machine.handle_timer(now=now)
        self.pump()

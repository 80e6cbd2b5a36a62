"""anyio faces of UDP: ``anyio.abc.UDPSocket`` and ``anyio.abc.ConnectedUDPSocket``.

Received datagrams wait in a bounded queue per socket (the kernel's
``SO_RCVBUF``): when it is full, further datagrams are dropped and counted in
:attr:`StackUDPSocket.dropped`, as UDP may. A connected socket hears only its
peer, and an ICMP error for what it sent (port unreachable ...) is raised by
its next ``receive()`` as ``BrokenResourceError`` whose ``__cause__`` is the
``OSError`` (``ConnectionRefusedError``), as a kernel socket reports
``ECONNREFUSED`` once. No ``raw_socket`` (see ``streams.py``).
"""

from __future__ import annotations

import collections
import errno
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, NoReturn

import anyio
import anyio.abc
import anyio.lowlevel

from ..core.addresses import parse_endpoint, text_address
from .connection import Signal, closed_error

if TYPE_CHECKING:
    from ..core.udp import UdpEndpoint
    from .driver import AnyioDriver

__all__ = ["DEFAULT_UDP_QUEUE", "StackConnectedUDPSocket", "StackUDPSocket", "UdpQueue"]

#: Datagrams held per socket before drops (a bound on memory, like SO_RCVBUF).
DEFAULT_UDP_QUEUE: Final = 1024


class UdpQueue:
    """A core UDP endpoint's received datagrams and errors, awaitable."""

    __slots__ = (
        "_arrived",
        "closed",
        "driver",
        "dropped",
        "endpoint",
        "error",
        "limit",
        "on_close",
        "queue",
    )

    def __init__(self, driver: AnyioDriver, endpoint: UdpEndpoint, limit: int) -> None:
        self.driver = driver
        self.endpoint = endpoint
        self.limit = limit
        self.queue: collections.deque[tuple[bytes, tuple[str, int]]] = collections.deque()
        self.dropped = 0
        self.error: OSError | None = None
        self.closed = False
        #: Told when the socket closes (the stack stops tracking it).
        self.on_close: Callable[[UdpQueue], None] | None = None
        self._arrived = Signal()
        endpoint.user_data = self

    def deliver(self, data: bytes, source: bytes, port: int) -> None:
        if len(self.queue) >= self.limit:
            self.dropped += 1
            return
        self.queue.append((data, (text_address(source), port)))
        self._arrived.fire()

    def deliver_error(self, error: OSError) -> None:
        if self.endpoint.remote is not None:  # unconnected sockets are not told (Linux)
            self.error = error
            self._arrived.fire()

    def deliver_failure(self, error: OSError) -> None:
        """The stack stopped (its link failed): the next receive raises ``error``."""
        self.error = error
        self._arrived.fire()

    def is_readable(self) -> bool:
        return bool(self.closed or self.queue or self.error is not None)

    async def receive(self) -> tuple[bytes, tuple[str, int]]:
        """The next datagram; ``OSError(EBADF)`` once closed, or the pending ICMP error."""
        await anyio.lowlevel.checkpoint()
        while True:
            if self.closed:
                raise closed_error()
            if self.queue:
                return self.queue.popleft()
            if self.error is not None:
                error, self.error = self.error, None
                raise error
            await self._arrived.wait()

    async def send(self, data: bytes, target: tuple[bytes, int] | None) -> None:
        """Send one datagram (``OSError`` as ``UdpEndpoint.sendto`` raises them)."""
        await anyio.lowlevel.checkpoint()
        if self.closed:
            raise closed_error()
        self.endpoint.sendto(data, target)
        self.driver.request_flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.endpoint.close()
            self._arrived.fire()
            if self.on_close is not None:
                self.on_close(self)

    def attributes(self) -> dict[Any, Callable[[], Any]]:
        endpoint = self.endpoint
        local = (text_address(endpoint.local_address), endpoint.local_port)
        family = socket.AF_INET6 if endpoint.local_address and len(endpoint.local_address) == 16 \
            else socket.AF_INET  # fmt: skip
        attributes: dict[Any, Callable[[], Any]] = {
            anyio.abc.SocketAttribute.family: lambda: family,
            anyio.abc.SocketAttribute.local_address: lambda: local,
            anyio.abc.SocketAttribute.local_port: lambda: local[1],
        }
        if endpoint.remote is not None:
            remote = (text_address(endpoint.remote[0]), endpoint.remote[1])
            attributes[anyio.abc.SocketAttribute.remote_address] = lambda: remote
            attributes[anyio.abc.SocketAttribute.remote_port] = lambda: remote[1]
        return attributes


def _translate(error: OSError) -> Exception:
    if error.errno == errno.EBADF:
        return anyio.ClosedResourceError()
    return anyio.BrokenResourceError(str(error))


def _no_raw_socket() -> NoReturn:
    raise anyio.TypedAttributeLookupError("an aionetstack UDP socket has no kernel socket")


class StackUDPSocket(anyio.abc.UDPSocket):
    """An unconnected UDP port: ``receive() -> (data, (host, port))``, ``sendto``."""

    def __init__(self, queue: UdpQueue) -> None:
        self._queue = queue

    @property
    def dropped(self) -> int:
        """Datagrams dropped because the receive queue was full."""
        return self._queue.dropped

    @property
    def _raw_socket(self) -> socket.socket:
        _no_raw_socket()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._queue.attributes()

    async def receive(self) -> tuple[bytes, tuple[str, int]]:
        try:
            return await self._queue.receive()
        except OSError as error:
            raise _translate(error) from error

    async def send(self, item: tuple[bytes, tuple[str, int]]) -> None:
        data, address = item
        host, port = parse_endpoint(tuple(address), "address")
        if host is None or port == 0:
            raise ValueError(f"cannot send to {address!r}")
        try:
            await self._queue.send(data, (host, port))
        except OSError as error:
            if error.errno == errno.EBADF:
                raise anyio.ClosedResourceError from None
            raise

    async def aclose(self) -> None:
        self._queue.close()
        await anyio.lowlevel.checkpoint()


class StackConnectedUDPSocket(anyio.abc.ConnectedUDPSocket):
    """A UDP port connected to one peer: ``receive() -> data``, ``send(data)``."""

    def __init__(self, queue: UdpQueue) -> None:
        self._queue = queue

    @property
    def dropped(self) -> int:
        """Datagrams dropped because the receive queue was full."""
        return self._queue.dropped

    @property
    def _raw_socket(self) -> socket.socket:
        _no_raw_socket()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._queue.attributes()

    async def receive(self) -> bytes:
        try:
            return (await self._queue.receive())[0]
        except OSError as error:
            raise _translate(error) from error

    async def send(self, item: bytes) -> None:
        try:
            await self._queue.send(item, None)
        except OSError as error:
            if error.errno == errno.EBADF:
                raise anyio.ClosedResourceError from None
            raise

    async def aclose(self) -> None:
        self._queue.close()
        await anyio.lowlevel.checkpoint()

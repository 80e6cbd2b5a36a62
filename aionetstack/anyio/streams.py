"""anyio faces of TCP: :class:`StackSocketStream` and :class:`StackSocketListener`.

They implement ``anyio.abc.SocketStream`` and ``anyio.abc.SocketListener``
exactly, with anyio's exceptions: ``EndOfStream`` at the peer's EOF,
``BrokenResourceError`` (its ``__cause__`` the ``ConnectionResetError`` ...)
once the connection broke, ``ClosedResourceError`` after ``aclose()``,
``BusyResourceError`` for two tasks receiving (or sending) at once.

Typed attributes: ``SocketAttribute.family``, ``local_address``,
``local_port``, ``remote_address``, ``remote_port``. There is no
``SocketAttribute.raw_socket``: the connection lives in the user-space stack,
not in a kernel socket, so asking for it raises ``TypedAttributeLookupError``
(or returns the default given to ``extra()``), exactly as for any anyio stream
that has no socket underneath. :attr:`StackAttribute.connection` gives the
core ``TcpEndpoint`` instead (its RTT, congestion window, statistics).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import anyio.abc
import anyio.lowlevel
from anyio import TypedAttributeSet, typed_attribute

from ..core.addresses import text_address
from .connection import AsyncConnection, Signal

if TYPE_CHECKING:
    from ..core.tcp import TcpEndpoint, TcpListenerEndpoint
    from .driver import AnyioDriver

__all__ = ["StackAttribute", "StackSocketListener", "StackSocketStream"]


class StackAttribute(TypedAttributeSet):
    """aionetstack's own typed attributes on its anyio streams."""

    #: The core ``TcpEndpoint`` under a stream.
    connection: TcpEndpoint = typed_attribute()


def _family(packed: bytes | None) -> socket.AddressFamily:
    return socket.AF_INET6 if packed is not None and len(packed) == 16 else socket.AF_INET


def _no_raw_socket() -> NoReturn:
    raise anyio.TypedAttributeLookupError(
        "an aionetstack connection has no kernel socket (raw_socket is not available)"
    )


class StackSocketStream(anyio.abc.SocketStream):
    """One TCP connection of an :class:`~aionetstack.anyio.AnyioStack` as an anyio stream."""

    def __init__(self, endpoint: AsyncConnection) -> None:
        self._endpoint = endpoint
        self._receive_guard = anyio.ResourceGuard("reading from")
        self._send_guard = anyio.ResourceGuard("writing to")
        # anyio's streams are for unbuffered protocols: Nagle off, as on both backends.
        endpoint.connection.set_nodelay(True)

    def __repr__(self) -> str:
        endpoint = self._endpoint
        return f"<StackSocketStream {endpoint.sockname()} -> {endpoint.peername()}>"

    @property
    def _raw_socket(self) -> socket.socket:
        _no_raw_socket()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        endpoint = self._endpoint
        sockname = endpoint.sockname()
        peername = endpoint.peername()
        return {
            anyio.abc.SocketAttribute.family: lambda: _family(endpoint.connection.local_address),
            anyio.abc.SocketAttribute.local_address: lambda: sockname,
            anyio.abc.SocketAttribute.local_port: lambda: sockname[1],
            anyio.abc.SocketAttribute.remote_address: lambda: peername,
            anyio.abc.SocketAttribute.remote_port: lambda: peername[1],
            StackAttribute.connection: lambda: endpoint.connection,
        }

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        with self._receive_guard:
            try:
                data = await self._endpoint.receive(max_bytes)
            except OSError as error:
                raise _translate(error) from error
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        with self._send_guard:
            endpoint = self._endpoint
            if endpoint.write_shut and not endpoint.closed:
                await anyio.lowlevel.checkpoint()
                raise anyio.ClosedResourceError("cannot send after send_eof()")
            try:
                await endpoint.send_all(memoryview(item).cast("B"))
            except OSError as error:
                raise _translate(error) from error

    async def send_eof(self) -> None:
        await anyio.lowlevel.checkpoint()
        endpoint = self._endpoint
        if endpoint.closed:
            raise anyio.ClosedResourceError
        endpoint.shutdown_write()

    async def aclose(self) -> None:
        self._endpoint.close()
        await anyio.lowlevel.checkpoint()


def _translate(error: OSError) -> Exception:
    if error.errno == errno.EBADF:
        return anyio.ClosedResourceError()
    return anyio.BrokenResourceError(str(error))


class StackSocketListener(anyio.abc.SocketListener):
    """A listening TCP port of an :class:`~aionetstack.anyio.AnyioStack`.

    ``serve(handler, task_group)`` is anyio's own: accept in a loop and start
    ``handler(stream)`` in the task group for each connection.
    """

    def __init__(
        self,
        driver: AnyioDriver,
        listener: TcpListenerEndpoint,
        on_close: Callable[[TcpListenerEndpoint], None],
        track: Callable[[AsyncConnection], AsyncConnection] = lambda connection: connection,
    ) -> None:
        self._driver = driver
        self._track = track
        self._listener = listener
        self._on_close = on_close
        self._accepted = Signal()
        self._guard = anyio.ResourceGuard("accepting connections from")
        self._closed = False

    def __repr__(self) -> str:
        return f"<StackSocketListener {self._local_address()}>"

    def _local_address(self) -> tuple[str, int]:
        return (text_address(self._listener.local_address), self._listener.local_port)

    @property
    def _raw_socket(self) -> socket.socket:
        _no_raw_socket()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        address = self._local_address()
        return {
            anyio.abc.SocketAttribute.family: lambda: _family(self._listener.local_address),
            anyio.abc.SocketAttribute.local_address: lambda: address,
            anyio.abc.SocketAttribute.local_port: lambda: address[1],
        }

    def on_accept_ready(self) -> None:
        """The stack's dispatch: a connection is waiting in the backlog."""
        self._accepted.fire()

    def close_listener(self) -> None:
        """The stack is closing: stop listening (``accept`` raises ``ClosedResourceError``)."""
        if not self._closed:
            self._closed = True
            self._listener.close()
            self._accepted.fire()

    async def accept(self) -> StackSocketStream:
        with self._guard:
            await anyio.lowlevel.checkpoint()
            while True:
                if self._closed:
                    raise anyio.ClosedResourceError
                connection = self._listener.accept()
                if connection is not None:
                    return StackSocketStream(self._track(AsyncConnection(self._driver, connection)))
                await self._accepted.wait()

    async def aclose(self) -> None:
        """Stop listening: connections not yet accepted are reset (as a kernel socket)."""
        if not self._closed:
            self._closed = True
            self._listener.close()
            self._on_close(self._listener)
            self._driver.request_flush()
            self._accepted.fire()
        await anyio.lowlevel.checkpoint()

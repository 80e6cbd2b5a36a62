"""One TCP connection of the stack as awaitable operations, for every anyio/trio face.

:class:`AsyncConnection` is what the connection's ``user_data`` points at: the
stack's event dispatch wakes it (readable, writable, EOF, closed), and the faces
(``anyio.abc.SocketStream`` in ``streams.py``, the trio socket in
``trio_socket.py``) await it and translate its ``OSError``s into their own
exceptions. It follows a kernel socket:

* ``receive`` returns ``b""`` at EOF, raises the connection's error
  (``ConnectionResetError`` ...) once it is over, and ``OSError(EBADF)`` after a
  local :meth:`close`;
* reading is pulled: bytes stay in the connection until received, so a stream
  nobody reads from closes the peer's window (DESIGN.md §2);
* ``send`` blocks while the connection's bounded send buffer is full
  (``SO_SNDBUF``), so a fast writer is paced by the peer's ACKs.

Every operation starts with one ``anyio.lowlevel.checkpoint()`` (a cancellation
and a scheduling point) and takes or queues bytes only after its last await, so
no data is ever consumed by an operation that then gets cancelled.
"""

from __future__ import annotations

import errno
import operator
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ..core.addresses import text_address
from ..core.tcp.state import TcpState

if TYPE_CHECKING:
    from ..core.tcp import TcpEndpoint
    from .driver import AnyioDriver

__all__ = ["AsyncConnection", "Signal", "closed_error"]


def closed_error() -> OSError:
    """What an operation on a locally closed socket raises (as the kernel: EBADF)."""
    return OSError(errno.EBADF, "Bad file descriptor: the socket was closed")


class Signal:
    """A reusable wake-up: tasks :meth:`wait`; :meth:`fire` wakes all of them."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    async def wait(self) -> None:
        event = self._event
        if event is None:
            event = self._event = anyio.Event()
        await event.wait()

    def fire(self) -> None:
        event = self._event
        if event is not None:
            self._event = None
            event.set()


class AsyncConnection:
    """An established (or connecting) core ``TcpEndpoint`` with awaitable I/O."""

    __slots__ = (
        "_readable",
        "_writable",
        "closed",
        "connected",
        "connection",
        "driver",
        "error",
        "finished",
        "write_shut",
    )

    def __init__(self, driver: AnyioDriver, connection: TcpEndpoint) -> None:
        self.driver = driver
        self.connection = connection
        #: The connection is over inside the stack (TcpClosed seen); ``error`` says why.
        self.finished = connection.state is TcpState.CLOSED
        self.error: OSError | None = (
            ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
            if self.finished else None
        )  # fmt: skip
        self.connected = connection.state not in (TcpState.SYN_SENT, TcpState.CLOSED)
        #: close()/abort() was called here.
        self.closed = False
        #: shutdown_write() was called here.
        self.write_shut = False
        self._readable = Signal()
        self._writable = Signal()
        connection.user_data = self

    # -- addresses ------------------------------------------------------------------

    @property
    def family_is_ipv6(self) -> bool:
        return len(self.connection.local_address) == 16

    def sockname(self) -> tuple[str, int]:
        connection = self.connection
        return (text_address(connection.local_address), connection.local_port)

    def peername(self) -> tuple[str, int]:
        connection = self.connection
        return (text_address(connection.remote_address), connection.remote_port)

    # -- called by the stack's event dispatch ------------------------------------------

    def on_connected(self) -> None:
        self.connected = True
        self._writable.fire()

    def on_readable(self) -> None:
        self._readable.fire()

    def on_writable(self) -> None:
        self._writable.fire()

    def on_closed(self, error: OSError | None) -> None:
        self.finished = True
        self.error = error
        self._readable.fire()
        self._writable.fire()

    # -- opening ----------------------------------------------------------------------

    async def wait_connected(self) -> None:
        """Wait for the handshake; raise its error (``ConnectionRefusedError`` ...)."""
        while not self.connected:
            if self.finished:
                raise self.error or ConnectionResetError(errno.ECONNRESET, "connection closed")
            await self._writable.wait()

    # -- reading ------------------------------------------------------------------------

    def is_readable(self) -> bool:
        """Would :meth:`receive` return (or raise) without waiting?"""
        connection = self.connection
        return bool(
            self.closed or connection.readable_bytes or connection.eof_received or self.finished
        )

    async def receive(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` at end of stream."""
        max_bytes = operator.index(max_bytes)  # TypeError for 1.5, as socket.recv
        await anyio.lowlevel.checkpoint()  # the one yield; nothing is taken before it
        connection = self.connection
        while True:
            if self.closed:
                raise closed_error()
            if connection.readable_bytes:
                data = connection.receive(max_bytes)
                self.driver.request_flush()  # the window may have reopened
                return data
            if connection.eof_received:
                return b""
            if self.finished:
                if self.error is None or isinstance(self.error, ConnectionAbortedError):
                    return b""  # a clean end (or our own abort): nothing more will come
                raise self.error
            await self._readable.wait()

    async def receive_into(self, buffer: memoryview) -> int:
        """Copy up to ``len(buffer)`` bytes into ``buffer``; 0 at end of stream."""
        await anyio.lowlevel.checkpoint()
        connection = self.connection
        while True:
            if self.closed:
                raise closed_error()
            if connection.readable_bytes:
                count = connection.receive_into(buffer)
                self.driver.request_flush()
                return count
            if connection.eof_received:
                return 0
            if self.finished:
                if self.error is None or isinstance(self.error, ConnectionAbortedError):
                    return 0
                raise self.error
            await self._readable.wait()

    # -- writing ------------------------------------------------------------------------

    def _check_sendable(self) -> None:
        if self.closed:
            raise closed_error()
        if self.finished and self.error is not None:
            raise self.error
        if self.write_shut or self.finished:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe: the write side is shut down")

    async def send_some(self, data: memoryview) -> int:
        """Put as much of ``data`` as fits in the send buffer (waiting for room); return it."""
        await anyio.lowlevel.checkpoint()
        while True:
            self._check_sendable()
            if not data:
                return 0
            accepted = self.connection.send(data)
            if accepted:
                self.driver.request_flush()
                return accepted
            await self._writable.wait()

    async def send_all(self, data: memoryview) -> None:
        """Put all of ``data`` in the send buffer, waiting for room as needed.

        If cancelled while waiting, a prefix of ``data`` may already be queued
        (as with a kernel socket's ``sendall``).
        """
        await anyio.lowlevel.checkpoint()
        connection = self.connection
        while True:
            self._check_sendable()
            accepted = connection.send(data) if data else 0
            if accepted:
                self.driver.request_flush()
                data = data[accepted:]
            if not data:
                return
            await self._writable.wait()

    def writable_now(self) -> bool:
        return bool(
            self.closed or self.finished or self.write_shut or self.connection.send_buffer_free
        )

    async def wait_writable(self) -> None:
        """Wait until a send would accept at least one byte (or fail at once).

        ``OSError(EBADF)`` if the connection is (or gets) closed here, as trio's
        ``wait_writable`` raises for a socket closed under it.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        if self.writable_now():
            await anyio.lowlevel.cancel_shielded_checkpoint()
        while not self.writable_now():
            self.connection.send(b"")  # a full buffer: ask the core for TcpWritable
            await self._writable.wait()
        if self.closed:
            raise closed_error()

    def shutdown_write(self) -> None:
        """FIN after everything queued (half-close). Idempotent."""
        if self.closed:
            raise closed_error()
        if self.write_shut:
            return
        self.write_shut = True
        if not self.finished:
            self.connection.shutdown_write()
            self.driver.request_flush()

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Close as a kernel socket does: FIN after queued data (RST if unread data remains)."""
        if self.closed:
            return
        self.closed = True
        self.connection.close()
        self.driver.request_flush()
        self._readable.fire()  # other tasks blocked here now see EBADF
        self._writable.fire()

    def abort(self) -> None:
        """Reset the connection (RST) now."""
        if not self.closed:
            self.closed = True
            self._readable.fire()
            self._writable.fire()
        self.connection.abort()
        self.driver.request_flush()

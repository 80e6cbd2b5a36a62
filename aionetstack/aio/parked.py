"""Stack connections standing behind kernel socket objects (the loop factory's sockets).

Libraries that make a ``socket.socket`` themselves and then ask the loop to
connect it (aiohappyeyeballs: ``loop.sock_connect(sock, addr)`` then
``loop.create_connection(sock=sock)``) get a stack connection *parked* under
that socket object: the kernel socket itself is never connected. The parked
connection buffers what arrives until it is adopted by a protocol
(``create_connection(sock=)``) or read with ``sock_recv``; ``sock_sendall``
writes to it. If the socket object is closed or dropped unadopted, the
connection is aborted.
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from typing import Any

__all__ = ["ParkedConnection", "ParkedListener", "ParkedSockets"]


class ParkedConnection(asyncio.Protocol):
    """The protocol of a parked connection.

    Reading stays paused (unread bytes wait in the stack connection and close
    its window), except while ``recv`` waits; adoption hands the transport,
    and any bytes ``recv`` left over, to the new protocol.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: Exception | None = None
        self.lost = False
        self._readable: asyncio.Event = asyncio.Event()
        self._writable: asyncio.Event = asyncio.Event()
        self._writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._readable.set()
        if self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        self._readable.set()
        return True  # keep our side open: the reader decides

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        self._readable.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def recv(self, size: int) -> bytes:
        """``sock_recv``: up to ``size`` bytes, ``b""`` at EOF."""
        while not self.buffer and not self.eof and not self.lost:
            self._readable.clear()
            assert self.transport is not None
            self.transport.resume_reading()
            await self._readable.wait()
        if not self.buffer and self.error is not None:
            raise self.error
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def sendall(self, data: Any) -> None:
        """``sock_sendall``: queue ``data`` and wait while over the high-water mark."""
        if self.lost or self.transport is None or self.transport.is_closing():
            raise self.error or BrokenPipeError(32, "Broken pipe")
        self.transport.write(bytes(data))
        await self._writable.wait()
        if self.lost and self.error is not None:
            raise self.error

    def adopt(self, protocol: asyncio.BaseProtocol) -> asyncio.Transport:
        """Hand the transport to ``protocol``, with what ``recv`` left over and any EOF."""
        transport = self.transport
        assert transport is not None
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.buffer and isinstance(protocol, asyncio.Protocol):
            data, self.buffer = bytes(self.buffer), bytearray()
            protocol.data_received(data)
        if self.lost:
            protocol.connection_lost(self.error)
        elif self.eof and isinstance(protocol, asyncio.Protocol) and not protocol.eof_received():
            transport.close()
        transport.resume_reading()
        return transport


class ParkedListener:
    """Connections a stack server accepted for a kernel listening socket, waiting for
    ``sock_accept``: each is parked under a fresh (never connected) socket object."""

    def __init__(self, key: tuple[str | None, int]) -> None:
        #: (host, or None for every stack address; port)
        self.key = key
        self.server: asyncio.AbstractServer | None = None
        self.ready: asyncio.Queue[ParkedConnection] = asyncio.Queue()

    def protocol(self) -> ParkedConnection:
        """The stack server's protocol factory: park, and tell ``sock_accept``."""
        listener = self

        class Accepted(ParkedConnection):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                listener.ready.put_nowait(self)

        return Accepted()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        while not self.ready.empty():
            parked = self.ready.get_nowait()
            if parked.transport is not None:
                parked.transport.abort()


class ParkedSockets:
    """Socket object -> parked connection, forgetting (and aborting) with the socket."""

    def __init__(self) -> None:
        self._parked: weakref.WeakKeyDictionary[socket.socket, ParkedConnection] = (
            weakref.WeakKeyDictionary()
        )

    def park(self, sock: socket.socket, parked: ParkedConnection) -> None:
        self._parked[sock] = parked
        transport = parked.transport
        if transport is not None:
            weakref.finalize(sock, _abort_unless_adopted, transport, parked)

    def get(self, sock: Any) -> ParkedConnection | None:
        """The parked connection of ``sock`` (None if it has none, or it was closed)."""
        try:
            parked = self._parked.get(sock)
        except TypeError:
            return None  # not weak-referenceable: not one of ours
        if parked is not None and sock.fileno() == -1:
            self._parked.pop(sock, None)
            _abort_unless_adopted(parked.transport, parked)
            return None
        return parked

    def take(self, sock: socket.socket) -> ParkedConnection | None:
        """Remove and return the parked connection of ``sock``."""
        parked = self.get(sock)
        if parked is not None:
            del self._parked[sock]
        return parked

    def sweep(self) -> None:
        """Abort the connections of socket objects closed since they were parked."""
        for sock in list(self._parked):
            self.get(sock)

    def close(self) -> None:
        for sock in list(self._parked):
            parked = self._parked.pop(sock, None)
            if parked is not None and parked.transport is not None:
                parked.transport.abort()


def _abort_unless_adopted(transport: asyncio.Transport | None, parked: ParkedConnection) -> None:
    if transport is not None and transport.get_protocol() is parked:
        try:
            transport.abort()
        except RuntimeError:
            pass  # the loop is already closed: the stack went with it

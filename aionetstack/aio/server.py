"""``Server``: TCP listeners with the ``asyncio.Server`` interface."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from .addresses import text_address
from .transport import StackSocket

if TYPE_CHECKING:
    from ..core.tcp import TcpListenerEndpoint

__all__ = ["Server", "ServerOwner"]


class ServerOwner(Protocol):
    """What a :class:`Server` needs from the stack that made it."""

    def forget_server(self, server: Server) -> None:
        """Stop routing the server's listeners to it."""

    def request_flush(self) -> None:
        """Put what became sendable on the link soon (one flush per loop tick)."""

    def close_transports_of(self, server: Server, *, abort: bool) -> None:
        """Close (or abort) every transport the server accepted."""


class Server(asyncio.AbstractServer):
    """Listening TCP ports of a stack, accepting into ``protocol_factory`` protocols.

    Like ``asyncio.Server``: ``close``, ``wait_closed``, ``serve_forever``,
    ``start_serving``, ``is_serving``, ``sockets``, ``async with``; plus
    ``get_addresses()`` and ``get_port()``. Connections queue in the listener's
    backlog until the server is serving.
    """

    def __init__(
        self,
        stack: ServerOwner,
        listeners: list[TcpListenerEndpoint],
        accept: Callable[[Server, Any], None],
    ) -> None:
        self._stack = stack
        self._loop = asyncio.get_running_loop()
        self._listeners = listeners
        self._accept = accept
        self._serving = False
        self._closed = False
        self._serving_forever: asyncio.Future[None] | None = None
        self._waiters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return f"<aionetstack Server {self.get_addresses()}>"

    @property
    def listeners(self) -> list[TcpListenerEndpoint]:
        return self._listeners

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def get_addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every listening address (``0.0.0.0`` for any)."""
        return [(text_address(li.local_address), li.local_port) for li in self._listeners]

    def get_port(self) -> int:
        """The port listened on (the first one if several)."""
        return self._listeners[0].local_port if self._listeners else 0

    @property
    def sockets(self) -> tuple[StackSocket, ...]:
        if self._closed:
            return ()
        return tuple(StackSocket(None, address) for address in self.get_addresses())

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        if self._serving:
            return
        self._serving = True
        for listener in self._listeners:
            self.accept_ready(listener)

    def accept_ready(self, listener: TcpListenerEndpoint) -> None:
        """Take every established connection waiting on ``listener`` (if serving)."""
        if not self._serving:
            return
        while (connection := listener.accept()) is not None:
            self._accept(self, connection)

    async def serve_forever(self) -> None:
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        await self.start_serving()
        self._serving_forever = self._loop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever = None

    def close(self) -> None:
        """Stop listening. Connections already accepted stay open (as asyncio)."""
        if self._closed:
            return
        self._closed = True
        self._serving = False
        for listener in self._listeners:
            listener.close()
        self._stack.forget_server(self)
        self._stack.request_flush()
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def close_clients(self) -> None:
        """Close every connection this server accepted (Python 3.13 API)."""
        self._stack.close_transports_of(self, abort=False)

    def abort_clients(self) -> None:
        """Abort every connection this server accepted (Python 3.13 API)."""
        self._stack.close_transports_of(self, abort=True)

    async def wait_closed(self) -> None:
        if self._closed:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()


def listen_addresses(host: str | Iterable[str] | None) -> list[str | None]:
    """The hosts a server listens on: ``None``/``""`` is every address."""
    if host is None or host == "":
        return [None]
    if isinstance(host, str):
        return [host]
    return list(host)

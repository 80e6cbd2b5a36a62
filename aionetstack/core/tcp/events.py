"""Events the TCP layer appends to the stack's shared event queue, and the faces they carry.

Each event is a small slotted class naming the connection (or listener) it is about,
equal to another of its class about the same object (hashed by that object's
identity), typed by the Protocols below: the part of a connection and a listener that a
driver (``aio``, ``anyio``) uses. This module imports nothing that produces events,
so producers and consumers both depend on it and it on neither. Compiled by mypyc
(``aionetstack/compiled.py``): a data segment makes one, and a dataclass's
``__init__`` would run interpreted even in a compiled module.
"""

from __future__ import annotations

from typing import Protocol

from .state import TcpState

__all__ = [
    "TcpAccepted",
    "TcpClosed",
    "TcpConnected",
    "TcpEndpoint",
    "TcpEofReceived",
    "TcpListenerEndpoint",
    "TcpReadable",
    "TcpWritable",
]


class TcpEndpoint(Protocol):
    """A connection as its application sees it (``TcpConnection`` satisfies this)."""

    local_address: bytes
    local_port: int
    remote_address: bytes
    remote_port: int
    state: TcpState
    #: Free for the driver: the transport or stream this connection belongs to.
    user_data: object

    @property
    def readable_bytes(self) -> int:
        """Bytes buffered in order and not yet read."""

    @property
    def send_buffer_free(self) -> int:
        """Bytes ``send`` would accept now."""

    @property
    def send_buffer_used(self) -> int:
        """Bytes written and not yet acknowledged."""

    @property
    def eof_received(self) -> bool:
        """The peer's FIN arrived in order."""

    @property
    def nodelay(self) -> bool:
        """True when Nagle's algorithm is off (TCP_NODELAY)."""

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Queue bytes; returns how many fit. BrokenPipeError once sending is over."""

    def receive(self, max_bytes: int = -1) -> bytes:
        """Take up to ``max_bytes`` bytes (all when negative)."""

    def receive_chunks(self, enough: int = -1) -> list[bytes | bytearray | memoryview]:
        """Take whole chunks as they arrived until they hold ``enough`` bytes (no join)."""

    def receive_into(self, buffer: bytearray | memoryview) -> int:
        """Copy bytes into ``buffer``; returns how many."""

    def shutdown_write(self) -> None:
        """Send FIN after the buffered data."""

    def close(self) -> None:
        """FIN after the buffered data (RST when received data is unread)."""

    def abort(self) -> None:
        """RST now."""

    def set_nodelay(self, flag: bool) -> None:
        """TCP_NODELAY."""

    def set_keepalive(self, flag: bool) -> None:
        """SO_KEEPALIVE."""

    @property
    def user_timeout(self) -> float:
        """TCP_USER_TIMEOUT in seconds (0: off)."""

    def set_user_timeout(self, seconds: float) -> None:
        """TCP_USER_TIMEOUT (RFC 5482)."""


class TcpListenerEndpoint(Protocol):
    """A listening port as a driver sees it (``TcpListener`` satisfies this)."""

    local_address: bytes | None
    local_port: int

    def accept(self) -> TcpEndpoint | None:
        """The next established connection, or None."""

    def close(self) -> None:
        """Stop listening; connections not yet accepted are reset."""


class _ConnectionEvent:
    """An event about one connection: equal to another of its class about the same one
    (the same object)."""

    __slots__ = ("connection",)

    def __init__(self, connection: TcpEndpoint) -> None:
        self.connection = connection

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _ConnectionEvent)
        return self.connection is other.connection

    def __hash__(self) -> int:
        return hash((type(self), id(self.connection)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(connection={self.connection!r})"


class TcpConnected(_ConnectionEvent):
    """An active open completed (the connection is ESTABLISHED)."""


class TcpAccepted:
    """A connection is waiting on ``listener.accept()``."""

    __slots__ = ("listener",)

    def __init__(self, listener: TcpListenerEndpoint) -> None:
        self.listener = listener

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TcpAccepted):
            return NotImplemented
        return self.listener is other.listener

    def __hash__(self) -> int:
        return hash((TcpAccepted, id(self.listener)))

    def __repr__(self) -> str:
        return f"TcpAccepted(listener={self.listener!r})"


class TcpReadable(_ConnectionEvent):
    """New bytes are readable. At most one is pending per connection until the app reads."""


class TcpWritable(_ConnectionEvent):
    """Send-buffer space was freed after the buffer had been full (or nearly so)."""


class TcpEofReceived(_ConnectionEvent):
    """The peer's FIN arrived in order: no more bytes will come after those buffered."""


class TcpClosed(_ConnectionEvent):
    """The connection is over; sent exactly once per connection.

    ``error`` is None for a clean close, else ConnectionRefusedError (RST to our SYN),
    ConnectionResetError, TimeoutError (retry limits) or ConnectionAbortedError (abort()).
    """

    __slots__ = ("error",)

    def __init__(self, connection: TcpEndpoint, error: OSError | None) -> None:
        super().__init__(connection)
        self.error = error

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TcpClosed):
            return NotImplemented
        return self.connection is other.connection and self.error == other.error

    def __hash__(self) -> int:
        return hash((TcpClosed, id(self.connection)))

    def __repr__(self) -> str:
        return f"TcpClosed(connection={self.connection!r}, error={self.error!r})"

"""Events the TCP layer appends to the stack's shared event queue.

Each is a small slotted dataclass naming the connection (or listener) it is about.
The driver pops them in order and turns them into asyncio callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .connection import TcpConnection
    from .layer import TcpListener

__all__ = [
    "TcpAccepted",
    "TcpClosed",
    "TcpConnected",
    "TcpEofReceived",
    "TcpReadable",
    "TcpWritable",
]


@dataclass(slots=True)
class TcpConnected:
    """An active open completed (the connection is ESTABLISHED)."""

    connection: TcpConnection


@dataclass(slots=True)
class TcpAccepted:
    """A connection is waiting on ``listener.accept()``."""

    listener: TcpListener


@dataclass(slots=True)
class TcpReadable:
    """New bytes are readable. At most one is pending per connection until the app reads."""

    connection: TcpConnection


@dataclass(slots=True)
class TcpWritable:
    """Send-buffer space was freed after the buffer had been full (or nearly so)."""

    connection: TcpConnection


@dataclass(slots=True)
class TcpEofReceived:
    """The peer's FIN arrived in order: no more bytes will come after those buffered."""

    connection: TcpConnection


@dataclass(slots=True)
class TcpClosed:
    """The connection is over; sent exactly once per connection.

    ``error`` is None for a clean close, else ConnectionRefusedError (RST to our SYN),
    ConnectionResetError, TimeoutError (retry limits) or ConnectionAbortedError (abort()).
    """

    connection: TcpConnection
    error: OSError | None

"""Sans-I/O TCP: RFC 9293 with RFC 7323, 2018, 6675, 6298, 5681, 6582, 9438, 5961,
6528, 6056 and 4987. See ``layer`` for the driver-facing calls."""

from __future__ import annotations

from .connection import TcpConnection, TcpState
from .events import TcpAccepted, TcpClosed, TcpConnected, TcpEofReceived, TcpReadable, TcpWritable
from .layer import TcpLayer, TcpListener

__all__ = [
    "TcpAccepted",
    "TcpClosed",
    "TcpConnected",
    "TcpConnection",
    "TcpEofReceived",
    "TcpLayer",
    "TcpListener",
    "TcpReadable",
    "TcpState",
    "TcpWritable",
]

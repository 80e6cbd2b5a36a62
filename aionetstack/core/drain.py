"""A graceful stack close (``SO_LINGER``-like), the loop-independent part.

Both drivers' ``aclose(linger=)`` close every connection gracefully, then wait
(at most ``linger`` seconds, polling every :data:`DRAIN_POLL`) until no
connection still holds data or a FIN the peer has not acknowledged; whatever
is left is then reset. The states and the two steps are here, shared.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from .tcp.events import TcpEndpoint
from .tcp.state import TcpState

__all__ = ["DRAIN_CLOSES", "DRAIN_POLL", "UNDRAINED", "close_unowned", "undrained"]

#: States whose connection still has data or a FIN the peer has not acknowledged.
UNDRAINED: Final = frozenset({
    TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.FIN_WAIT_1, TcpState.CLOSING,
    TcpState.LAST_ACK, TcpState.SYN_RECEIVED,
})  # fmt: skip
#: Connections an application never took over, closed by a graceful stack close.
DRAIN_CLOSES: Final = frozenset({TcpState.ESTABLISHED, TcpState.CLOSE_WAIT,
                                 TcpState.SYN_RECEIVED})  # fmt: skip
#: How often a lingering close looks whether everything was acknowledged (seconds).
DRAIN_POLL: Final = 0.01


def close_unowned(connections: Iterable[TcpEndpoint]) -> int:
    """Close the connections no application holds (accepted, never taken); return how
    many connections are still undrained (the ones a graceful close waits for)."""
    closing = 0
    for connection in connections:
        closing += connection.state in UNDRAINED
        if connection.state in DRAIN_CLOSES and connection.user_data is None:
            connection.close()
    return closing


def undrained(connections: Iterable[TcpEndpoint]) -> int:
    """How many connections still hold data or a FIN the peer has not acknowledged."""
    return sum(connection.state in UNDRAINED for connection in connections)

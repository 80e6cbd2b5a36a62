"""RFC 9293 §3.3.2: the connection states and the sets of states the rules refer to."""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "ABORT_SENDS_RST",
    "APP_CAN_SEND",
    "RECEIVES_DATA",
    "SENDS_DATA",
    "SYNCHRONIZED",
    "TcpState",
]


class TcpState(enum.Enum):
    """RFC 9293 §3.3.2 connection states."""

    # Members compare by identity, so hash them by identity too: the state-set tests on
    # every segment then hash in C instead of calling Enum's Python-level ``__hash__``.
    __hash__ = object.__hash__

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"


#: States in which the peer's ISN is known (RFC 9293 §3.10.7.4 "synchronized").
SYNCHRONIZED: Final = frozenset(
    {
        TcpState.ESTABLISHED,
        TcpState.FIN_WAIT_1,
        TcpState.FIN_WAIT_2,
        TcpState.CLOSE_WAIT,
        TcpState.CLOSING,
        TcpState.LAST_ACK,
        TcpState.TIME_WAIT,
    }
)

#: States that accept segment text (RFC 9293 §3.10.7.4 "seventh").
RECEIVES_DATA: Final = frozenset({TcpState.ESTABLISHED, TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2})

#: States in which queued data may still be sent (FIN not yet sent).
SENDS_DATA: Final = frozenset(
    {
        TcpState.ESTABLISHED,
        TcpState.CLOSE_WAIT,
        TcpState.FIN_WAIT_1,
        TcpState.LAST_ACK,
        TcpState.CLOSING,
    }
)

#: RFC 9293 §3.10.5 ABORT: the states in which a RST is sent.
ABORT_SENDS_RST: Final = frozenset(
    {
        TcpState.SYN_RECEIVED,
        TcpState.ESTABLISHED,
        TcpState.FIN_WAIT_1,
        TcpState.FIN_WAIT_2,
        TcpState.CLOSE_WAIT,
        TcpState.CLOSING,
    }
    | {TcpState.LAST_ACK}
)

#: States in which the application may still queue data.
APP_CAN_SEND: Final = frozenset(
    {TcpState.SYN_SENT, TcpState.SYN_RECEIVED, TcpState.ESTABLISHED, TcpState.CLOSE_WAIT}
)

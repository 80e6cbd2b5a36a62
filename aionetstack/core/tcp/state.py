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
    "TRANSITIONS",
    "TcpState",
    "is_legal_transition",
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

_S = TcpState
#: Every legal state change, ``TRANSITIONS[from]`` being the states ``from`` may move to:
#: RFC 9293 §3.3.2 figure 5, plus what the figure leaves out: an abort, a reset or a
#: retry limit ends any state in CLOSED (§3.10.5, §3.10.7.4 second, RFC 9293 §3.8.3);
#: a SYN cookie's ACK makes an ESTABLISHED connection at once (RFC 4987 §3.6); a
#: SYN-ACK may arrive after the application closed (SYN-SENT to FIN-WAIT-1, §3.10.4);
#: a FIN may arrive in SYN-RECEIVED (to CLOSE-WAIT, §3.10.7.4 eighth) and our FIN
#: and its ACK may cross the peer's (FIN-WAIT-1 straight to TIME-WAIT).
#: ``Tcb._set_state`` checks every change against it; ``docs/tcp-states.md`` is made
#: from it.
TRANSITIONS: Final[dict[TcpState, frozenset[TcpState]]] = {
    _S.CLOSED: frozenset({_S.SYN_SENT, _S.SYN_RECEIVED, _S.ESTABLISHED}),
    _S.SYN_SENT: frozenset({_S.SYN_RECEIVED, _S.ESTABLISHED, _S.FIN_WAIT_1, _S.CLOSED}),
    _S.SYN_RECEIVED: frozenset({_S.ESTABLISHED, _S.FIN_WAIT_1, _S.CLOSE_WAIT, _S.CLOSED}),
    _S.ESTABLISHED: frozenset({_S.FIN_WAIT_1, _S.CLOSE_WAIT, _S.CLOSED}),
    _S.FIN_WAIT_1: frozenset({_S.FIN_WAIT_2, _S.CLOSING, _S.TIME_WAIT, _S.CLOSED}),
    _S.FIN_WAIT_2: frozenset({_S.TIME_WAIT, _S.CLOSED}),
    _S.CLOSE_WAIT: frozenset({_S.LAST_ACK, _S.CLOSED}),
    _S.CLOSING: frozenset({_S.TIME_WAIT, _S.CLOSED}),
    _S.LAST_ACK: frozenset({_S.CLOSED}),
    _S.TIME_WAIT: frozenset({_S.CLOSED}),
    # Listening is a listener's state (listener.py); no connection enters or leaves it.
    _S.LISTEN: frozenset(),
}


def is_legal_transition(old: TcpState, new: TcpState) -> bool:
    """True when a connection may move from ``old`` to ``new`` (see :data:`TRANSITIONS`)."""
    return new in TRANSITIONS[old]

"""The state table (``core/tcp/state.py:TRANSITIONS``) against the connections' behaviour.

Every entry of the table is taken by at least one scripted scenario below, and no
scenario takes a transition the table does not list (``Tcb._set_state`` asserts it),
so the table is neither wider nor narrower than the code. ``docs/tcp-states.md`` is
rendered from the table and must match it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aionetstack.config import TcpConfig
from aionetstack.core.tcp import TcpConnection, TcpState, tcb
from aionetstack.core.tcp.state import TRANSITIONS, is_legal_transition
from aionetstack.testing.segments import LOCAL, REMOTE, ScriptedPeer
from aionetstack.testing.tcp_pair import TcpPair
from aionetstack.wire.tcp import ACK, FIN, RST, SYN, build_options

PEER_ISN = 1000
Transition = tuple[TcpState, TcpState]
DOC = Path(__file__).resolve().parents[3] / "docs" / "tcp-states.md"


@pytest.fixture
def record(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[Transition]]:
    """Every (old, new) state change made while the test runs."""
    seen: set[Transition] = set()
    original = tcb.Tcb._set_state

    def recording(self: tcb.Tcb, state: TcpState) -> None:
        seen.add((self.state, state))
        original(self, state)

    monkeypatch.setattr(tcb.Tcb, "_set_state", recording)
    yield seen


def _established(peer: ScriptedPeer) -> tuple[TcpConnection, int]:
    return peer.passive_open(peer_isn=PEER_ISN)


def handshake_and_orderly_closes() -> None:
    """Active and passive opens; each side's close, both orders; simultaneous close."""
    pair = TcpPair()
    client, server = pair.open()
    client.close()
    pair.run(lambda: server.state is TcpState.CLOSE_WAIT)
    server.close()
    pair.run(lambda: client.state is TcpState.TIME_WAIT and server.state is TcpState.CLOSED)
    pair.run_for(300)
    pair = TcpPair(seed=1)
    client, server = pair.open(81)
    client.close()
    server.close()  # simultaneous close: FIN-WAIT-1 -> CLOSING -> TIME-WAIT
    pair.run_for(300)


def resets_in_every_state() -> None:
    """An acceptable RST ends each synchronized state in CLOSED."""
    for state in ("ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK"):
        peer = ScriptedPeer()
        connection, iss = _established(peer)
        peer_seq = PEER_ISN + 1
        if state in ("FIN_WAIT_1", "FIN_WAIT_2", "CLOSING"):
            connection.shutdown_write()
            peer.take()
        if state == "FIN_WAIT_2":
            peer.inject(seq=peer_seq, ack=iss + 2)
        if state in ("CLOSE_WAIT", "LAST_ACK"):
            peer.inject(seq=peer_seq, ack=iss + 1, flags=FIN | ACK)
            peer_seq += 1
        if state == "LAST_ACK":
            connection.close()
            peer.take()
        if state == "CLOSING":
            peer.inject(seq=peer_seq, ack=iss + 1, flags=FIN | ACK)
            peer_seq += 1
        assert connection.state.name == state
        peer.inject(seq=peer_seq, flags=RST)
        assert connection.state is TcpState.CLOSED


def time_wait_ends_by_reset() -> None:
    peer = ScriptedPeer()
    connection, iss = _established(peer)
    connection.shutdown_write()
    peer.take()
    peer.inject(seq=PEER_ISN + 1, ack=iss + 2, flags=FIN | ACK)
    assert connection.state is TcpState.TIME_WAIT  # via FIN-WAIT-2 within the one segment
    peer.inject(seq=PEER_ISN + 2, flags=RST)
    assert connection.state is TcpState.CLOSED


def openings_that_end_early() -> None:
    """SYN-SENT: refused; abandoned by close(); SYN-RECEIVED: reset."""
    peer = ScriptedPeer()
    connection = peer.layer.connect(LOCAL, REMOTE, 80, peer.now)
    (syn,) = peer.take()
    peer.inject(seq=0, ack=syn.seq + 1, flags=RST | ACK, sport=80, dport=connection.local_port)
    assert connection.state is TcpState.CLOSED
    listener = peer.listen()
    (synack,) = peer.inject(seq=PEER_ISN, flags=SYN, options=build_options(mss=1460))
    peer.inject(seq=PEER_ISN + 1, flags=RST)
    assert listener.accept() is None and synack.flags == SYN | ACK


def simultaneous_open() -> None:
    """SYN-SENT -> SYN-RECEIVED -> ESTABLISHED (RFC 9293 §3.5 figure 8)."""
    peer = ScriptedPeer()
    connection = peer.layer.connect(LOCAL, REMOTE, peer.peer_port, peer.now, local_port=80)
    (syn,) = peer.take()
    peer.inject(seq=PEER_ISN, flags=SYN, options=build_options(mss=1460))
    assert connection.state is TcpState.SYN_RECEIVED
    peer.inject(seq=PEER_ISN + 1, ack=syn.seq + 1, flags=SYN | ACK)
    peer.inject(seq=PEER_ISN + 1, ack=syn.seq + 1)
    assert connection.state is TcpState.ESTABLISHED


def closed_before_the_handshake_completed() -> None:
    """close() in SYN-SENT with data queued, then the SYN-ACK: FIN-WAIT-1 at once; the same
    in SYN-RECEIVED (simultaneous open); a FIN arriving in SYN-RECEIVED: CLOSE-WAIT."""
    peer = ScriptedPeer()
    connection = peer.layer.connect(LOCAL, REMOTE, peer.peer_port, peer.now, local_port=80)
    (syn,) = peer.take()
    connection.send(b"x")
    connection.shutdown_write()
    peer.inject(seq=PEER_ISN, ack=syn.seq + 1, flags=SYN | ACK, options=build_options(mss=1460))
    assert connection.state is TcpState.FIN_WAIT_1
    peer = ScriptedPeer()
    connection = peer.layer.connect(LOCAL, REMOTE, peer.peer_port, peer.now, local_port=80)
    (syn,) = peer.take()
    peer.inject(seq=PEER_ISN, flags=SYN, options=build_options(mss=1460))
    connection.send(b"x")
    connection.shutdown_write()
    peer.inject(seq=PEER_ISN + 1, ack=syn.seq + 1)
    assert connection.state is TcpState.FIN_WAIT_1
    peer = ScriptedPeer()
    listener = peer.listen()
    (synack,) = peer.inject(seq=PEER_ISN, flags=SYN, options=build_options(mss=1460))
    peer.inject(seq=PEER_ISN + 1, ack=synack.seq + 1, flags=FIN | ACK)
    connection = listener.accept()
    assert connection is not None and connection.state is TcpState.CLOSE_WAIT


def syn_cookie_handshake() -> None:
    """A SYN-cookie ACK makes an ESTABLISHED connection directly (RFC 4987 §3.6)."""
    pair = TcpPair(None, TcpConfig(syn_queue_limit=0))
    pair.open()


SCENARIOS: list[Callable[[], None]] = [
    handshake_and_orderly_closes,
    resets_in_every_state,
    time_wait_ends_by_reset,
    openings_that_end_early,
    simultaneous_open,
    closed_before_the_handshake_completed,
    syn_cookie_handshake,
]


#: Entries the table keeps for branches written as RFC 9293 §3.10.7.4 eighth words them
#: ("if our FIN has been ACKed ... enter TIME-WAIT"; a FIN in SYN-RECEIVED enters
#: CLOSE-WAIT) that this implementation never takes: step five (ACK) runs before step
#: eight (FIN) on the same segment and has already moved FIN-WAIT-1 on to FIN-WAIT-2,
#: and SYN-RECEIVED on to ESTABLISHED.
TAKEN_VIA_AN_INTERMEDIATE_STATE = {
    (TcpState.FIN_WAIT_1, TcpState.TIME_WAIT),
    (TcpState.SYN_RECEIVED, TcpState.CLOSE_WAIT),
}


@pytest.mark.interpreted  # patches a method compiled code calls directly
def test_every_entry_of_the_table_is_taken_and_no_other(record: set[Transition]) -> None:
    for scenario in SCENARIOS:
        scenario()
    table = {(old, new) for old, targets in TRANSITIONS.items() for new in targets}
    assert record <= table
    missing = table - record - TAKEN_VIA_AN_INTERMEDIATE_STATE
    assert missing == set(), f"never taken: {sorted(missing, key=str)}"
    assert (TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2) in record
    assert (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT) in record


def test_an_illegal_change_is_caught() -> None:
    peer = ScriptedPeer()
    connection, _ = _established(peer)
    assert not is_legal_transition(TcpState.ESTABLISHED, TcpState.SYN_SENT)
    with pytest.raises(AssertionError, match="ESTABLISHED"):
        connection._set_state(TcpState.SYN_SENT)


def render_state_doc() -> str:
    """``docs/tcp-states.md`` as the table makes it."""
    lines = [
        "# TCP states",
        "",
        "Generated from `aionetstack/core/tcp/state.py:TRANSITIONS` (a test keeps it equal):",
        "every state change a connection may make (RFC 9293 §3.3.2 figure 5 and the",
        "additions the table's comment explains). `Tcb._set_state` checks each change.",
        "",
        "| from | may move to |",
        "|---|---|",
    ]
    for old, targets in TRANSITIONS.items():
        names = ", ".join(sorted(t.value for t in targets)) or "(a listener's state only)"
        lines.append(f"| {old.value} | {names} |")
    return "\n".join(lines) + "\n"


def test_the_state_document_matches_the_table() -> None:
    assert DOC.read_text() == render_state_doc(), "regenerate docs/tcp-states.md"


if __name__ == "__main__":  # python tests/core/tcp/test_transitions.py: regenerate the doc
    DOC.write_text(render_state_doc())

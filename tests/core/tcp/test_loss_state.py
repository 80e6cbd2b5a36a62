"""The loss-recovery state is made at the first sign of loss and given back after it.

A connection holds the shared ``NO_LOSS`` until a duplicate ACK, a SACK block, a
retransmission timeout or a lost segment; once everything sent is acknowledged and
recovery is over it holds ``NO_LOSS`` again, and a second loss episode is repaired
as the first was. ``NO_LOSS`` itself is never written.
"""

from __future__ import annotations

from aionetstack.config import TcpConfig
from aionetstack.core.tcp import TcpConnection
from aionetstack.core.tcp.loss_state import NO_LOSS, LossState
from aionetstack.core.tcp.recovery import check_invariants
from aionetstack.testing.segments import Emitted, ScriptedPeer
from aionetstack.wire.tcp import ACK, build_options

PEER_ISN = 7000
MSS = 1000
SEGMENTS = 6


def _open() -> tuple[ScriptedPeer, TcpConnection, int]:
    peer = ScriptedPeer(TcpConfig(hystart=False), mss=MSS)
    options = build_options(mss=MSS, sack_permitted=True)
    connection, iss = peer.passive_open(peer_isn=PEER_ISN, options=options, window=60000)
    connection.set_nodelay(True)
    return peer, connection, iss


def _sack(peer: ScriptedPeer, ack: int, left: int, right: int) -> list[Emitted]:
    blocks = build_options(sack_blocks=[(left, right)])
    return peer.inject(seq=PEER_ISN + 1, ack=ack, flags=ACK, window=60000, options=blocks)


def _lose_the_first_segment(peer: ScriptedPeer, connection: TcpConnection, iss: int) -> int:
    """Send SEGMENTS segments; the peer gets all but the first and SACKs them one by one.
    Returns the sequence number of the first segment, which must be sent again."""
    connection.send(b"s" * MSS * SEGMENTS)
    sent = [segment for segment in peer.take() if segment.payload]
    assert len(sent) == SEGMENTS
    first = sent[0].seq
    retransmitted = []
    for segment in sent[1:]:
        out = _sack(peer, first, sent[1].seq, segment.seq + MSS)
        retransmitted += [s for s in out if s.payload and s.seq == first]
        assert check_invariants(connection) == []
    assert connection._loss is not NO_LOSS
    assert len(retransmitted) == 1, "the hole is retransmitted once, by fast retransmit"
    return first


def test_a_loss_episode_makes_the_state_and_the_final_ack_gives_it_back() -> None:
    peer, connection, iss = _open()
    assert connection._loss is NO_LOSS
    for episode in (1, 2):
        first = _lose_the_first_segment(peer, connection, iss)
        assert peer.layer.stats["fast_retransmits"] == episode
        peer.inject(seq=PEER_ISN + 1, ack=first + MSS * SEGMENTS, window=60000)
        assert connection._una == connection._nxt
        assert connection._loss is NO_LOSS, "recovery is over and nothing is outstanding"
    assert _fields(NO_LOSS) == _fields(LossState()), "the shared zeros were never written"


def test_a_partial_ack_keeps_the_state() -> None:
    """An ACK that leaves data outstanding does not give the state back."""
    peer, connection, iss = _open()
    first = _lose_the_first_segment(peer, connection, iss)
    peer.inject(seq=PEER_ISN + 1, ack=first + MSS, window=60000)  # the hole, not the rest
    assert connection._una < connection._nxt
    assert connection._loss is not NO_LOSS
    assert check_invariants(connection) == []


def _fields(state: LossState) -> dict[str, object]:
    # Compiled by mypyc, the class lists its fields in __mypyc_attrs__, not __slots__.
    names = getattr(LossState, "__mypyc_attrs__", None) or LossState.__slots__
    return {name: getattr(state, name) for name in names}

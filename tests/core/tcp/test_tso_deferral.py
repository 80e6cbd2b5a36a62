"""TSO deferral: a segment the windows cut short waits for the next ACK while ACKs are
still to come, unless it fills a third of the smaller window (Linux
``tcp_tso_should_defer`` with ``tcp_tso_win_divisor`` 3). Without it, ACK clocking cuts
a TSO stream into one small segment per ACK."""

from __future__ import annotations

from aionetstack.config import TcpConfig
from aionetstack.core.tcp import TcpConnection
from aionetstack.testing.segments import Emitted, ScriptedPeer
from aionetstack.wire.tcp import ACK, build_options

PEER_ISN = 9000
MSS = 1000
WINDOW = 60000


def _sender() -> tuple[ScriptedPeer, TcpConnection, int, list[Emitted]]:
    """A connection on a TSO link with its initial window in flight and more to send."""
    peer = ScriptedPeer(TcpConfig(hystart=False, congestion_control="newreno"), mss=MSS)
    peer.layer.max_segment_payload = 64 * MSS
    peer.layer.partial_checksums = True
    connection, iss = peer.passive_open(peer_isn=PEER_ISN, options=build_options(mss=MSS),
                                        window=WINDOW)  # fmt: skip
    connection.set_nodelay(True)
    connection.send(b"t" * 200 * MSS)
    first = [segment for segment in peer.take() if segment.payload]
    return peer, connection, iss, first


def _ack(peer: ScriptedPeer, iss: int, acked: int) -> list[Emitted]:
    out = peer.inject(seq=PEER_ISN + 1, ack=iss + 1 + acked, flags=ACK, window=WINDOW)
    return [segment for segment in out if segment.payload]


def test_the_initial_window_goes_out_at_once_as_one_segment() -> None:
    """Nothing is in flight: no ACK is coming, so nothing is held back."""
    _peer, connection, _iss, first = _sender()
    assert [len(segment.payload) for segment in first] == [connection._cc.cwnd]


def test_a_small_opening_waits_and_the_next_ack_sends_one_bigger_segment() -> None:
    peer, connection, iss, first = _sender()
    flight = len(first[0].payload)  # 10 segments' worth
    # An ACK of one segment opens room for two (slow start): under a third of cwnd.
    assert _ack(peer, iss, MSS) == []
    assert connection._nxt - connection._una == flight - MSS
    # The next ACKs open more; once the room reaches a third of cwnd it goes as one.
    sent: list[int] = []
    acked = MSS
    while not sent:
        acked += MSS
        sent = [len(segment.payload) for segment in _ack(peer, iss, acked)]
    assert len(sent) == 1
    assert sent[0] * 3 >= connection._cc.cwnd
    assert sent[0] > 2 * MSS  # not the two segments each ACK alone would have allowed


def test_nothing_is_held_back_in_recovery() -> None:
    """Three duplicate ACKs: fast recovery sends what PRR allows at once."""
    peer, connection, iss, _first = _sender()
    for _ in range(3):
        peer.inject(seq=PEER_ISN + 1, ack=iss + 1, flags=ACK, window=WINDOW)
    assert connection._recovery == "fast"
    assert not connection._defers(MSS, connection._cc.cwnd)

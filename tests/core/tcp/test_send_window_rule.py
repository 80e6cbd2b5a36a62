"""Which segments may set the send window: RFC 9293 §3.10.7.4, SND.WL1 and SND.WL2.

A segment updates SND.WND only if its sequence number is newer than that of the
segment that last did (SND.WL1), or equal to it with an acknowledgment at least as
new (SND.WL2): a segment the network reordered must not put back an older window.
The window is observed as what the connection then sends.
"""

from __future__ import annotations

import pytest

from aionetstack.testing.segments import ScriptedPeer
from aionetstack.wire.tcp import ACK, PSH

MSS = 1460
SEQ_MASK = 0xFFFFFFFF


def _bytes_sent_when_writing_plenty(peer: ScriptedPeer, connection: object) -> int:
    peer.take()
    connection.set_nodelay(True)  # type: ignore[attr-defined]
    connection.send(b"w" * 20 * MSS)  # type: ignore[attr-defined]
    return sum(len(segment.payload) for segment in peer.take())


@pytest.mark.parametrize("peer_isn", [5000, SEQ_MASK - 150], ids=["plain", "wrapping"])
@pytest.mark.parametrize("reordered", [False, True], ids=["in-order", "reordered"])
def test_the_window_of_the_newest_segment_holds(peer_isn: int, reordered: bool) -> None:
    """Two data segments: the later one (by sequence number) sets the window, in
    whatever order they arrive. The sequence numbers may wrap between them."""
    peer = ScriptedPeer()
    connection, iss = peer.passive_open(peer_isn=peer_isn)
    first = {"seq": (peer_isn + 1) & SEQ_MASK, "window": 1 * MSS, "payload": b"a" * 100}
    second = {"seq": (peer_isn + 101) & SEQ_MASK, "window": 2 * MSS, "payload": b"b" * 100}
    for segment in (second, first) if reordered else (first, second):
        peer.inject(ack=(iss + 1) & SEQ_MASK, flags=ACK | PSH, **segment)  # type: ignore[arg-type]
    assert connection.receive() == b"a" * 100 + b"b" * 100
    assert _bytes_sent_when_writing_plenty(peer, connection) == 2 * MSS


def test_a_late_ack_of_the_same_sequence_number_does_not_set_the_window() -> None:
    """Pure ACKs share a sequence number: then the newer acknowledgment decides."""
    peer = ScriptedPeer()
    connection, iss = peer.passive_open(peer_isn=5000, window=10 * MSS)
    connection.set_nodelay(True)
    connection.send(b"d" * 2 * MSS)
    assert sum(len(segment.payload) for segment in peer.take()) == 2 * MSS
    peer.inject(seq=5001, ack=iss + 1 + MSS, window=3 * MSS)
    peer.inject(seq=5001, ack=iss + 1 + 2 * MSS, window=2 * MSS)  # everything, window 2 MSS
    peer.inject(seq=5001, ack=iss + 1 + MSS, window=1 * MSS)  # the first ACK again, late
    assert _bytes_sent_when_writing_plenty(peer, connection) == 2 * MSS


def test_a_newer_ack_of_the_same_sequence_number_sets_the_window() -> None:
    """The control for the test above: the same ACKs in order; the last one counts."""
    peer = ScriptedPeer()
    connection, iss = peer.passive_open(peer_isn=5000, window=10 * MSS)
    connection.set_nodelay(True)
    connection.send(b"d" * 2 * MSS)
    peer.take()
    peer.inject(seq=5001, ack=iss + 1 + MSS, window=3 * MSS)
    peer.inject(seq=5001, ack=iss + 1 + 2 * MSS, window=1 * MSS)
    assert _bytes_sent_when_writing_plenty(peer, connection) == 1 * MSS

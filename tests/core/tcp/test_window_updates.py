"""When a read sends a pure window update (RFC 9293 §3.8.6.2.2, Linux tcp_cleanup_rbuf)."""

from __future__ import annotations

from aionetstack.config import TcpConfig
from aionetstack.testing.segments import ScriptedPeer
from aionetstack.wire.tcp import ACK, PSH

PEER_ISN = 5000


def _pure_acks(peer: ScriptedPeer) -> list[object]:
    return [s for s in peer.take() if s.flags == ACK and not s.payload]


def test_a_small_read_early_on_sends_no_pure_ack() -> None:
    """The first request of a connection: its answer carries the window, not an extra ACK."""
    peer = ScriptedPeer()
    connection, iss = peer.passive_open(peer_isn=PEER_ISN)
    peer.inject(seq=PEER_ISN + 1, ack=iss + 1, flags=ACK | PSH, payload=b"x")
    assert connection.receive() == b"x"
    assert _pure_acks(peer) == []
    connection.set_nodelay(True)
    connection.send(b"y")
    (answer,) = peer.take()
    assert answer.payload == b"y"


def test_a_read_after_the_peer_used_half_the_window_sends_an_update() -> None:
    peer = ScriptedPeer(TcpConfig(receive_buffer=60000))  # the window is the buffer
    connection, iss = peer.passive_open(peer_isn=PEER_ISN)
    offered = connection._rcv_wnd_max
    sent = 0
    while 2 * (offered - sent) > offered:  # fill just past half of it, reading nothing
        chunk = b"d" * 1000
        peer.inject(seq=PEER_ISN + 1 + sent, ack=iss + 1, payload=chunk)
        sent += len(chunk)
    peer.take()
    assert len(connection.receive()) == sent
    assert len(_pure_acks(peer)) == 1


def test_a_read_before_the_peer_used_half_the_window_waits() -> None:
    peer = ScriptedPeer()
    connection, iss = peer.passive_open(peer_isn=PEER_ISN)
    peer.inject(seq=PEER_ISN + 1, ack=iss + 1, payload=b"d" * 20000)  # under half of 64 KB
    peer.take()
    assert len(connection.receive()) == 20000
    assert _pure_acks(peer) == []


def test_a_window_under_one_segment_is_reopened_by_a_read() -> None:
    """The peer's sender SWS avoidance may wait for the window: the read must announce it."""
    peer = ScriptedPeer(TcpConfig(receive_buffer=4096))
    connection, iss = peer.passive_open(peer_isn=PEER_ISN)
    peer.inject(seq=PEER_ISN + 1, ack=iss + 1, payload=b"z" * 3600)  # leaves < 1 MSS
    peer.take()
    assert connection.receive() == b"z" * 3600
    assert len(_pure_acks(peer)) == 1

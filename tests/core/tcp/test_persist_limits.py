"""Zero-window probing, orphan retries and the user timeout (the Sockstress class,
CVE-2008-4609; Linux tcp_probe_timer, tcp_orphan_retries, TCP_USER_TIMEOUT / RFC 5482).

gVisor counterparts: tcp_zero_window_probe{,_retransmit,_usertimeout}_test, tcp_user_timeout_test.
"""

from __future__ import annotations

import socket

from aionetstack.aio.transport import TCP_USER_TIMEOUT, StackSocket
from aionetstack.config import TcpConfig
from aionetstack.core.tcp import TcpClosed, TcpConnection, TcpState
from aionetstack.testing.segments import LOCAL, REMOTE, ScriptedPeer

PEER_ISN = 1000
DAY = 24 * 3600.0


def zero_window_connection(
    config: TcpConfig | None = None,
) -> tuple[ScriptedPeer, TcpConnection, int]:
    """An established connection whose peer has closed its window, with data queued."""
    peer = ScriptedPeer(config or TcpConfig())
    connection, iss = peer.passive_open(peer_isn=PEER_ISN)
    peer.inject(seq=PEER_ISN + 1, ack=iss + 1, window=0)
    connection.send(b"z" * 100_000)
    assert not [s for s in peer.take() if s.payload]  # nothing may go: the window is 0
    return peer, connection, iss


def run_answering(peer: ScriptedPeer, iss: int, seconds: float) -> None:
    """Let ``seconds`` pass, answering every window probe with a zero window."""
    end = peer.now + seconds
    for _ in range(100_000):
        deadline = peer.layer.get_timer()
        if deadline is None or deadline > end:
            break
        for emitted in peer.advance(deadline - peer.now):
            if not emitted.payload and emitted.flags & 0x04 == 0:
                peer.inject(seq=PEER_ISN + 1, ack=iss + 1, window=0)
    peer.advance(max(end - peer.now, 0))


def closed_error(peer: ScriptedPeer) -> OSError | None:
    (closed,) = peer.events_of(TcpClosed)
    assert isinstance(closed, TcpClosed)
    return closed.error


def test_a_silent_zero_window_is_given_up_after_data_retries_probes() -> None:
    peer, connection, _ = zero_window_connection()
    peer.advance(DAY)
    assert connection.state is TcpState.CLOSED
    assert isinstance(closed_error(peer), TimeoutError)
    stats = peer.layer.statistics()
    assert stats["zero_window_probes_unanswered"] == 1
    assert stats["window_probes_sent"] == TcpConfig().data_retries


def test_an_orphan_answering_with_a_zero_window_is_reset_within_minutes() -> None:
    """Closed by its application with 100 kB queued; the peer answers every probe but
    never opens its window (Sockstress). Linux kills such an orphan after
    tcp_orphan_retries backoffs; so do we."""
    peer, connection, iss = zero_window_connection()
    connection.close()
    run_answering(peer, iss, 300.0)
    assert connection.state is TcpState.CLOSED
    stats = peer.layer.statistics()
    assert stats["orphans_zero_window_aborted"] == 1
    assert stats["window_probes_sent"] == TcpConfig().orphan_retries
    assert stats["connections_current"] == 0


def test_an_open_connection_answering_with_a_zero_window_is_probed_until_the_user_timeout() -> None:
    """Without a user timeout an application's own connection to a live peer that is not
    reading stays open (as in Linux); with one, it fails with TimeoutError."""
    peer, connection, iss = zero_window_connection()
    run_answering(peer, iss, 3600.0)
    assert connection.state is TcpState.ESTABLISHED
    peer2, connection2, iss2 = zero_window_connection()
    connection2.set_user_timeout(30.0)
    run_answering(peer2, iss2, 300.0)
    assert connection2.state is TcpState.CLOSED
    assert isinstance(closed_error(peer2), TimeoutError)
    assert peer2.layer.statistics()["user_timeouts"] == 1


def test_an_orphan_with_unacknowledged_data_stops_after_orphan_retries() -> None:
    """A silent peer: an orphan gives up after orphan_retries (8) retransmissions, not
    data_retries (15, about 13 minutes)."""
    peer = ScriptedPeer()
    connection, _ = peer.passive_open(peer_isn=PEER_ISN)
    connection.send(b"d" * 5000)
    peer.take()
    connection.close()
    peer.advance(3600.0)
    stats = peer.layer.statistics()
    assert stats["orphans_retries_exhausted"] == 1
    assert stats["retransmission_timeouts"] == TcpConfig().orphan_retries + 1
    assert stats["connections_current"] == 0


def test_the_user_timeout_ends_retransmissions_early() -> None:
    peer = ScriptedPeer(TcpConfig(user_timeout=5.0))
    connection, _ = peer.passive_open(peer_isn=PEER_ISN)
    start = peer.now
    connection.send(b"d" * 5000)
    peer.take()
    for _ in range(100):
        peer.advance(0.5)
        if connection.state is TcpState.CLOSED:
            break
    assert isinstance(closed_error(peer), TimeoutError)
    assert 5.0 <= peer.now - start <= 8.0
    assert peer.layer.statistics()["user_timeouts"] == 1


def test_tcp_user_timeout_is_set_through_the_transport_socket() -> None:
    peer = ScriptedPeer()
    connection, _ = peer.passive_open(peer_isn=PEER_ISN)
    sock = StackSocket(connection, ("198.18.0.1", 80))
    sock.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, 2500)
    assert connection.user_timeout == 2.5
    assert sock.getsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT) == 2500


def test_the_user_timeout_ends_a_connect_that_gets_no_answer() -> None:
    """A SYN nobody answers: with a 3 s user timeout the connect fails after about 3 s
    instead of syn_retries (about 2 minutes); a later data RTO does not inherit the stamp."""
    peer = ScriptedPeer(TcpConfig(user_timeout=3.0))
    start = peer.now
    connection = peer.layer.connect(LOCAL, REMOTE, 8080, peer.now)
    peer.take()
    for _ in range(1200):
        peer.advance(0.25)
        if connection.state is TcpState.CLOSED:
            break
    assert isinstance(closed_error(peer), TimeoutError)
    assert 3.0 <= peer.now - start <= 4.5  # the second RTO after the SYN, 1 + 2 s
    assert peer.layer.statistics()["user_timeouts"] == 1


def test_keepalive_with_a_user_timeout_gives_up_on_silence_not_probe_count() -> None:
    config = TcpConfig(
        keepalive=True, keepalive_idle=10.0, keepalive_interval=5.0, user_timeout=20.0
    )
    peer = ScriptedPeer(config)
    connection, _ = peer.passive_open(peer_isn=PEER_ISN)
    peer.advance(100.0)
    assert connection.state is TcpState.CLOSED
    stats = peer.layer.statistics()
    assert stats["keepalive_timeouts"] == 1
    assert stats["keepalive_probes_sent"] == 2  # at 10 s and 15 s; gave up at 20 s

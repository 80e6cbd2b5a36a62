"""Separate caps for TIME-WAIT and orphans (Linux tcp_max_tw_buckets, tcp_max_orphans),
so neither can fill ``max_connections`` and refuse service to new connections."""

from __future__ import annotations

from aionetstack.config import TcpConfig
from aionetstack.core.tcp import TcpState
from aionetstack.testing.segments import ScriptedPeer
from aionetstack.wire.tcp import ACK, FIN, SYN, build_options


def server_closed_churn(peer: ScriptedPeer, count: int) -> None:
    """``count`` connections that the server (us) closes first: each ends in TIME-WAIT."""
    listener = peer.listen()
    for index in range(count):
        sport = 20000 + index
        (synack,) = peer.inject(seq=100, flags=SYN, sport=sport, options=build_options(mss=1460))
        peer.inject(seq=101, ack=synack.seq + 1, sport=sport)
        connection = listener.accept()
        assert connection is not None
        connection.close()
        (fin,) = peer.take()
        assert fin.flags & FIN
        peer.inject(seq=101, ack=fin.seq + 1, flags=ACK | FIN, sport=sport)


def test_time_wait_is_capped_and_never_fills_the_table() -> None:
    """max_connections 64, max_time_wait 16: 200 server-closed connections in a row all
    succeed; TIME-WAIT holds 16, the rest close at once (time_wait_overflow)."""
    peer = ScriptedPeer(TcpConfig(max_connections=64, max_time_wait=16))
    server_closed_churn(peer, 200)
    stats = peer.layer.statistics()
    assert stats["time_wait_current"] == 16
    assert stats["time_wait_overflow"] == 200 - 16
    assert stats["connections_current"] == 16
    assert stats.get("drops_accept_queue_full", 0) == 0
    states = {connection.state for connection in peer.layer.connections}
    assert states == {TcpState.TIME_WAIT}


def test_orphans_are_capped() -> None:
    """max_orphans 4: the fifth connection closed with unacknowledged data is reset."""
    peer = ScriptedPeer(TcpConfig(max_orphans=4))
    listener = peer.listen()
    connections = []
    for index in range(5):
        sport = 21000 + index
        (synack,) = peer.inject(seq=100, flags=SYN, sport=sport, options=build_options(mss=1460))
        peer.inject(seq=101, ack=synack.seq + 1, sport=sport)
        connection = listener.accept()
        assert connection is not None
        connection.send(b"x" * 1000)
        peer.take()
        connections.append(connection)
    for connection in connections:
        connection.close()
    stats = peer.layer.statistics()
    assert stats["orphans_current"] == 4
    assert stats["orphans_over_limit_reset"] == 1
    assert connections[-1].state is TcpState.CLOSED

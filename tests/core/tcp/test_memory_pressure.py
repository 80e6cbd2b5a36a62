"""A stack-wide TCP buffer budget (Linux tcp_mem): over ``memory_limit`` the stack
purges out-of-order queues, refuses new out-of-order data and drops new SYNs, until
the total is back under it."""

from __future__ import annotations

from aionetstack.config import TcpConfig
from aionetstack.testing.segments import ScriptedPeer
from aionetstack.wire.tcp import SYN, build_options

PEER_ISN = 1000


def test_memory_pressure_purges_and_refuses_then_recovers() -> None:
    peer = ScriptedPeer(TcpConfig(memory_limit=65536, receive_buffer=1 << 20))
    connection, iss = peer.passive_open(peer_isn=PEER_ISN)
    for index in range(60):  # 60 kB unread, in order
        peer.inject(seq=PEER_ISN + 1 + 1000 * index, ack=iss + 1, payload=b"r" * 1000)
    for index in range(10):  # 10 kB out of order
        peer.inject(seq=PEER_ISN + 1 + 70_000 + 2000 * index, ack=iss + 1, payload=b"o" * 1000)
    assert connection._ooo is not None
    peer.advance(1.0)  # the next check sees 70 kB > 64 KiB
    stats = peer.layer.statistics()
    assert stats["memory_pressure_entered"] == 1
    assert stats["memory_pressure_out_of_order_purged"] == 10_000
    assert stats["memory_in_use"] == 70_000
    assert connection._ooo is None
    peer.inject(seq=PEER_ISN + 1 + 90_000, ack=iss + 1, payload=b"o" * 1000)
    assert connection._ooo is None
    assert peer.layer.statistics()["drops_out_of_order_memory_pressure"] == 1
    (none,) = [peer.inject(seq=5, flags=SYN, sport=41000, options=build_options(mss=1460))]
    assert none == []
    assert peer.layer.statistics()["drops_syn_memory_pressure"] == 1
    # The window's right edge does not grow while under pressure (a read would open it).
    edge = connection._rcv_adv
    connection.receive(1000)
    peer.inject(seq=PEER_ISN + 1 + 60_000, ack=iss + 1, payload=b"r" * 10)
    assert connection._rcv_adv == edge
    assert peer.layer.statistics()["receive_window_held_memory_pressure"] >= 1
    # The application reads: the next check ends the pressure; SYNs are answered again.
    assert len(connection.receive()) == 59_010
    peer.advance(1.0)
    (synack,) = peer.inject(seq=5, flags=SYN, sport=41001, options=build_options(mss=1460))
    assert synack.flags == SYN | 0x10
    # Out of pressure, the window opens again.
    peer.inject(seq=PEER_ISN + 1 + 60_010, ack=iss + 1, payload=b"r" * 2000)
    peer.advance(0.1)  # the delayed ACK carries the window
    assert connection._rcv_adv > edge
    assert not peer.layer.memory_pressure

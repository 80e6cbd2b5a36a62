"""SYN cookies are checked only while the listener sent some recently (Linux
tcp_synq_no_recent_overflow, TCP_SYNCOOKIE_VALID 2 min; gVisor packetdrill
reset_for_ack_when_no_syn_cookies_in_use.pkt): without a flood, a bare ACK to a
listener gets a RST and no cookie check, so forging one needs a flood in progress."""

from __future__ import annotations

from aionetstack.config import TcpConfig
from aionetstack.testing.segments import ScriptedPeer
from aionetstack.wire.tcp import ACK, RST, SYN, build_options


def test_bare_acks_without_a_flood_get_a_reset_and_no_cookie_check() -> None:
    peer = ScriptedPeer()
    listener = peer.listen()
    for index in range(2000):
        (reply,) = peer.inject(seq=index, ack=(index * 7919) & 0xFFFFFFFF, sport=20000 + index)
        assert reply.flags == RST
    stats = peer.layer.statistics()
    assert stats.get("syn_cookies_failed", 0) == 0
    assert stats["syn_cookies_not_recent"] == 2000
    assert listener.accept() is None


def test_cookies_are_checked_during_a_flood_and_not_two_minutes_after() -> None:
    peer = ScriptedPeer(TcpConfig(syn_queue_limit=1))
    listener = peer.listen()
    peer.inject(seq=1, flags=SYN, sport=30000, options=build_options(mss=1460))  # fills the queue
    (synack,) = peer.inject(seq=5, flags=SYN, sport=30001, options=build_options(mss=1460))
    assert peer.layer.statistics()["syn_cookies_sent"] == 1
    peer.inject(seq=6, ack=synack.seq + 1, flags=ACK, sport=30001)  # completes via the cookie
    accepted = listener.accept()
    assert accepted is not None and accepted.remote_port == 30001
    peer.inject(seq=9, ack=12345, flags=ACK, sport=30002)  # a wrong cookie: checked, fails
    assert peer.layer.statistics()["syn_cookies_failed"] == 1
    peer.clock.advance(121.0)
    peer.inject(seq=9, ack=12345, flags=ACK, sport=30003)
    stats = peer.layer.statistics()
    assert stats["syn_cookies_failed"] == 1 and stats["syn_cookies_not_recent"] == 1

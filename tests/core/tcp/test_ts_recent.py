"""RFC 7323 §4.3: TS.Recent moves only for acceptable segments.

Replays Linux's packetdrill ``ts_recent/invalid_ack.pkt`` (also upstream as
``tools/testing/selftests/net/packetdrill/tcp_ts_recent_invalid_ack.pkt``): a FIN
whose ACK acknowledges data never sent carries a huge TSval; it must not become
TS.Recent, or PAWS drops the good data that follows. The SYN and inexact-RST
variants (gVisor ``tcp_paws_mechanism_test``) are checked the same way.
"""

from __future__ import annotations

import pytest

from aionetstack.core.tcp import TcpConnection
from aionetstack.testing.segments import ScriptedPeer
from aionetstack.wire.tcp import ACK, FIN, RST, SYN, build_options

PEER_ISN = 0


def handshake(peer: ScriptedPeer) -> tuple[TcpConnection, int]:
    """+0 < S 0:0(0) win 32792 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
    +.1 < . 1:1(0) ack 1 win 257 <nop,nop,TS val 200 ecr 100>"""
    listener = peer.listen()
    syn_options = build_options(mss=1460, sack_permitted=True, timestamp=(100, 0), window_scale=7)
    (synack,) = peer.inject(seq=PEER_ISN, flags=SYN, window=32792, options=syn_options)
    assert synack.flags == SYN | ACK
    assert synack.segment.options.timestamp is not None
    peer.clock.advance(0.1)
    our_ts = synack.segment.options.timestamp[0]
    peer.inject(
        seq=PEER_ISN + 1, ack=synack.seq + 1, window=257,
        options=build_options(timestamp=(200, our_ts)),
    )  # fmt: skip
    connection = listener.accept()
    assert connection is not None
    return connection, synack.seq


@pytest.mark.parametrize(
    ("flags", "seq_offset", "ack_offset", "counter"),
    [
        (FIN | ACK, 0, 9999, "drops_ack_too_new"),  # invalid_ack.pkt: ACK of unsent data
        (SYN | ACK, 0, 1, "challenge_acks_syn"),  # an in-window SYN
        (RST | ACK, 10, 1, "challenge_acks_rst"),  # an in-window RST, not exactly at RCV.NXT
    ],
)
def test_an_unacceptable_segment_does_not_become_ts_recent(
    flags: int, seq_offset: int, ack_offset: int, counter: str
) -> None:
    peer = ScriptedPeer()
    connection, iss = handshake(peer)
    # The bad segment, with TS val 200000.
    replies = peer.inject(
        seq=PEER_ISN + 1 + seq_offset, ack=iss + ack_offset, flags=flags, window=257,
        options=build_options(timestamp=(200000, 100)),
    )  # fmt: skip
    assert peer.layer.statistics()[counter] == 1
    # +0 > . 1:1(0) ack 1 <nop,nop,TS val ... ecr 200>: TS.Recent is still 200.
    for reply in replies:
        assert reply.segment.options.timestamp is not None
        assert reply.segment.options.timestamp[1] == 200
    # +0 < . 1:1001(1000) ack 1 win 257 <nop,nop,TS val 201 ecr 100>: accepted.
    peer.clock.advance(0.05)
    peer.inject(
        seq=PEER_ISN + 1, ack=iss + 1, window=257, payload=b"d" * 1000,
        options=build_options(timestamp=(201, 100)),
    )  # fmt: skip
    acks = peer.advance(0.2)
    assert connection.receive() == b"d" * 1000
    assert peer.layer.statistics().get("drops_paws", 0) == 0
    assert acks and acks[-1].ack == PEER_ISN + 1001
    assert acks[-1].segment.options.timestamp is not None
    assert acks[-1].segment.options.timestamp[1] == 201

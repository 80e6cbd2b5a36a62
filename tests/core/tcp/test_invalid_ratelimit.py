"""Replies to invalid segments are rate-limited per connection (Linux
``tcp_invalid_ratelimit``, 500 ms; RFC 5961 §7 per connection, as Linux since
083ae308280d and gVisor): an ACK loop or a flood draws one reply per 500 ms, and one
connection under attack does not use up another's challenge ACKs (CVE-2016-5696).

gVisor counterparts: tcp_outside_the_window_test, tcp_unacc_seq_ack_test,
tcp_paws_mechanism_test; Linux: "mitigate ACK loops" (f2b2c582e824).
"""

from __future__ import annotations

import pytest

from aionetstack.core.tcp import TcpConnection
from aionetstack.testing.segments import ScriptedPeer
from aionetstack.wire.tcp import ACK, RST, SYN, build_options

PEER_ISN = 1000


def open_from(peer: ScriptedPeer, sport: int, options: bytes = b"") -> tuple[TcpConnection, int]:
    """One more passive open on the listener, from ``sport``."""
    syn_options = options or build_options(mss=1460)
    (synack,) = peer.inject(seq=PEER_ISN, flags=SYN, sport=sport, options=syn_options)
    ack_options = b""
    if synack.segment.options.timestamp is not None:
        ack_options = build_options(timestamp=(101, synack.segment.options.timestamp[0]))
    peer.inject(seq=PEER_ISN + 1, ack=synack.seq + 1, sport=sport, options=ack_options)
    connection = peer.layer.connections[-1]
    assert connection.remote_port == sport
    return connection, synack.seq


def flood(peer: ScriptedPeer, count: int, spacing: float, **segment: object) -> int:
    """Inject ``count`` copies, ``spacing`` seconds apart; return the replies drawn."""
    replies = 0
    for _ in range(count):
        replies += len(peer.inject(**segment))  # type: ignore[arg-type]
        peer.clock.advance(spacing)
    return replies


@pytest.mark.parametrize("kind", ["out_of_window", "ack_too_new", "paws"])
def test_a_flood_of_invalid_segments_draws_one_reply_per_500_ms(kind: str) -> None:
    peer = ScriptedPeer()
    peer.listen()
    ts = build_options(mss=1460, timestamp=(100, 0), sack_permitted=True)
    _, iss = open_from(peer, 40000, ts)
    segment: dict[str, object] = {"sport": 40000, "seq": PEER_ISN + 1, "ack": iss + 1}
    if kind == "out_of_window":
        segment["seq"] = PEER_ISN + 1 + 10_000_000
        segment["options"] = build_options(timestamp=(200, 0))
    elif kind == "ack_too_new":
        segment["ack"] = iss + 1 + 5000
        segment["options"] = build_options(timestamp=(200, 0))
    else:
        segment["options"] = build_options(timestamp=(50, 0))  # older than TS.Recent
    replies = flood(peer, 1000, 0.001, **segment)  # 1,000 segments in one second
    assert replies <= 3
    assert peer.layer.statistics()[f"replies_rate_limited_{kind}"] >= 997


def test_out_of_window_data_is_still_acknowledged_every_time() -> None:
    """Data is exempt (as in Linux): a duplicate needs its duplicate ACK."""
    peer = ScriptedPeer()
    peer.listen()
    _, iss = open_from(peer, 40000)
    peer.inject(seq=PEER_ISN + 1, ack=iss + 1, sport=40000, payload=b"x" * 100)
    old = {"sport": 40000, "seq": PEER_ISN + 1, "ack": iss + 1, "payload": b"x" * 100}
    assert flood(peer, 20, 0.001, **old) == 20


def test_a_challenge_ack_flood_on_one_connection_leaves_the_others_their_budget() -> None:
    """In-window RSTs at 2,000/s to connection B: B answers at most 3 in a second, and
    connection A's challenge ACK still goes out (one stack-wide counter would be spent)."""
    peer = ScriptedPeer()
    peer.listen()
    _, iss_a = open_from(peer, 40001)
    _, iss_b = open_from(peer, 40002)
    rst = {"sport": 40002, "seq": PEER_ISN + 1 + 100, "flags": RST}
    answered_b = flood(peer, 2000, 0.0005, **rst)
    assert answered_b <= 3
    stats = peer.layer.statistics()
    assert stats["replies_rate_limited_challenge_rst"] >= 1997
    (challenge,) = peer.inject(sport=40001, seq=PEER_ISN + 1 + 100, flags=RST)
    assert challenge.flags == ACK and challenge.ack == PEER_ISN + 1
    assert iss_a != iss_b


def test_a_retransmitted_fin_in_time_wait_is_always_acknowledged() -> None:
    """A FIN occupies sequence space: like data it is exempt from the limit (Linux
    tcp_oow_rate_limited), so a peer whose last ACK was lost gets it again at once."""
    peer = ScriptedPeer()
    peer.listen()
    connection, _ = open_from(peer, 40000)
    connection.close()
    (fin,) = peer.take()
    peer.inject(seq=PEER_ISN + 1, ack=fin.seq + 1, sport=40000, flags=ACK | 0x01)
    assert connection.state.value == "TIME-WAIT"
    again = {"sport": 40000, "seq": PEER_ISN + 1, "ack": fin.seq + 1, "flags": ACK | 0x01}
    assert flood(peer, 5, 0.01, **again) == 5

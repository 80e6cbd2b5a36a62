"""Per-state tests: each kind of segment arriving in each state (RFC 9293 §3.10.7),
driven by a scripted peer in virtual time."""

from __future__ import annotations

import pytest

from aionetstack.config import TcpConfig
from aionetstack.core.tcp import (
    TcpAccepted,
    TcpClosed,
    TcpConnected,
    TcpConnection,
    TcpEofReceived,
    TcpReadable,
    TcpState,
)
from aionetstack.testing.segments import LOCAL, REMOTE, ScriptedPeer
from aionetstack.wire.tcp import ACK, FIN, PSH, RST, SYN, build_options

PEER_ISN = 1000
MSS = 1460


def closed_events(peer: ScriptedPeer) -> list[TcpClosed]:
    return [e for e in peer.events if isinstance(e, TcpClosed)]


# --- drivers to each state ----------------------------------------------------------


def established(peer: ScriptedPeer) -> tuple[TcpConnection, int]:
    connection, iss = peer.passive_open(peer_isn=PEER_ISN)
    assert connection.state is TcpState.ESTABLISHED
    return connection, iss


def fin_wait_1(peer: ScriptedPeer, *, half_close: bool = True) -> tuple[TcpConnection, int]:
    connection, iss = established(peer)
    if half_close:
        connection.shutdown_write()
    else:
        connection.close()
    (fin,) = peer.take()
    assert fin.flags == FIN | ACK and fin.seq == iss + 1
    assert connection.state is TcpState.FIN_WAIT_1
    return connection, iss


def fin_wait_2(peer: ScriptedPeer, *, half_close: bool = True) -> tuple[TcpConnection, int]:
    connection, iss = fin_wait_1(peer, half_close=half_close)
    assert peer.inject(seq=PEER_ISN + 1, ack=iss + 2) == []
    assert connection.state is TcpState.FIN_WAIT_2
    return connection, iss


def close_wait(peer: ScriptedPeer) -> tuple[TcpConnection, int]:
    connection, iss = established(peer)
    (ack,) = peer.inject(seq=PEER_ISN + 1, ack=iss + 1, flags=FIN | ACK)
    assert ack.ack == PEER_ISN + 2
    assert connection.state is TcpState.CLOSE_WAIT
    return connection, iss


def time_wait(peer: ScriptedPeer) -> tuple[TcpConnection, int]:
    connection, iss = fin_wait_2(peer)
    (ack,) = peer.inject(seq=PEER_ISN + 1, ack=iss + 2, flags=FIN | ACK)
    assert ack.flags == ACK and ack.ack == PEER_ISN + 2
    assert connection.state is TcpState.TIME_WAIT
    return connection, iss


# --- CLOSED: no connection (§3.10.7.1) ------------------------------------------------


def test_closed_syn_gets_rst_ack() -> None:
    peer = ScriptedPeer()
    (rst,) = peer.inject(seq=77, flags=SYN)
    assert rst.flags == RST | ACK and rst.seq == 0 and rst.ack == 78
    assert rst.checksum_ok()


def test_closed_ack_gets_rst_with_seq_from_ack() -> None:
    peer = ScriptedPeer()
    (rst,) = peer.inject(seq=77, ack=5555, flags=ACK, payload=b"abc")
    assert rst.flags == RST and rst.seq == 5555


def test_closed_data_fin_without_ack_counts_length() -> None:
    peer = ScriptedPeer()
    (rst,) = peer.inject(seq=77, flags=FIN, payload=b"abc")
    assert rst.flags == RST | ACK and rst.ack == 77 + 3 + 1


def test_closed_rst_is_never_answered() -> None:
    peer = ScriptedPeer()
    assert peer.inject(seq=77, ack=1, flags=RST | ACK) == []
    assert peer.layer.statistics()["drops_rst_no_owner"] == 1


# --- LISTEN (§3.10.7.2) ---------------------------------------------------------------


def test_listen_syn_gets_syn_ack_with_options() -> None:
    peer = ScriptedPeer()
    peer.listen()
    options = build_options(mss=1400, sack_permitted=True, timestamp=(10, 0), window_scale=7)
    (synack,) = peer.inject(seq=PEER_ISN, flags=SYN, options=options)
    assert synack.flags == SYN | ACK and synack.ack == PEER_ISN + 1
    opts = synack.segment.options
    assert opts.mss == 1460 and opts.sack_permitted and opts.window_scale is not None
    assert opts.timestamp is not None and opts.timestamp[1] == 10


def test_listen_syn_without_options_gets_bare_mss() -> None:
    peer = ScriptedPeer()
    peer.listen()
    (synack,) = peer.inject(seq=PEER_ISN, flags=SYN)
    opts = synack.segment.options
    assert (
        opts.mss == 1460
        and opts.window_scale is None
        and opts.timestamp is None
        and not opts.sack_permitted
    )


def test_listen_rst_ignored_and_ack_reset() -> None:
    peer = ScriptedPeer()
    peer.listen()
    assert peer.inject(seq=1, flags=RST) == []
    (rst,) = peer.inject(seq=1, ack=999, flags=ACK)
    assert rst.flags == RST and rst.seq == 999


def test_listen_segment_without_syn_dropped() -> None:
    peer = ScriptedPeer()
    peer.listen()
    assert peer.inject(seq=1, flags=FIN) == []
    assert peer.layer.statistics()["drops_no_syn_to_listener"] == 1


def test_listen_port_in_use() -> None:
    peer = ScriptedPeer()
    peer.listen()
    with pytest.raises(OSError, match="in use"):
        peer.layer.listen(None, peer.local_port)
    other = peer.layer.listen(LOCAL, 0)
    assert 32768 <= other.local_port <= 60999


# --- SYN-SENT (§3.10.7.3) -------------------------------------------------------------


def connecting(peer: ScriptedPeer) -> tuple[TcpConnection, int]:
    connection = peer.layer.connect(
        LOCAL, REMOTE, peer.peer_port, peer.now, local_port=peer.local_port
    )
    (syn,) = peer.take()
    assert syn.flags == SYN and connection.state is TcpState.SYN_SENT
    assert syn.segment.options.mss == MSS and syn.segment.options.timestamp is not None
    return connection, syn.seq


@pytest.mark.parametrize("bad_ack_delta", [0, 2, -5])
def test_syn_sent_unacceptable_ack_gets_rst(bad_ack_delta: int) -> None:
    peer = ScriptedPeer()
    connection, iss = connecting(peer)
    (rst,) = peer.inject(seq=PEER_ISN, ack=iss + bad_ack_delta, flags=SYN | ACK)
    assert rst.flags == RST and rst.seq == (iss + bad_ack_delta) & 0xFFFFFFFF
    assert connection.state is TcpState.SYN_SENT


def test_syn_sent_unacceptable_ack_with_rst_ignored() -> None:
    peer = ScriptedPeer()
    connection, iss = connecting(peer)
    assert peer.inject(seq=0, ack=iss + 7, flags=RST | ACK) == []
    assert connection.state is TcpState.SYN_SENT


def test_syn_sent_rst_with_good_ack_refuses() -> None:
    peer = ScriptedPeer()
    connection, iss = connecting(peer)
    assert peer.inject(seq=0, ack=iss + 1, flags=RST | ACK) == []
    assert connection.state is TcpState.CLOSED
    (closed,) = closed_events(peer)
    assert isinstance(closed.error, ConnectionRefusedError)


def test_syn_sent_rst_without_ack_ignored() -> None:
    peer = ScriptedPeer()
    connection, _ = connecting(peer)
    assert peer.inject(seq=0, flags=RST) == []
    assert connection.state is TcpState.SYN_SENT


def test_syn_sent_syn_ack_establishes() -> None:
    peer = ScriptedPeer()
    connection, iss = connecting(peer)
    (ack,) = peer.inject(
        seq=PEER_ISN, ack=iss + 1, flags=SYN | ACK, options=build_options(mss=1000)
    )
    assert ack.flags == ACK and ack.seq == iss + 1 and ack.ack == PEER_ISN + 1
    assert connection.state is TcpState.ESTABLISHED
    assert connection.snd_mss == 1000
    assert any(isinstance(e, TcpConnected) for e in peer.events)


def test_syn_sent_syn_alone_is_simultaneous_open() -> None:
    peer = ScriptedPeer()
    connection, iss = connecting(peer)
    (synack,) = peer.inject(seq=PEER_ISN, flags=SYN, options=build_options(mss=1460))
    assert synack.flags == SYN | ACK and synack.seq == iss and synack.ack == PEER_ISN + 1
    assert connection.state is TcpState.SYN_RECEIVED
    peer.inject(seq=PEER_ISN + 1, ack=iss + 1, flags=ACK)
    assert connection.state is TcpState.ESTABLISHED
    assert any(isinstance(e, TcpConnected) for e in peer.events)


def test_syn_sent_plain_ack_dropped() -> None:
    peer = ScriptedPeer()
    connection, iss = connecting(peer)
    assert peer.inject(seq=PEER_ISN, ack=iss + 1, flags=ACK) == []
    assert connection.state is TcpState.SYN_SENT


def test_syn_retransmission_backoff_and_timeout() -> None:
    """RFC 6298 §5.5 back-off from initial_rto; TimeoutError after syn_retries."""
    peer = ScriptedPeer(TcpConfig(syn_retries=3))
    connection, iss = connecting(peer)
    origin = peer.now
    fired = []
    for _ in range(4):
        deadline = peer.layer.get_timer()
        assert deadline is not None
        fired.append(deadline - origin)
        peer.clock.advance_to(deadline)
        peer.layer.handle_timer(deadline)
        sent = peer.take()
        if connection.state is TcpState.SYN_SENT:
            (syn,) = sent
            assert syn.flags == SYN and syn.seq == iss
    assert fired == pytest.approx([1.0, 3.0, 7.0, 15.0])
    assert connection.state is TcpState.CLOSED
    (closed,) = closed_events(peer)
    assert isinstance(closed.error, TimeoutError)
    assert peer.layer.get_timer() is None


# --- SYN-RECEIVED --------------------------------------------------------------------------


def syn_received(peer: ScriptedPeer) -> int:
    peer.listen()
    (synack,) = peer.inject(seq=PEER_ISN, flags=SYN, options=build_options(mss=1460))
    return synack.seq


def test_syn_received_retransmitted_syn_resends_syn_ack() -> None:
    peer = ScriptedPeer()
    iss = syn_received(peer)
    (again,) = peer.inject(seq=PEER_ISN, flags=SYN, options=build_options(mss=1460))
    assert again.flags == SYN | ACK and again.seq == iss


def test_syn_received_good_ack_establishes_and_queues() -> None:
    peer = ScriptedPeer()
    listener = peer.listen()
    (synack,) = peer.inject(seq=PEER_ISN, flags=SYN)
    assert listener.half_open == 1
    assert peer.inject(seq=PEER_ISN + 1, ack=synack.seq + 1) == []
    assert listener.half_open == 0 and listener.pending == 1
    assert any(isinstance(e, TcpAccepted) for e in peer.events)
    connection = listener.accept()
    assert connection is not None and connection.state is TcpState.ESTABLISHED


def test_syn_received_bad_ack_gets_rst() -> None:
    peer = ScriptedPeer()
    iss = syn_received(peer)
    (rst,) = peer.inject(seq=PEER_ISN + 1, ack=iss + 50)
    assert rst.flags == RST and rst.seq == iss + 50


def test_syn_received_rst_returns_to_listen_silently() -> None:
    peer = ScriptedPeer()
    syn_received(peer)
    assert peer.inject(seq=PEER_ISN + 1, flags=RST) == []
    assert peer.layer.statistics()["connections_current"] == 0
    assert closed_events(peer) == []


def test_syn_received_synack_retries_then_dropped() -> None:
    peer = ScriptedPeer(TcpConfig(synack_retries=2))
    syn_received(peer)
    retransmissions = [s for s in peer.advance(60) if s.flags == SYN | ACK]
    assert len(retransmissions) == 2
    assert peer.layer.statistics()["connections_current"] == 0
    assert closed_events(peer) == []


def test_accept_queue_full_drops_final_ack() -> None:
    peer = ScriptedPeer()
    listener = peer.layer.listen(LOCAL, peer.local_port, backlog=1)
    for port in (50000, 50001):
        (synack,) = peer.inject(seq=PEER_ISN, flags=SYN, sport=port)
        peer.inject(seq=PEER_ISN + 1, ack=synack.seq + 1, sport=port)
    assert listener.pending == 1 and listener.half_open == 1
    assert peer.layer.statistics()["drops_accept_queue_full"] == 1


# --- ESTABLISHED ---------------------------------------------------------------------------


def test_established_in_order_data_delayed_ack() -> None:
    peer = ScriptedPeer()
    connection, iss = established(peer)
    assert peer.inject(seq=PEER_ISN + 1, ack=iss + 1, flags=ACK | PSH, payload=b"hello") == []
    assert connection.readable_bytes == 5
    assert sum(isinstance(e, TcpReadable) for e in peer.events) == 1
    (ack,) = peer.advance(0.04)
    assert ack.ack == PEER_ISN + 6
    assert connection.receive() == b"hello"


def test_established_second_full_segment_acked_at_once() -> None:
    peer = ScriptedPeer()
    _connection, iss = established(peer)
    assert peer.inject(seq=PEER_ISN + 1, ack=iss + 1, payload=b"a" * MSS) == []
    (ack,) = peer.inject(seq=PEER_ISN + 1 + MSS, ack=iss + 1, payload=b"b" * MSS)
    assert ack.ack == PEER_ISN + 1 + 2 * MSS
    # Readable is coalesced: one event until the app reads.
    assert sum(isinstance(e, TcpReadable) for e in peer.events) == 1


def test_established_out_of_order_immediate_dup_ack_then_fill() -> None:
    peer = ScriptedPeer()
    connection, iss = established(peer)
    (dup,) = peer.inject(seq=PEER_ISN + 101, ack=iss + 1, payload=b"B" * 100)
    assert dup.ack == PEER_ISN + 1
    (fill,) = peer.inject(seq=PEER_ISN + 1, ack=iss + 1, payload=b"A" * 100)
    assert fill.ack == PEER_ISN + 201
    assert connection.receive() == b"A" * 100 + b"B" * 100


def test_established_sack_blocks_for_out_of_order_data() -> None:
    peer = ScriptedPeer()
    options = build_options(mss=1460, sack_permitted=True)
    _connection, iss = peer.passive_open(peer_isn=PEER_ISN, options=options)
    peer.inject(seq=PEER_ISN + 201, ack=iss + 1, payload=b"x" * 100)
    (dup,) = peer.inject(seq=PEER_ISN + 401, ack=iss + 1, payload=b"y" * 100)
    blocks = dup.segment.options.sack_blocks
    assert blocks[0] == (PEER_ISN + 401, PEER_ISN + 501)  # the most recent first (RFC 2018 §4)
    assert (PEER_ISN + 201, PEER_ISN + 301) in blocks


def test_established_duplicate_data_reacked() -> None:
    peer = ScriptedPeer()
    connection, iss = established(peer)
    peer.inject(seq=PEER_ISN + 1, ack=iss + 1, payload=b"abc")
    (ack,) = peer.inject(seq=PEER_ISN + 1, ack=iss + 1, payload=b"abc")
    assert ack.ack == PEER_ISN + 4
    assert connection.receive() == b"abc"


def test_established_out_of_window_data_acked_and_dropped() -> None:
    peer = ScriptedPeer(TcpConfig(receive_buffer=4096))
    connection, iss = established(peer)
    (ack,) = peer.inject(seq=PEER_ISN + 1 + 100_000, ack=iss + 1, payload=b"z")
    assert ack.ack == PEER_ISN + 1
    assert connection.readable_bytes == 0


def test_established_exact_rst_resets() -> None:
    peer = ScriptedPeer()
    connection, _ = established(peer)
    assert peer.inject(seq=PEER_ISN + 1, flags=RST) == []
    assert connection.state is TcpState.CLOSED
    (closed,) = closed_events(peer)
    assert isinstance(closed.error, ConnectionResetError)


def test_established_in_window_rst_gets_challenge_ack() -> None:
    """RFC 5961 §3.2."""
    peer = ScriptedPeer()
    connection, iss = established(peer)
    (challenge,) = peer.inject(seq=PEER_ISN + 100, flags=RST)
    assert challenge.flags == ACK and challenge.seq == iss + 1 and challenge.ack == PEER_ISN + 1
    assert connection.state is TcpState.ESTABLISHED


def test_established_out_of_window_rst_dropped() -> None:
    peer = ScriptedPeer()
    connection, _ = established(peer)
    assert peer.inject(seq=PEER_ISN + 10_000_000, flags=RST) == []
    assert connection.state is TcpState.ESTABLISHED


def test_established_syn_gets_challenge_ack() -> None:
    """RFC 5961 §4.2: any SYN in a synchronized state."""
    peer = ScriptedPeer()
    connection, _iss = established(peer)
    (challenge,) = peer.inject(seq=PEER_ISN + 1, flags=SYN)
    assert challenge.flags == ACK and challenge.ack == PEER_ISN + 1
    assert connection.state is TcpState.ESTABLISHED


def test_challenge_ack_rate_limit() -> None:
    """RFC 5961 §7: the stack-wide bucket (the per-connection limit turned off here)."""
    peer = ScriptedPeer(TcpConfig(challenge_ack_limit=3, invalid_ratelimit=0))
    established(peer)
    answered = sum(len(peer.inject(seq=PEER_ISN + 50, flags=RST)) for _ in range(10))
    assert answered == 3
    assert peer.layer.statistics()["challenge_acks_suppressed"] == 7
    peer.advance(1.0)
    assert len(peer.inject(seq=PEER_ISN + 50, flags=RST)) == 1


def test_established_ack_for_unsent_data_is_acked_and_dropped() -> None:
    peer = ScriptedPeer()
    connection, iss = established(peer)
    (ack,) = peer.inject(seq=PEER_ISN + 1, ack=iss + 1000, payload=b"data")
    assert ack.ack == PEER_ISN + 1  # the data was not accepted
    assert connection.readable_bytes == 0


def test_established_too_old_ack_gets_challenge() -> None:
    """RFC 5961 §5.2: an ACK below SND.UNA - MAX.SND.WND."""
    peer = ScriptedPeer()
    connection, iss = established(peer)
    (challenge,) = peer.inject(seq=PEER_ISN + 1, ack=iss - 200_000, payload=b"x")
    assert challenge.flags == ACK
    assert connection.readable_bytes == 0
    assert peer.layer.statistics()["drops_ack_too_old"] == 1


def test_established_segment_without_ack_dropped() -> None:
    peer = ScriptedPeer()
    connection, _ = established(peer)
    assert peer.inject(seq=PEER_ISN + 1, flags=PSH, payload=b"x") == []
    assert connection.readable_bytes == 0


def test_established_fin_goes_to_close_wait() -> None:
    peer = ScriptedPeer()
    connection, _ = close_wait(peer)
    assert connection.eof_received
    assert any(isinstance(e, TcpEofReceived) for e in peer.events)


def test_established_data_then_send_and_ack() -> None:
    peer = ScriptedPeer()
    connection, iss = established(peer)
    assert connection.send(b"hello world") == 11
    (data,) = peer.take()
    assert data.payload == b"hello world" and data.seq == iss + 1 and data.flags & PSH
    assert peer.inject(seq=PEER_ISN + 1, ack=iss + 12) == []
    assert connection.send_buffer_used == 0


def test_paws_drops_old_timestamp() -> None:
    """RFC 7323 §5.3."""
    peer = ScriptedPeer()
    options = build_options(mss=1460, timestamp=(5000, 0))
    connection, iss = peer.passive_open(peer_isn=PEER_ISN, options=options)
    fresh = build_options(timestamp=(5010, 0))
    peer.inject(seq=PEER_ISN + 1, ack=iss + 1, payload=b"a", options=fresh)
    stale = build_options(timestamp=(4000, 0))
    (ack,) = peer.inject(seq=PEER_ISN + 2, ack=iss + 1, payload=b"b", options=stale)
    assert ack.ack == PEER_ISN + 2  # b was not accepted
    assert connection.receive() == b"a"
    assert peer.layer.statistics()["drops_paws"] == 1


# --- FIN-WAIT-1 / FIN-WAIT-2 / CLOSING / TIME-WAIT ------------------------------------------


def test_fin_wait_1_ack_of_fin_to_fin_wait_2() -> None:
    fin_wait_2(ScriptedPeer())


def test_fin_wait_1_fin_without_our_fin_acked_to_closing_then_time_wait() -> None:
    peer = ScriptedPeer()
    connection, iss = fin_wait_1(peer)
    (ack,) = peer.inject(seq=PEER_ISN + 1, ack=iss + 1, flags=FIN | ACK)
    assert ack.ack == PEER_ISN + 2 and connection.state is TcpState.CLOSING
    assert peer.inject(seq=PEER_ISN + 2, ack=iss + 2) == []
    assert connection.state is TcpState.TIME_WAIT


def test_fin_wait_1_fin_ack_together_to_time_wait() -> None:
    peer = ScriptedPeer()
    connection, iss = fin_wait_1(peer)
    peer.inject(seq=PEER_ISN + 1, ack=iss + 2, flags=FIN | ACK)
    assert connection.state is TcpState.TIME_WAIT
    (closed,) = closed_events(peer)
    assert closed.error is None


def test_half_close_keeps_receiving() -> None:
    peer = ScriptedPeer()
    connection, iss = fin_wait_2(peer)
    peer.inject(seq=PEER_ISN + 1, ack=iss + 2, payload=b"more")
    assert connection.receive() == b"more"


def test_fin_wait_1_fin_retransmitted_with_backoff() -> None:
    peer = ScriptedPeer()
    _connection, iss = fin_wait_1(peer)
    times = []
    for _ in range(3):
        (again,) = peer.advance(peer.layer.get_timer() - peer.now)  # type: ignore[operator]
        assert again.flags & FIN and again.seq == iss + 1
        times.append(round(peer.now - 1000.0, 6))
    assert times == [0.2, 0.6, 1.4]  # RFC 6298 §5.5 doubling from the 200 ms minimum


def test_orphan_fin_wait_2_times_out() -> None:
    peer = ScriptedPeer()
    connection, _ = fin_wait_2(peer, half_close=False)
    peer.advance(59)
    assert connection.state is TcpState.FIN_WAIT_2
    peer.advance(2)
    assert connection.state is TcpState.CLOSED
    assert peer.layer.statistics()["connections_current"] == 0


def test_orphan_receiving_data_resets() -> None:
    peer = ScriptedPeer()
    connection, iss = fin_wait_2(peer, half_close=False)
    (rst,) = peer.inject(seq=PEER_ISN + 1, ack=iss + 2, payload=b"late")
    assert rst.flags & RST and connection.state is TcpState.CLOSED


def test_time_wait_refin_reacked_and_expires_after_2msl() -> None:
    peer = ScriptedPeer(TcpConfig(msl=10.0))
    connection, iss = time_wait(peer)
    peer.advance(5)
    (ack,) = peer.inject(seq=PEER_ISN + 1, ack=iss + 2, flags=FIN | ACK)
    assert ack.ack == PEER_ISN + 2
    peer.advance(19.9)
    assert connection.state is TcpState.TIME_WAIT
    peer.advance(0.2)
    assert connection.state is TcpState.CLOSED
    assert peer.layer.statistics()["connections_current"] == 0
    assert len(closed_events(peer)) == 1


def test_time_wait_rst_closes_without_second_event() -> None:
    peer = ScriptedPeer()
    connection, _ = time_wait(peer)
    peer.inject(seq=PEER_ISN + 2, flags=RST)
    assert connection.state is TcpState.CLOSED
    assert len(closed_events(peer)) == 1


def test_time_wait_new_syn_reopens() -> None:
    """RFC 6191-style reuse of a TIME-WAIT tuple by a SYN with a higher sequence number."""
    peer = ScriptedPeer()
    connection, _ = time_wait(peer)
    (synack,) = peer.inject(seq=PEER_ISN + 100_000, flags=SYN)
    assert synack.flags == SYN | ACK and synack.ack == PEER_ISN + 100_001
    assert connection.state is TcpState.CLOSED


# --- CLOSE-WAIT / LAST-ACK -------------------------------------------------------------------


def test_close_wait_ignores_text_and_close_sends_fin() -> None:
    peer = ScriptedPeer()
    connection, iss = close_wait(peer)
    (ack,) = peer.inject(seq=PEER_ISN + 2, ack=iss + 1, payload=b"after-fin")
    assert ack.ack == PEER_ISN + 2 and connection.readable_bytes == 0
    connection.close()
    (fin,) = peer.take()
    assert fin.flags == FIN | ACK and connection.state is TcpState.LAST_ACK
    assert peer.inject(seq=PEER_ISN + 2, ack=iss + 2) == []
    assert connection.state is TcpState.CLOSED
    (closed,) = closed_events(peer)
    assert closed.error is None


def test_close_with_unread_data_resets() -> None:
    """RFC 2525 §2.17."""
    peer = ScriptedPeer()
    connection, iss = established(peer)
    peer.inject(seq=PEER_ISN + 1, ack=iss + 1, payload=b"unread")
    connection.close()
    (rst,) = peer.take()
    assert rst.flags & RST


def test_abort_sends_rst_and_reports_aborted() -> None:
    peer = ScriptedPeer()
    connection, iss = established(peer)
    connection.abort()
    (rst,) = peer.take()
    assert rst.flags & RST and rst.seq == iss + 1
    (closed,) = closed_events(peer)
    assert isinstance(closed.error, ConnectionAbortedError)
    with pytest.raises(BrokenPipeError):
        connection.send(b"x")


def test_listener_close_resets_half_open() -> None:
    peer = ScriptedPeer()
    listener = peer.listen()
    peer.inject(seq=PEER_ISN, flags=SYN)
    listener.close()
    (rst,) = peer.take()
    assert rst.flags & RST
    (rst2,) = peer.inject(seq=PEER_ISN, flags=SYN)
    assert rst2.flags & RST  # nobody listens any more


# --- table: each kind of segment in each synchronized state (RFC 9293 §3.10.7.4 + RFC 5961) ---


def closing(peer: ScriptedPeer) -> tuple[TcpConnection, int]:
    connection, iss = fin_wait_1(peer)
    peer.inject(seq=PEER_ISN + 1, ack=iss + 1, flags=FIN | ACK)
    assert connection.state is TcpState.CLOSING
    return connection, iss


def last_ack(peer: ScriptedPeer) -> tuple[TcpConnection, int]:
    connection, iss = close_wait(peer)
    connection.close()
    peer.take()
    assert connection.state is TcpState.LAST_ACK
    return connection, iss


DRIVERS = {
    "ESTABLISHED": established,
    "FIN_WAIT_1": fin_wait_1,
    "FIN_WAIT_2": fin_wait_2,
    "CLOSE_WAIT": close_wait,
    "CLOSING": closing,
    "LAST_ACK": last_ack,
    "TIME_WAIT": time_wait,
}


def expected_rcv_nxt(state: str) -> int:
    """The peer's next sequence number as our side sees it (its FIN counts once received)."""
    return PEER_ISN + (2 if state in ("CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT") else 1)


@pytest.mark.parametrize("state", list(DRIVERS))
def test_exact_rst_closes(state: str) -> None:
    peer = ScriptedPeer()
    connection, _ = DRIVERS[state](peer)
    assert peer.inject(seq=expected_rcv_nxt(state), flags=RST) == []
    assert connection.state is TcpState.CLOSED
    assert peer.layer.statistics()["connections_current"] == 0
    assert len(closed_events(peer)) == 1  # exactly once, whatever came before


@pytest.mark.parametrize("state", list(DRIVERS))
def test_inexact_in_window_rst_gets_challenge_ack(state: str) -> None:
    peer = ScriptedPeer()
    connection, _ = DRIVERS[state](peer)
    replies = peer.inject(seq=expected_rcv_nxt(state) + 10, flags=RST)
    assert connection.state.name == state
    if state != "TIME_WAIT":  # TIME-WAIT's window is empty: the RST is simply out of window
        (challenge,) = replies
        assert challenge.flags == ACK and challenge.ack == expected_rcv_nxt(state)


@pytest.mark.parametrize("state", list(DRIVERS))
def test_syn_gets_challenge_ack(state: str) -> None:
    peer = ScriptedPeer()
    connection, _ = DRIVERS[state](peer)
    (challenge,) = peer.inject(seq=expected_rcv_nxt(state), flags=SYN)
    assert challenge.flags == ACK and challenge.ack == expected_rcv_nxt(state)
    assert connection.state.name == state


@pytest.mark.parametrize("state", list(DRIVERS))
def test_old_duplicate_data_is_reacked(state: str) -> None:
    peer = ScriptedPeer()
    connection, iss = DRIVERS[state](peer)
    (ack,) = peer.inject(seq=PEER_ISN - 500, ack=iss + 1, payload=b"old")
    assert ack.flags == ACK and ack.ack == expected_rcv_nxt(state)
    assert connection.state.name == state and connection.readable_bytes == 0


@pytest.mark.parametrize("state", [s for s in DRIVERS if s != "TIME_WAIT"])
def test_ack_of_unsent_data_is_reacked_and_dropped(state: str) -> None:
    peer = ScriptedPeer()
    connection, iss = DRIVERS[state](peer)
    (ack,) = peer.inject(seq=expected_rcv_nxt(state), ack=iss + 10_000)
    assert ack.flags == ACK and ack.seq in (iss + 1, iss + 2)
    assert connection.state.name == state


def test_receiver_sws_no_tiny_window_updates() -> None:
    """RFC 9293 §3.8.6.2.2: reading a little from a full buffer does not reopen the window."""
    peer = ScriptedPeer(TcpConfig(receive_buffer=4096))
    connection, iss = established(peer)
    sent = []
    for index in range(4):
        sent += peer.inject(seq=PEER_ISN + 1 + index * 1024, ack=iss + 1, payload=b"d" * 1024)
    sent += peer.advance(0.2)
    assert sent[-1].ack == PEER_ISN + 1 + 4096 and sent[-1].segment.window == 0
    connection.receive(100)
    assert peer.take() == []  # 100 bytes < min(RCV.BUFF/2, MSS): no update
    connection.receive(2000)
    (update,) = peer.take()
    assert update.segment.window >= 2048


@pytest.mark.parametrize("timestamps", [True, False])
def test_data_segments_with_sack_blocks_stay_within_the_mss(timestamps: bool) -> None:
    """RFC 6691 §2: SACK blocks on data segments come out of the payload, never beyond the MTU."""
    peer = ScriptedPeer()
    ts = (100, 0) if timestamps else None
    options = build_options(mss=1460, sack_permitted=True, timestamp=ts)
    connection, iss = peer.passive_open(peer_isn=PEER_ISN, options=options)
    data_options = build_options(timestamp=(200, 0)) if timestamps else b""
    for hole in range(3):  # three separate out-of-order ranges: three SACK blocks
        peer.inject(seq=PEER_ISN + 1 + 1000 * (2 * hole + 1), ack=iss + 1, payload=b"o" * 100,
                    options=data_options)  # fmt: skip
    connection.send(b"p" * 20_000)
    sent = peer.take()
    assert len(sent) >= 10
    for emitted in sent:
        assert len(emitted.raw) <= 1460 + 20, emitted
        assert emitted.segment.options.sack_blocks  # they still carry SACK information
    total = sum(len(e.payload) for e in sent)
    assert 10 * 1300 < total <= 20_000
    assert all(e.payload == b"p" * len(e.payload) for e in sent)
    # A retransmitted full-size segment drops blocks rather than exceed the MSS.
    peer.advance(5)
    for emitted in peer.take() + peer.sent:
        assert len(emitted.raw) <= 1460 + 20


def test_zero_window_probes_back_off_exactly_and_window_reopens() -> None:
    """RFC 9293 §3.8.6.1: probe a zero window, doubling the interval, never giving up while
    the peer answers; a window update restarts the flow."""
    peer = ScriptedPeer()
    connection, iss = peer.passive_open(peer_isn=PEER_ISN, window=0)
    connection.send(b"q" * 3000)
    assert peer.take() == []  # nothing fits in a zero window
    start = peer.now
    probe_times = []
    for _ in range(5):
        deadline = peer.layer.get_timer()
        assert deadline is not None
        peer.clock.advance_to(deadline)
        peer.layer.handle_timer(deadline)
        (probe,) = peer.take()
        assert probe.seq == iss and probe.payload == b""  # SND.UNA - 1, no data
        probe_times.append(round(peer.now - start, 6))
        # The peer answers each probe, still with a zero window.
        assert peer.inject(seq=PEER_ISN + 1, ack=iss + 1, window=0) == []
    # The handshake gave an RTT sample, so the base is the 200 ms minimum RTO; then doubling.
    assert probe_times == [0.2, 0.6, 1.4, 3.0, 6.2]
    assert connection.state is TcpState.ESTABLISHED
    sent = peer.inject(seq=PEER_ISN + 1, ack=iss + 1, window=65535)
    assert [len(s.payload) for s in sent] == [1460, 1460]  # Nagle holds the 80-byte tail
    (tail,) = peer.inject(seq=PEER_ISN + 1, ack=iss + 1 + 2920, window=65535)
    assert tail.payload == b"q" * 80


def test_fast_recovery_with_prr_spreads_sending_over_the_acks() -> None:
    """RFC 6675 + RFC 6937: the first segment is lost; SACKs for the others start fast
    recovery (retransmitting it), then PRR sends new data in proportion to what is delivered."""
    peer = ScriptedPeer(TcpConfig(congestion_control="newreno"))
    options = build_options(mss=1460, sack_permitted=True)
    connection, iss = peer.passive_open(peer_isn=PEER_ISN, options=options)
    connection._cc.cwnd = 20 * 1460
    connection.send(b"r" * 60 * 1460)
    first = peer.take()
    assert len(first) == 20
    base = iss + 1
    sends_per_ack = []
    for index in range(1, 20):  # segment 0 is lost; SACK 1..index
        sack = build_options(sack_blocks=[(base + 1460, base + 1460 * (index + 1))])
        sent = peer.inject(seq=PEER_ISN + 1, ack=base, options=sack)
        sends_per_ack.append(sent)
    retransmissions = [s for batch in sends_per_ack for s in batch if s.seq == base]
    assert len(retransmissions) == 1  # fast retransmit of the hole, once
    new_data = [s for batch in sends_per_ack for s in batch if s.seq != base]
    # NewReno halves: about one new segment per two delivered, spread over the ACKs.
    assert 5 <= len(new_data) <= 10, len(new_data)
    acks_that_sent = sum(1 for batch in sends_per_ack[3:] if batch)
    assert acks_that_sent >= 5
    assert peer.layer.statistics()["fast_retransmits"] == 1


def test_close_in_fin_wait_2_arms_the_orphan_timeout() -> None:
    """Half-close, the FIN is acknowledged, then close(): the orphan still expires."""
    peer = ScriptedPeer(TcpConfig(fin_wait_2_timeout=5.0))
    connection, _ = fin_wait_2(peer, half_close=True)
    peer.advance(10.0)  # nothing is due in a half-closed FIN-WAIT-2: the heap empties
    assert peer.layer.get_timer() is None
    connection.close()
    assert peer.layer.get_timer() == pytest.approx(peer.now + 5.0)
    peer.advance(4.9)
    assert connection.state is TcpState.FIN_WAIT_2
    peer.advance(0.2)
    assert connection.state is TcpState.CLOSED
    assert peer.layer.statistics()["orphans_fin_wait_2_timeout"] == 1

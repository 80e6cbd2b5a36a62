"""Scenario tests: two TCP layers in virtual time (handshakes, closes, timers, attacks, wrap)."""

from __future__ import annotations

import errno
import itertools

import pytest

from aionetstack.config import TcpConfig
from aionetstack.core.tcp import TcpClosed, TcpConnected, TcpConnection, TcpEofReceived, TcpState
from aionetstack.testing.netsim import ADDRESS_A, ADDRESS_B
from aionetstack.testing.tcp_pair import TcpPair
from aionetstack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment


def closed(events: list[object]) -> list[TcpClosed]:
    return [e for e in events if isinstance(e, TcpClosed)]


def pattern(size: int, salt: int = 0) -> bytes:
    return bytes((i * 7 + salt) & 0xFF for i in range(size))


def pump(
    pair: TcpPair,
    sender: TcpConnection,
    data: bytes,
    receiver: TcpConnection,
    *,
    max_time: float = 120.0,
) -> bytes:
    """Send ``data`` through the pair (refilling the send buffer) and return what arrived."""
    received = bytearray()
    sent = 0

    def progress() -> bool:
        nonlocal sent
        if sent < len(data) and sender.send_buffer_free:
            sent += sender.send(data[sent : sent + 65536])
        received.extend(receiver.receive())
        return len(received) >= len(data)

    assert pair.run(progress, max_time=max_time), f"stalled at {len(received)} of {len(data)}"
    return bytes(received)


def test_handshake_data_and_clean_close() -> None:
    pair = TcpPair()
    client, server = pair.open()
    assert server.state is TcpState.ESTABLISHED
    assert [type(e) for e in pair.events_a] == [TcpConnected]
    assert pump(pair, client, b"ping" * 1000, server) == b"ping" * 1000
    assert pump(pair, server, b"pong" * 1000, client) == b"pong" * 1000
    client.close()
    pair.run(lambda: server.eof_received)
    server.close()
    pair.run(lambda: bool(closed(pair.events_a)) and bool(closed(pair.events_b)))
    assert client.state is TcpState.TIME_WAIT and server.state is TcpState.CLOSED
    assert [c.error for c in closed(pair.events_a) + closed(pair.events_b)] == [None, None]
    assert pair.b.layer.statistics()["connections_current"] == 0
    pair.run_for(2 * TcpConfig().msl + 1)
    assert client.state is TcpState.CLOSED
    assert pair.a.layer.statistics()["connections_current"] == 0
    assert len(closed(pair.events_a)) == 1


def test_simultaneous_open() -> None:
    """RFC 9293 §3.5 figure 8: both SYNs cross; both sides go through SYN-RECEIVED."""
    pair = TcpPair()
    a = pair.a.layer.connect(ADDRESS_A, ADDRESS_B, 2222, pair.now, local_port=1111)
    b = pair.b.layer.connect(ADDRESS_B, ADDRESS_A, 1111, pair.now, local_port=2222)
    pair.run(
        lambda: a.state is TcpState.ESTABLISHED and b.state is TcpState.ESTABLISHED, max_time=5
    )
    assert any(isinstance(e, TcpConnected) for e in pair.events_a)
    assert any(isinstance(e, TcpConnected) for e in pair.events_b)
    synacks = [s for _, _, s in pair.trace if s.flags == SYN | ACK]
    assert len(synacks) == 2
    assert pump(pair, a, b"hello", b) == b"hello"


def test_simultaneous_close() -> None:
    """RFC 9293 §3.6 figure 13: both FINs cross; both sides pass CLOSING to TIME-WAIT."""
    pair = TcpPair()
    client, server = pair.open()
    client.close()
    server.close()
    states = set()

    def both_time_wait() -> bool:
        states.update((client.state, server.state))
        return client.state is TcpState.TIME_WAIT and server.state is TcpState.TIME_WAIT

    assert pair.run(both_time_wait, max_time=5)
    assert TcpState.CLOSING in states
    assert [c.error for c in closed(pair.events_a) + closed(pair.events_b)] == [None, None]


def test_half_close_both_ways() -> None:
    pair = TcpPair()
    client, server = pair.open()
    client.send(b"request")
    client.shutdown_write()
    pair.run(lambda: server.eof_received)
    assert server.receive() == b"request"
    assert any(isinstance(e, TcpEofReceived) for e in pair.events_b)
    assert pair.run(lambda: client.state is TcpState.FIN_WAIT_2, max_time=1)
    data = pattern(200_000)
    assert pump(pair, server, data, client) == data
    server.shutdown_write()
    pair.run(lambda: client.eof_received)
    pair.run(lambda: bool(closed(pair.events_a)) and bool(closed(pair.events_b)))
    assert client.state is TcpState.TIME_WAIT


def test_abort_resets_peer() -> None:
    pair = TcpPair()
    client, server = pair.open()
    client.abort()
    pair.run(lambda: bool(closed(pair.events_b)))
    assert isinstance(closed(pair.events_a)[0].error, ConnectionAbortedError)
    assert isinstance(closed(pair.events_b)[0].error, ConnectionResetError)
    with pytest.raises(BrokenPipeError):
        server.send(b"x")


def test_connection_refused() -> None:
    pair = TcpPair()
    pair.connect(port=9)
    pair.run(lambda: bool(closed(pair.events_a)))
    error = closed(pair.events_a)[0].error
    assert isinstance(error, ConnectionRefusedError) and error.errno == errno.ECONNREFUSED


@pytest.mark.parametrize("target", ["ESTABLISHED", "FIN_WAIT_2", "CLOSE_WAIT"])
def test_rst_validated_in_synchronized_states(target: str) -> None:
    """An in-window RST with the wrong sequence gets a challenge ACK; an exact one resets."""
    pair = TcpPair()
    client, server = pair.open()
    if target == "FIN_WAIT_2":
        client.shutdown_write()
        pair.run(lambda: client.state is TcpState.FIN_WAIT_2)
    elif target == "CLOSE_WAIT":
        server.shutdown_write()
        pair.run(lambda: client.state is TcpState.CLOSE_WAIT)
    assert client.state.name == target
    rcv_nxt = client._rcv_nxt
    from aionetstack.testing.segments import make_segment

    blind = make_segment(
        ADDRESS_B, ADDRESS_A, server.local_port, client.local_port, seq=rcv_nxt + 10, flags=RST
    )
    pair.a.layer.receive_segment(ADDRESS_B, ADDRESS_A, memoryview(blind), pair.now)
    assert client.state.name == target
    assert pair.a.layer.statistics()["challenge_acks_rst"] == 1
    exact = make_segment(
        ADDRESS_B, ADDRESS_A, server.local_port, client.local_port, seq=rcv_nxt, flags=RST
    )
    pair.a.layer.receive_segment(ADDRESS_B, ADDRESS_A, memoryview(exact), pair.now)
    pair.network.settle()
    assert client.state is TcpState.CLOSED
    assert isinstance(closed(pair.events_a)[-1].error, ConnectionResetError)


def test_data_retransmission_backoff_is_exact_and_times_out() -> None:
    """RFC 6298 §5.5: RTO doubles from min_rto (200 ms, as Linux); TimeoutError at the limit."""
    pair = TcpPair(TcpConfig(data_retries=4), delay=0.001)
    client, _server = pair.open()
    pair.intercept = lambda direction, segment: direction == "ab" and not segment.payload
    client.send(b"x" * 100)
    pair.run(lambda: bool(closed(pair.events_a)), max_time=60)
    sends = [t for t, d, s in pair.trace if d == "ab" and s.payload]
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(sends)]
    assert gaps == pytest.approx([0.2, 0.4, 0.8, 1.6])
    error = closed(pair.events_a)[0].error
    assert isinstance(error, TimeoutError)
    assert pair.a.layer.statistics()["connections_timed_out"] == 1


def test_zero_window_probing_and_reopen() -> None:
    config_b = TcpConfig(receive_buffer=8192)
    pair = TcpPair(None, config_b)
    client, server = pair.open()
    data = pattern(50_000)
    client.send(data)
    pair.run_for(20)
    assert server.readable_bytes <= 8192 + 1024
    windows = [s.window for _, d, s in pair.trace if d == "ba"]
    assert 0 in windows
    probes = pair.a.layer.statistics().get("window_probes_sent", 0)
    assert probes >= 3
    # Probe intervals back off.
    probe_times = [
        t for t, d, s in pair.trace if d == "ab" and not s.payload and s.flags == ACK and t > 0.1
    ]
    assert probe_times
    received = bytearray(server.receive())
    pair.run(
        lambda: (received.extend(server.receive()), len(received) == len(data))[1], max_time=60
    )
    assert bytes(received) == data


def test_keepalive_probes_then_timeout() -> None:
    config = TcpConfig(
        keepalive=True, keepalive_idle=10.0, keepalive_interval=2.0, keepalive_probes=3
    )
    pair = TcpPair(config, None)
    client, _server = pair.open()
    pair.run_for(25)
    assert client.state is TcpState.ESTABLISHED  # answered probes keep it alive
    assert pair.a.layer.statistics()["keepalive_probes_sent"] == 2  # at +10 and +20
    pair.intercept = lambda direction, segment: direction == "ab"  # b's answers are lost
    cut = pair.now
    last_answer = max(t for t, d, _ in pair.trace if d == "ba" and t < cut) + 0.001
    pair.run(lambda: bool(closed(pair.events_a)), max_time=100)
    assert isinstance(closed(pair.events_a)[0].error, TimeoutError)
    # RFC 1122 §4.2.3.6: idle 10 s after the last segment received, probes at +0, +2, +4,
    # and the connection gives up when the third interval passes unanswered.
    assert pair.now == pytest.approx(last_answer + 10 + 3 * 2)
    probes = [t for t, d, s in pair.trace if d == "ab" and t > cut and not s.payload]
    assert [round(t - last_answer, 6) for t in probes[:3]] == [10.0, 12.0, 14.0]


def test_keepalive_off_by_default() -> None:
    pair = TcpPair()
    pair.open()
    pair.run_for(10_000)
    assert "keepalive_probes_sent" not in pair.a.layer.statistics()


def test_syn_cookie_handshake_keeps_options() -> None:
    pair = TcpPair(None, TcpConfig(syn_queue_limit=0))
    client, server = pair.open()
    stats = pair.b.layer.statistics()
    assert stats["syn_cookies_sent"] == 1 and stats["syn_cookies_received"] == 1
    assert server._snd_wscale == client._rcv_wscale and server._snd_wscale > 0
    assert server._sack_ok and server._ts_ok
    assert server.snd_mss == client.snd_mss
    data = pattern(300_000)
    assert pump(pair, client, data, server) == data
    assert pump(pair, server, data, client) == data


def test_syn_cookie_without_timestamps_has_no_scaling() -> None:
    pair = TcpPair(TcpConfig(timestamps=False), TcpConfig(syn_queue_limit=0))
    client, server = pair.open()
    assert server._snd_wscale == 0 and client._snd_wscale == 0 and not server._sack_ok
    assert pump(pair, client, pattern(100_000), server) == pattern(100_000)


def test_forged_cookie_ack_gets_rst() -> None:
    pair = TcpPair(None, TcpConfig(syn_queue_limit=0))
    pair.listen(80)
    from aionetstack.testing.segments import make_segment

    forged = make_segment(ADDRESS_A, ADDRESS_B, 4444, 80, seq=1000, ack=123456, flags=ACK)
    pair.b.layer.receive_segment(ADDRESS_A, ADDRESS_B, memoryview(forged), pair.now)
    pair.network.settle()
    # No cookie was sent lately, so none is checked (Linux TCP_SYNCOOKIE_VALID): a RST.
    assert pair.b.layer.statistics()["syn_cookies_not_recent"] == 1
    assert any(s.flags == RST for _, d, s in pair.trace if d == "ba")


@pytest.mark.parametrize("timestamps", [True, False])
def test_sequence_numbers_wrap_both_directions(timestamps: bool) -> None:
    config = TcpConfig(timestamps=timestamps)
    pair = TcpPair(config, config)
    pair.a.layer.isn_function = lambda *_: 2**32 - 50_000
    pair.b.layer.isn_function = lambda *_: 2**32 - 70_000
    client, server = pair.open()
    data = pattern(400_000, 3)
    assert pump(pair, client, data, server) == data
    assert pump(pair, server, data, client) == data
    assert client._iss + client._nxt > 2**32  # really wrapped


def test_timestamps_wrap() -> None:
    pair = TcpPair(delay=0.02)
    # TSval starts 300 ms below 2**32 ticks (1 ms each) and wraps during the transfer.
    pair.a.layer.ts_offset_function = lambda *_: 2**32 - 300
    pair.b.layer.ts_offset_function = lambda *_: 2**32 - 200
    client, server = pair.open()
    data = pattern(3_000_000)
    assert pump(pair, client, data, server, max_time=300) == data
    for direction in ("ab", "ba"):
        stamps = [s.options.timestamp[0] for _, d, s in pair.trace if d == direction]
        assert max(stamps) > 2**32 - 400 and min(stamps) < 100  # both sides really wrapped
    assert "drops_paws" not in pair.a.layer.statistics()
    assert "drops_paws" not in pair.b.layer.statistics()
    assert client.rtt.srtt is not None and client.rtt.srtt < 0.2


def test_lost_acks_never_stall() -> None:
    """Every third pure ACK and a burst of five in a row are lost; the transfer still ends."""
    pair = TcpPair()
    client, server = pair.open()
    seen = {"acks": 0, "dropped": 0}

    def drop_pure_acks(direction: str, segment: TcpSegment) -> bool:
        if direction == "ba" and not segment.payload and not segment.flags & FIN:
            seen["acks"] += 1
            if seen["acks"] % 3 == 0 or 10 <= seen["acks"] < 15:
                seen["dropped"] += 1
                return False
        return True

    pair.intercept = drop_pure_acks
    data = pattern(1_000_000)
    assert pump(pair, client, data, server) == data
    client.close()
    assert pair.run(lambda: client.state is TcpState.FIN_WAIT_2)
    assert seen["acks"] >= 15 and seen["dropped"] >= 8  # the burst of five happened


def test_last_ack_lost_is_recovered_by_retransmission() -> None:
    pair = TcpPair()
    client, server = pair.open()
    client.send(b"x" * 1000)
    state = {"dropped": 0}

    def drop_first_ack(direction: str, segment: TcpSegment) -> bool:
        if direction == "ba" and not segment.payload and state["dropped"] == 0:
            state["dropped"] = 1
            return False
        return True

    pair.intercept = drop_first_ack
    pair.run(lambda: client.send_buffer_used == 0, max_time=5)
    assert server.receive() == b"x" * 1000
    assert pair.a.layer.statistics()["retransmission_timeouts"] == 1
    assert pair.b.layer.statistics()["drops_out_of_window"] == 1  # the duplicate, re-ACKed


def test_final_ack_of_handshake_lost() -> None:
    pair = TcpPair()
    listener = pair.listen(80)
    first = {"done": False}

    def drop_first_pure_ack(direction: str, segment: TcpSegment) -> bool:
        if direction == "ab" and segment.flags == ACK and not segment.payload and not first["done"]:
            first["done"] = True
            return False
        return True

    pair.intercept = drop_first_pure_ack
    client = pair.connect(80)
    pair.run(lambda: client.state is TcpState.ESTABLISHED)
    client.send(b"first words")
    pair.run(lambda: listener.pending == 1)
    server = listener.accept()
    assert server is not None
    pair.run(lambda: server.readable_bytes == 11)
    assert server.receive() == b"first words"


def test_icmp_port_unreachable_refuses_syn_sent() -> None:
    pair = TcpPair()
    pair.intercept = lambda direction, segment: False
    client = pair.connect(80)
    quoted = (
        client.local_port.to_bytes(2, "big")
        + (80).to_bytes(2, "big")
        + client._iss.to_bytes(4, "big")
    )
    pair.a.layer.icmp_error(
        ADDRESS_A, ADDRESS_B, quoted, ConnectionRefusedError(errno.ECONNREFUSED, "port"), pair.now
    )
    pair.network.settle()
    assert isinstance(closed(pair.events_a)[0].error, ConnectionRefusedError)


def test_icmp_soft_error_remembered_and_reported_on_timeout() -> None:
    pair = TcpPair(TcpConfig(syn_retries=1))
    pair.intercept = lambda direction, segment: False
    client = pair.connect(80)
    quoted = (
        client.local_port.to_bytes(2, "big")
        + (80).to_bytes(2, "big")
        + client._iss.to_bytes(4, "big")
    )
    unreachable = OSError(errno.EHOSTUNREACH, "host unreachable")
    pair.a.layer.icmp_error(ADDRESS_A, ADDRESS_B, quoted, unreachable, pair.now)
    assert client.soft_error is unreachable and client.state is TcpState.SYN_SENT
    pair.run(lambda: bool(closed(pair.events_a)), max_time=30)
    error = closed(pair.events_a)[0].error
    assert isinstance(error, TimeoutError) and error.__cause__ is unreachable
    # An ICMP error quoting a sequence number outside the window is ignored (RFC 5927 §4.1).
    pair2 = TcpPair()
    pair2.intercept = lambda direction, segment: False
    c2 = pair2.connect(80)
    bogus = (
        c2.local_port.to_bytes(2, "big")
        + (80).to_bytes(2, "big")
        + (c2._iss + 99999).to_bytes(4, "big")
    )
    pair2.a.layer.icmp_error(ADDRESS_A, ADDRESS_B, bogus, ConnectionRefusedError(), pair2.now)
    assert c2.state is TcpState.SYN_SENT


@pytest.mark.parametrize("scaling", [True, False])
def test_window_scaling_allows_a_flight_beyond_64k(scaling: bool) -> None:
    config = TcpConfig(window_scaling=scaling)
    pair = TcpPair(config, config, delay=0.05)
    client, server = pair.open()
    data = pattern(3_000_000)
    sent = 0
    received = bytearray()
    most_in_flight = 0

    def progress() -> bool:
        nonlocal sent, most_in_flight
        if sent < len(data) and client.send_buffer_free:
            sent += client.send(data[sent : sent + 65536])
        received.extend(server.receive())
        most_in_flight = max(most_in_flight, client._nxt - client._una)
        return len(received) == len(data)

    assert pair.run(progress, max_time=300)
    assert bytes(received) == data
    if scaling:
        assert most_in_flight > 4 * 65535
        assert max(s.window for _, d, s in pair.trace if d == "ba" and not s.flags & SYN) < 65535
    else:
        assert most_in_flight <= 65535


def test_nagle_coalesces_small_writes_and_nodelay_does_not() -> None:
    def small_write_segments(nodelay: bool) -> int:
        pair = TcpPair(delay=0.01)
        client, server = pair.open()
        client.set_nodelay(nodelay)
        for _ in range(20):
            client.send(b"ab")
            pair.network.settle()
            pair.run_for(0.001)
        pair.run(lambda: server.readable_bytes == 40)
        return sum(1 for _, d, s in pair.trace if d == "ab" and s.payload)

    assert small_write_segments(nodelay=True) == 20
    assert small_write_segments(nodelay=False) < 5


def test_receive_window_follows_unread_bytes() -> None:
    pair = TcpPair(None, TcpConfig(receive_buffer=16384))
    client, server = pair.open()
    client.send(pattern(16384))
    pair.run_for(1)
    last_window = [s.window for _, d, s in pair.trace if d == "ba"][-1]
    assert last_window == 0
    before = len(pair.trace)
    server.receive(10_000)
    pair.network.settle()
    updates = [s for _, d, s in pair.trace[before:] if d == "ba"]
    assert updates and updates[0].window > 0  # a window update went out at once


def test_writable_event_after_buffer_full() -> None:
    from aionetstack.core.tcp import TcpWritable

    pair = TcpPair(TcpConfig(send_buffer=8192))
    client, server = pair.open()
    accepted = client.send(pattern(20_000))
    assert accepted == 8192 and client.send_buffer_free == 0
    pair.run(
        lambda: (
            any(isinstance(e, TcpWritable) for e in pair.events_a) or (server.receive() and False)
        )
    )
    assert client.send_buffer_free >= 4096


def test_fin_carried_on_last_data_segment() -> None:
    pair = TcpPair()
    client, server = pair.open()
    client.send(b"bye")
    client.close()
    pair.run(lambda: server.eof_received)
    data_segments = [s for _, d, s in pair.trace if d == "ab" and s.payload]
    assert data_segments[-1].flags & FIN


def test_partial_checksums_hold_the_pseudo_header_sum() -> None:
    """For a NEEDS_CSUM link: the field carries the folded pseudo-header sum (not complemented)."""
    from aionetstack.testing.segments import ScriptedPeer
    from aionetstack.wire.checksum import internet_checksum, pseudo_header_sum

    peer = ScriptedPeer()
    peer.layer.partial_checksums = True
    connection, _ = peer.passive_open()
    connection.send(b"payload")
    (data,) = peer.take()
    expected = pseudo_header_sum(data.source, data.destination, 6, len(data.raw))
    assert data.segment.checksum == expected
    # Completing it the way the kernel does gives a valid checksum.
    raw = bytearray(data.raw)
    raw[16:18] = internet_checksum(raw).to_bytes(2, "big")
    length = len(raw)
    assert internet_checksum(raw, pseudo_header_sum(data.source, data.destination, 6, length)) == 0
    (rst,) = peer.inject(seq=1, flags=SYN, dport=9)
    assert rst.segment.checksum == pseudo_header_sum(rst.source, rst.destination, 6, len(rst.raw))


@pytest.mark.parametrize("tlp", [True, False])
def test_tail_loss_probe_repairs_a_lost_tail_without_rto(tlp: bool) -> None:
    """RFC 8985 §7: the last two segments of a burst are lost; a probe 2*SRTT later elicits
    a SACK, and fast recovery repairs them before the RTO would have fired."""
    pair = TcpPair(TcpConfig(tail_loss_probe=tlp), delay=0.02)
    client, server = pair.open()
    client.send(pattern(20_000))  # warm up: an RTT sample and a larger cwnd
    pair.run(lambda: client.send_buffer_used == 0)
    server.receive()
    first = len(pair.trace)
    dropped: list[int] = []

    def drop_tail(direction: str, segment: TcpSegment) -> bool:
        if direction == "ab" and segment.payload and len(dropped) < 2:
            offset = (segment.seq - client._iss) & 0xFFFFFFFF
            if offset > 20_000 + 6 * 1448:
                dropped.append(offset)
                return False
        return True

    pair.intercept = drop_tail
    client.send(pattern(8 * 1448, 1))
    pair.run(lambda: server.readable_bytes == 8 * 1448, max_time=10)
    assert server.receive() == pattern(8 * 1448, 1)
    stats = pair.a.layer.statistics()
    if tlp:
        assert stats["tail_loss_probes"] == 1
        assert stats.get("retransmission_timeouts", 0) == 0
    else:
        assert stats["retransmission_timeouts"] >= 1
    assert len(dropped) == 2 and len(pair.trace) > first

"""Unit tests of the TCP building blocks: RTO estimator, congestion controllers,
reassembly queue, keyed hashes (ISN, ports, SYN cookies), the timer heap."""

from __future__ import annotations

import collections
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.config import TcpConfig
from aionetstack.core.tcp.congestion import (
    Cubic,
    NewReno,
    create_congestion_control,
    initial_window,
)
from aionetstack.core.tcp.reassembly import Reassembly
from aionetstack.core.tcp.rtt import RttEstimator
from aionetstack.core.tcp.secrets import COOKIE_MSS_TABLE, KeyedHashes
from aionetstack.testing.segments import LOCAL, REMOTE, ScriptedPeer

MSS = 1448

# --- RTO (RFC 6298) ---------------------------------------------------------------------


def test_first_and_later_rtt_samples() -> None:
    rtt = RttEstimator(initial_rto=1.0, min_rto=0.2, max_rto=120.0)
    assert rtt.rto == 1.0  # §2.1 before any sample
    rtt.sample(0.1)
    assert rtt.srtt == pytest.approx(0.1) and rtt.rttvar == pytest.approx(0.05)
    assert rtt.rto == pytest.approx(0.3)  # §2.2: SRTT + 4*RTTVAR
    rtt.sample(0.3)
    assert rtt.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.2)  # §2.3, RTTVAR first
    assert rtt.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.3)


def test_rto_floor_backoff_and_ceiling() -> None:
    rtt = RttEstimator(initial_rto=1.0, min_rto=0.2, max_rto=10.0)
    rtt.sample(0.001)
    assert rtt.rto == pytest.approx(0.2)  # §2.4 floor (Linux's 200 ms)
    for expected in (0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0):
        rtt.back_off()
        assert rtt.rto == pytest.approx(expected)  # §5.5 doubling, §2.5 ceiling
    rtt.reset_backoff()
    assert rtt.rto == pytest.approx(0.2)


# --- congestion control -------------------------------------------------------------------


def test_initial_window_rfc6928() -> None:
    assert initial_window(1460) == 14600
    assert initial_window(536) == 5360
    assert initial_window(9000) == 18000


def test_newreno_slow_start_and_avoidance() -> None:
    cc = NewReno(MSS)
    start = cc.cwnd
    cc.on_ack(MSS, start, 0.0, 0.05)
    assert cc.cwnd == start + MSS  # slow start: one MSS per MSS acked
    cc.on_congestion(40 * MSS, 0.0)
    assert cc.ssthresh == 20 * MSS and cc.cwnd == 20 * MSS
    before = cc.cwnd
    for _ in range(20):
        cc.on_ack(MSS, cc.cwnd, 0.0, 0.05)  # one window of ACKs
    assert cc.cwnd == before + MSS  # RFC 5681 §3.1: about one MSS per RTT
    cc.on_timeout(10 * MSS, 0.0)
    assert cc.cwnd == MSS and cc.ssthresh == 5 * MSS


def test_cubic_decrease_and_regrowth_to_wmax() -> None:
    cc = Cubic(MSS)
    cc.cwnd = 1000 * MSS
    cc.ssthresh = 500 * MSS
    cc.on_congestion(1000 * MSS, 0.0)
    assert cc.cwnd == pytest.approx(700 * MSS, abs=1)  # beta_cubic = 0.7

    def run_until(end: float, now: float) -> float:
        while now < end:
            now += 0.05  # one RTT of ACKs per step
            for _ in range(int(cc.cwnd / MSS)):
                cc.on_ack(MSS, cc.cwnd, now, 0.05)
        return now

    # K = cbrt(W_max * (1 - beta) / C) = cbrt(1000 * 0.3 / 0.4) ~ 9.09 s.
    now = run_until(4.0, 0.0)
    concave = cc.cwnd
    assert 800 * MSS < concave < 1000 * MSS  # fast concave growth towards W_max
    now = run_until(9.0, now)
    assert 980 * MSS <= cc.cwnd <= 1010 * MSS  # plateau at W_max around t = K
    run_until(14.0, now)
    assert cc.cwnd > 1040 * MSS  # convex probing beyond W_max


def test_cubic_makes_its_variables_when_slow_start_ends() -> None:
    cc = Cubic(MSS)
    cc.on_ack(4 * MSS, 0, 0.0, 0.1)
    assert cc._state is None  # slow start: an idle connection carries no CUBIC variables
    cc.ssthresh = cc.cwnd
    cc.on_ack(MSS, 0, 0.1, 0.1)
    assert cc._state is not None and cc._state.epoch_start == 0.1


def test_cubic_fast_convergence() -> None:
    cc = Cubic(MSS)
    cc.cwnd = 100 * MSS
    cc.on_congestion(0, 0.0)
    cc.on_congestion(0, 1.0)  # a second loss below the previous W_max
    assert cc._w_max == pytest.approx(70 * (1 + 0.7) / 2)


def test_factory() -> None:
    assert isinstance(create_congestion_control("cubic", MSS), Cubic)
    assert isinstance(create_congestion_control("newreno", MSS), NewReno)
    with pytest.raises(ValueError, match="unknown"):
        create_congestion_control("bbr", MSS)
    with pytest.raises(ValueError, match="congestion_control"):
        TcpConfig(congestion_control="bbr")


# --- reassembly ------------------------------------------------------------------------------


def test_reassembly_merges_and_releases() -> None:
    queue = Reassembly(limit=10_000)
    assert queue.add(10, b"cd")
    assert queue.add(18, b"kl")
    assert queue.sack_blocks(4) == [(18, 20), (10, 12)]  # most recent first
    assert queue.add(12, b"efghij")  # bridges both ranges
    assert queue.sack_blocks(4) == [(10, 20)]
    assert queue.pop_ready(5) is None
    assert queue.pop_ready(10) == bytearray(b"cdefghijkl")
    assert not queue and queue.bytes_held == 0


def test_reassembly_limit_and_recency() -> None:
    queue = Reassembly(limit=10)
    assert queue.add(100, b"12345")
    assert queue.add(200, b"abc")
    assert not queue.add(300, b"xyz")  # would exceed the limit: refused, nothing stored
    assert queue.bytes_held == 8
    assert queue.add(100, b"123")  # a duplicate only refreshes recency
    assert queue.sack_blocks(4) == [(100, 105), (200, 203)]


@settings(max_examples=200)
@given(st.data())
def test_reassembly_rebuilds_any_arrival_order(data: st.DataObject) -> None:
    stream = bytes(range(256)) * 2
    pieces = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(stream) - 1), st.integers(1, 64)), min_size=1, max_size=40
        )
    )
    queue = Reassembly(limit=1 << 20)
    covered = set()
    for start, length in pieces:
        chunk = stream[start : start + length]
        queue.add(start + 1, chunk)  # offset 0 is delivered last, so nothing pops early
        covered.update(range(start, start + len(chunk)))
    blocks = queue.sack_blocks(1000)
    for left, right in blocks:
        assert stream[left - 1 : right - 1]  # blocks lie inside the stream
    assert sum(r - left for left, r in blocks) == queue.bytes_held == len(covered)
    if 0 in covered:
        ready = queue.pop_ready(1)
        assert ready is not None
        assert bytes(ready) == stream[: len(ready)]


# --- keyed hashes ------------------------------------------------------------------------------


def test_isn_is_per_tuple_and_advances_with_time() -> None:
    hashes = KeyedHashes(random.Random(3))
    a = hashes.initial_sequence(LOCAL, 1000, REMOTE, 80, 10.0)
    b = hashes.initial_sequence(LOCAL, 1001, REMOTE, 80, 10.0)
    assert a != b
    later = hashes.initial_sequence(LOCAL, 1000, REMOTE, 80, 11.0)
    assert (later - a) % 2**32 == 250_000  # RFC 6528: a 4 microsecond clock
    other_secret = KeyedHashes(random.Random(4)).initial_sequence(LOCAL, 1000, REMOTE, 80, 10.0)
    assert other_secret != a


def test_syn_cookie_round_trip_and_expiry() -> None:
    hashes = KeyedHashes(random.Random(5))
    cookie, mss = hashes.make_cookie(LOCAL, 80, REMOTE, 4000, 777, 1460, now=100.0)
    assert mss == 1460 and mss in COOKIE_MSS_TABLE
    assert hashes.check_cookie(LOCAL, 80, REMOTE, 4000, 777, cookie, now=100.0) == 1460
    assert hashes.check_cookie(LOCAL, 80, REMOTE, 4000, 777, cookie, now=150.0) == 1460
    assert hashes.check_cookie(LOCAL, 80, REMOTE, 4000, 778, cookie, now=100.0) is None
    assert hashes.check_cookie(LOCAL, 80, REMOTE, 4001, 777, cookie, now=100.0) is None
    assert hashes.check_cookie(LOCAL, 80, REMOTE, 4000, 777, cookie, now=100.0 + 64 * 4) is None
    _, small_mss = hashes.make_cookie(LOCAL, 80, REMOTE, 4000, 1, 1000, now=0.0)
    assert small_mss == 536


@given(st.integers(0, 2**32 - 1), st.one_of(st.none(), st.integers(0, 14)), st.booleans())
def test_cookie_timestamp_encoding(tsval: int, scale: int | None, sack: bool) -> None:
    encoded = KeyedHashes.encode_cookie_timestamp(tsval, scale, sack)
    assert KeyedHashes.decode_cookie_timestamp(encoded) == (scale, sack)
    behind = (tsval - encoded) % 2**32
    assert behind < 64  # never ahead of the clock, at most 63 ticks behind


def test_ephemeral_ports_unique_and_in_range() -> None:
    peer = ScriptedPeer()
    ports = {peer.layer.connect(LOCAL, REMOTE, 80, peer.now).local_port for _ in range(500)}
    assert len(ports) == 500
    assert all(32768 <= port <= 60999 for port in ports)


def test_ephemeral_ports_exhaustion() -> None:
    from aionetstack.core.tcp import TcpLayer

    layer = TcpLayer(
        TcpConfig(), random.Random(1), output=lambda *a: None, events=collections.deque(),
        ephemeral_ports=(40000, 40002),
    )  # fmt: skip
    for _ in range(3):
        layer.connect(LOCAL, REMOTE, 80, 0.0)
    with pytest.raises(OSError, match="ephemeral"):
        layer.connect(LOCAL, REMOTE, 80, 0.0)


def test_connect_argument_checks() -> None:
    peer = ScriptedPeer()
    with pytest.raises(ValueError, match="4 or both 16"):
        peer.layer.connect(LOCAL, bytes(16), 80, 0.0)
    with pytest.raises(ValueError, match="remote_port"):
        peer.layer.connect(LOCAL, REMOTE, 0, 0.0)
    with pytest.raises(ValueError, match="port"):
        peer.layer.listen(None, 70000)


# --- timers ------------------------------------------------------------------------------------


def test_timer_heap_is_earliest_and_tolerates_early_calls() -> None:
    peer = ScriptedPeer()
    first = peer.layer.connect(LOCAL, REMOTE, 80, peer.now)
    peer.clock.advance(0.5)
    peer.layer.connect(LOCAL, REMOTE, 81, peer.now)
    peer.take()
    deadline = peer.layer.get_timer()
    assert deadline == pytest.approx(1000.0 + 1.0)  # the first SYN's RTO
    peer.layer.handle_timer(deadline - 0.1)  # early: nothing happens
    assert peer.take() == []
    peer.layer.handle_timer(deadline)
    peer.layer.handle_timer(deadline)  # duplicate: nothing more
    (syn,) = peer.take()
    assert syn.segment.destination_port == 80 and first.local_port == syn.segment.source_port
    assert peer.layer.get_timer() == pytest.approx(1000.5 + 1.0)


@given(st.integers(min_value=-10, max_value=1 << 40))
def test_window_scale_is_the_smallest_shift_covering_the_buffer(buffer: int) -> None:
    from aionetstack.core.tcp.options import MAX_WINDOW_FIELD, MAX_WINDOW_SCALE, window_scale_for

    scale = window_scale_for(buffer)
    assert 0 <= scale <= MAX_WINDOW_SCALE  # RFC 7323 §2.3: at most 14
    if scale < MAX_WINDOW_SCALE:
        assert MAX_WINDOW_FIELD << scale >= buffer
    if scale > 0:
        assert MAX_WINDOW_FIELD << (scale - 1) < buffer

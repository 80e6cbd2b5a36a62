"""No input from the network makes the TCP layer raise, and its bookkeeping stays consistent."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aionetstack.config import TcpConfig
from aionetstack.core.tcp.connection import check_invariants
from aionetstack.testing.segments import LOCAL, REMOTE, ScriptedPeer, make_segment
from aionetstack.wire.tcp import ACK, build_options

PEER_ISN = 1000

segment_strategy = st.tuples(
    st.integers(0, 0xFF),  # flags
    st.sampled_from([0, 1, 2, 1000, 2**31, 2**32 - 1]),  # seq offset from what the peer should send
    st.sampled_from([0, 1, 2, 5, 2**31, 2**32 - 1]),  # ack offset
    st.integers(0, 0xFFFF),  # window
    st.binary(max_size=64),  # payload
    st.one_of(
        st.just(b""), st.binary(max_size=40).map(lambda b: b + b"\x00" * (-len(b) % 4))
    ),  # options
    st.sampled_from([80, 81]),  # destination port (81: no listener)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(segment_strategy, min_size=1, max_size=12), st.booleans())
def test_arbitrary_segments_never_raise(
    segments: list[tuple[int, int, int, int, bytes, bytes, int]], sack: bool
) -> None:
    peer = ScriptedPeer(TcpConfig(challenge_ack_limit=5))
    options = build_options(mss=1460, sack_permitted=sack, timestamp=(100, 0), window_scale=2)
    connection, iss = peer.passive_open(peer_isn=PEER_ISN, options=options)
    connection.send(b"x" * 5000)
    peer.take()
    for flags, seq_delta, ack_delta, window, payload, option_bytes, dport in segments:
        raw = bytearray(
            make_segment(
                REMOTE,
                LOCAL,
                peer.peer_port,
                dport,
                seq=(PEER_ISN + 1 + seq_delta) & 0xFFFFFFFF,
                ack=(iss + 1 + ack_delta) & 0xFFFFFFFF,
                flags=flags,
                window=window,
                payload=payload,
            )
        )
        if option_bytes:
            # Splice raw (possibly malformed) options in, fixing the data offset.
            raw = raw[:20] + bytearray(option_bytes) + raw[20:]
            raw[12] = ((20 + len(option_bytes)) // 4) << 4
        peer.layer.receive_segment(REMOTE, LOCAL, memoryview(bytes(raw)), peer.now)
        peer.take()
        assert check_invariants(connection) == []
        peer.clock.advance(0.05)
        peer.layer.handle_timer(peer.now)
    peer.advance(300)
    assert check_invariants(connection) == []


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([0, 19, 20, 21]))
def test_garbage_bytes_never_raise(data: bytes, cut: int) -> None:
    peer = ScriptedPeer()
    peer.listen()
    peer.layer.receive_segment(REMOTE, LOCAL, memoryview(data), peer.now)
    peer.layer.receive_segment(REMOTE, LOCAL, memoryview(data[:cut]), peer.now)
    peer.take()
    stats = peer.layer.statistics()
    assert stats["segments_in"] == 2


def test_syn_flood_is_absorbed_with_cookies() -> None:
    peer = ScriptedPeer(TcpConfig(syn_queue_limit=16))
    listener = peer.listen()
    for port in range(20000, 21000):
        (reply,) = peer.inject(seq=port, flags=0x02, sport=port, options=build_options(mss=1460))
        assert reply.flags == 0x12
    stats = peer.layer.statistics()
    assert listener.half_open == 16
    assert stats["connections_current"] == 16  # state held stays bounded
    assert stats["syn_cookies_sent"] == 1000 - 16
    # A legitimate client completing a cookie handshake still gets in.
    (synack,) = peer.inject(seq=5, flags=0x02, sport=30000, options=build_options(mss=1460))
    peer.inject(seq=6, ack=synack.seq + 1, flags=ACK, sport=30000)
    accepted = listener.accept()
    assert accepted is not None and accepted.remote_port == 30000


def test_out_of_order_flood_is_bounded() -> None:
    peer = ScriptedPeer(TcpConfig(out_of_order_limit=8192, receive_buffer=1 << 20))
    connection, iss = peer.passive_open(peer_isn=PEER_ISN)
    for index in range(200):
        peer.inject(seq=PEER_ISN + 1 + 1000 + index * 200, ack=iss + 1, payload=b"z" * 100)
    assert connection._ooo is not None and connection._ooo.bytes_held <= 8192
    assert peer.layer.statistics()["drops_out_of_order_queue_full"] > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 10_000),
    st.lists(
        st.tuples(
            st.sampled_from(["send", "read", "shutdown", "close", "abort", "wait"]),
            st.sampled_from(["client", "server"]),
            st.integers(0, 30_000),
        ),
        max_size=12,
    ),
)
def test_every_connection_ends_exactly_once(seed: int, actions: list[tuple[str, str, int]]) -> None:
    """Random app behaviour on both ends over a lossy path: each connection reports
    TcpClosed exactly once, and once both apps close and time passes, no state is left."""
    from aionetstack.core.tcp import TcpClosed
    from aionetstack.testing.netsim import PathProfile
    from aionetstack.testing.tcp_pair import TcpPair

    config = TcpConfig(msl=1.0, fin_wait_2_timeout=5.0, data_retries=6, syn_retries=3)
    pair = TcpPair(config, config, seed=seed)
    client, server = pair.open()  # on a clean path; the loss starts afterwards
    pair.network.paths[pair.b.address].profile = PathProfile(delay=0.005, loss=0.1, reorder=0.1)
    pair.network.paths[pair.a.address].profile = PathProfile(delay=0.005, loss=0.1)
    ends = {"client": client, "server": server}
    streams = {"client": bytes(range(256)) * 400, "server": bytes(range(255, -1, -1)) * 400}
    written = {"client": 0, "server": 0}
    read = {"client": bytearray(), "server": bytearray()}
    other = {"client": "server", "server": "client"}
    for action, side, amount in actions:
        connection = ends[side]
        try:
            if action == "send":
                start = written[side]
                written[side] += connection.send(streams[side][start : start + amount])
            elif action == "read":
                read[side] += connection.receive(amount)
            elif action == "shutdown":
                connection.shutdown_write()
            elif action == "close":
                connection.close()
            elif action == "abort":
                connection.abort()
        except BrokenPipeError:
            pass
        pair.run_for(0.05 if action != "wait" else amount / 1000)
    for side, connection in ends.items():
        read[side] += connection.receive()
        connection.close()
    for side in ends:
        # Whatever arrived is exactly a prefix of what the other side wrote: nothing lost
        # in the middle, duplicated or reordered.
        assert bytes(read[side]) == streams[other[side]][: len(read[side])], (seed, actions)
        assert len(read[side]) <= written[other[side]]
    pair.run_for(600)
    for events, connection in ((pair.events_a, client), (pair.events_b, server)):
        ends_reported = [
            e for e in events if isinstance(e, TcpClosed) and e.connection is connection
        ]
        assert len(ends_reported) == 1, (seed, actions)
        assert connection.state.name == "CLOSED"
    assert pair.a.layer.statistics()["connections_current"] == 0
    assert pair.b.layer.statistics()["connections_current"] == 0
    assert pair.a.layer.get_timer() is None or pair.a.layer.connections == []

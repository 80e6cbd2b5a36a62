"""The bulk send path: new-data segments one output pass sends are built together
(``_emit_burst``) and handed to the IP layer in one call (``emit_many``). Each segment
must be exactly what segment-by-segment sending (``_transmit``) would have emitted."""

from __future__ import annotations

import ipaddress
import random

import dpkt
import pytest

from aionetstack.config import TcpConfig
from aionetstack.core.output import CallbackOutput, EmittedSegment, OffloadedPacket
from aionetstack.core.stack import StackCore
from aionetstack.core.tcp import TcpConnection
from aionetstack.testing.segments import LOCAL, REMOTE, ScriptedPeer
from aionetstack.wire import ipv4
from aionetstack.wire.tcp import ACK, FIN, PSH, build_options

PEER_ISN = 5000
MSS = 1000
WINDOW = 60_000
#: Writes of several sizes: small ones gather in a tail bytearray, large ones are kept.
WRITES = (300, 7000, 1, 65536, 120, 4096, 9999)


def _run(*, bursts: bool, monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, int]]:
    """Write, take ACKs, close: every segment emitted, raw, with its TSO segment size."""
    with monkeypatch.context() as patch:
        if not bursts:
            patch.setattr(TcpConnection, "_bursts", lambda self: False)
        peer = ScriptedPeer(TcpConfig(hystart=False, congestion_control="newreno"), mss=MSS)
        peer.layer.max_segment_payload = 4 * MSS
        peer.layer.partial_checksums = True
        connection, iss = peer.passive_open(
            peer_isn=PEER_ISN, options=build_options(mss=MSS, timestamp=(77, 0)), window=WINDOW
        )
        connection.set_nodelay(True)
        for size in WRITES:
            connection.send(bytes([size % 251]) * size)
        out = peer.take()
        sent = iss + 1
        for _ in range(12):  # ACK half of what is out, each time
            newest = max((s.seq + len(s.payload) for s in out if s.payload), default=sent)
            sent = (sent + newest) // 2 if newest > sent else sent
            out += peer.inject(seq=PEER_ISN + 1, ack=sent, flags=ACK, window=WINDOW,
                               options=build_options(timestamp=(78, 1)))  # fmt: skip
        connection.shutdown_write()
        out += peer.take()
        return [(segment.raw, segment.segment_size) for segment in out]


@pytest.mark.interpreted  # patches a method compiled code calls directly
def test_a_burst_emits_what_segment_by_segment_sending_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one_by_one = _run(bursts=False, monkeypatch=monkeypatch)
    together = _run(bursts=True, monkeypatch=monkeypatch)
    assert len(one_by_one) > 12  # data went out in many passes, and the FIN
    assert together == one_by_one
    assert one_by_one[-1][0][13] & FIN


#: Connection state the emission of segments touches or that follows from it.
STATE = ("_rcv_adv", "_rcv_wnd_max", "_ack_now", "_delack_deadline", "_bytes_since_ack",
         "_nxt", "_rto_deadline", "_persist_deadline", "_rcv_nxt")  # fmt: skip


def _exchange(
    *, bursts: bool, sack_hole: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[tuple[bytes, int]], list[tuple[object, ...]], dict[str, int]]:
    """Random payloads, window scaling, data from the peer, reads that reopen our window,
    a zero window, optionally a hole (so SACK blocks are carried), then more data and a
    FIN queued: every segment, the state after each step, and the layer's statistics
    (with ``bursts``, ``stats["bursts"]`` counts the passes that took the bulk path)."""
    with monkeypatch.context() as patch:
        burst_count = 0
        if bursts:
            emit_burst = TcpConnection._emit_burst

            def counted(self: TcpConnection, bounds: list[int], now: float) -> None:
                nonlocal burst_count
                burst_count += 1
                emit_burst(self, bounds, now)

            patch.setattr(TcpConnection, "_emit_burst", counted)
        else:
            patch.setattr(TcpConnection, "_bursts", lambda self: False)
        rng = random.Random(9)
        config = TcpConfig(hystart=False, congestion_control="newreno", receive_buffer=20_000)
        peer = ScriptedPeer(config, mss=MSS)
        peer.layer.max_segment_payload = 4 * MSS
        peer.layer.partial_checksums = True
        options = build_options(mss=MSS, window_scale=2, sack_permitted=True, timestamp=(77, 0))
        connection, iss = peer.passive_open(peer_isn=PEER_ISN, options=options, window=20_000)
        connection.set_nodelay(True)
        for size in (300, 7000, 1, 65536, 120, 4096, 9999, 50, 30000):
            connection.send(rng.randbytes(size))
        out = peer.take()
        states: list[tuple[object, ...]] = []
        acked, peer_seq, tsval = iss + 1, PEER_ISN + 1, 78
        for step in range(14):
            newest = max((s.seq + len(s.payload) for s in out if s.payload), default=acked)
            acked = (acked + newest) // 2 if newest > acked else acked
            payload = rng.randbytes(700) if step % 3 else b""
            tsval += 1
            hole = sack_hole and step == 4  # 700 bytes missing before this segment
            got = peer.inject(
                seq=peer_seq + 700 if hole else peer_seq, ack=acked, flags=ACK,
                window=0 if step == 6 else 20_000 >> 2, payload=payload,
                options=build_options(timestamp=(tsval, 1)),
            )  # fmt: skip
            if not hole:
                peer_seq += len(payload)
            if sack_hole and step == 7:  # the hole filled
                got += peer.inject(seq=peer_seq, ack=acked, flags=ACK, window=20_000 >> 2,
                                   payload=rng.randbytes(700),
                                   options=build_options(timestamp=(tsval, 1)))  # fmt: skip
                peer_seq += 1400
            if step % 2:
                connection.receive()  # our window reopens ...
                if step in (5, 9):  # ... and the first segments to carry it are a burst's
                    connection.send(rng.randbytes(12_000))
                got += peer.take()
            if step == 10:
                connection.send(rng.randbytes(20_000))
                connection.shutdown_write()
                got += peer.take()
            out += got
            states.append(tuple(getattr(connection, name) for name in STATE))
        stats = dict(peer.layer.statistics())
        if bursts:
            stats["bursts"] = burst_count
        return [(s.raw, s.segment_size) for s in out], states, stats


@pytest.mark.interpreted  # patches a method compiled code calls directly
@pytest.mark.parametrize("sack_hole", [False, True])
def test_bursts_leave_the_wire_and_the_state_as_one_by_one_sending(
    sack_hole: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_by_one = _exchange(bursts=False, sack_hole=sack_hole, monkeypatch=monkeypatch)
    wire, states, stats = _exchange(bursts=True, sack_hole=sack_hole, monkeypatch=monkeypatch)
    assert stats.pop("bursts") >= 5
    assert (wire, states, stats) == one_by_one
    assert len(wire) > 30


@pytest.mark.interpreted  # patches a method compiled code calls directly
def test_a_fin_in_the_pass_of_a_burst_follows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Data and the FIN queued together: the burst goes first, then the FIN's segment
    (through ``_transmit``); PSH only on the segment that reaches the end of the data."""
    calls: list[str] = []

    def run(bursts: bool) -> list[tuple[bytes, int]]:
        with monkeypatch.context() as patch:
            if bursts:
                emit_burst, transmit = TcpConnection._emit_burst, TcpConnection._transmit

                def spy_burst(self: TcpConnection, bounds: list[int], now: float) -> None:
                    calls.append(f"burst of {len(bounds) // 2}")
                    emit_burst(self, bounds, now)

                def spy_transmit(self: TcpConnection, start: int, end: int, now: float) -> None:
                    calls.append("transmit")
                    transmit(self, start, end, now)

                patch.setattr(TcpConnection, "_emit_burst", spy_burst)
                patch.setattr(TcpConnection, "_transmit", spy_transmit)
            else:
                patch.setattr(TcpConnection, "_bursts", lambda self: False)
            peer = ScriptedPeer(TcpConfig(hystart=False, congestion_control="newreno"), mss=MSS)
            peer.layer.max_segment_payload = 2 * MSS
            peer.layer.partial_checksums = True
            connection, _iss = peer.passive_open(
                peer_isn=PEER_ISN, options=build_options(mss=MSS, timestamp=(77, 0)),
                window=WINDOW,
            )  # fmt: skip
            connection.send(random.Random(1).randbytes(5000))
            connection.shutdown_write()
            return [(segment.raw, segment.segment_size) for segment in peer.take()]

    one_by_one = run(bursts=False)
    assert run(bursts=True) == one_by_one
    assert calls == ["burst of 2", "transmit"]
    flags = [raw[13] for raw, _ in one_by_one]
    assert flags[-1] & FIN and flags[-1] & PSH
    assert not any(flag & (PSH | FIN) for flag in flags[:-1])


def test_one_pass_hands_all_its_segments_down_in_one_call() -> None:
    """Counted work: the initial window's TSO segments are one ``emit_many`` call (the
    segment a third of the window would leave waits for an ACK: TSO deferral)."""
    peer = ScriptedPeer(TcpConfig(hystart=False, congestion_control="newreno"), mss=MSS)
    peer.layer.max_segment_payload = 3 * MSS
    peer.layer.partial_checksums = True
    calls: list[list[EmittedSegment]] = []
    peer.layer.output = CallbackOutput(
        peer.layer.output.emit, lambda source, destination, segments: calls.append(segments)
    )
    connection, _iss = peer.passive_open(
        peer_isn=PEER_ISN, options=build_options(mss=MSS, timestamp=(77, 0)), window=WINDOW
    )
    connection.send(b"b" * 100 * MSS)
    peer.take()
    mss = MSS - 12  # the timestamp option comes out of each segment
    assert connection._snd_mss == mss
    assert [[length for *_, length in segments] for segments in calls] == [[3 * mss] * 3]


def test_without_timestamps_segments_go_one_by_one() -> None:
    """The bulk path builds the timestamp layout alone; other headers take ``_emit``."""
    peer = ScriptedPeer(TcpConfig(hystart=False, congestion_control="newreno"), mss=MSS)
    peer.layer.max_segment_payload = 3 * MSS
    peer.layer.partial_checksums = True
    calls: list[object] = []
    peer.layer.output = CallbackOutput(
        peer.layer.output.emit, lambda *arguments: calls.append(arguments)
    )
    connection, _iss = peer.passive_open(peer_isn=PEER_ISN, options=build_options(mss=MSS),
                                         window=WINDOW)  # fmt: skip
    connection.send(b"b" * 10 * MSS)
    sent = [segment for segment in peer.take() if segment.payload]
    assert calls == []
    assert sum(len(segment.payload) for segment in sent) == 10 * MSS


def _core() -> StackCore:
    return StackCore(["198.18.0.2/24"], rng=random.Random(3), transmit_offload=True,
                     max_packet_size=65535)  # fmt: skip


def test_the_ip_layer_queues_the_packets_send_ip_would() -> None:
    """Consecutive identifications (across the 16-bit wrap), the same headers."""
    segments: list[EmittedSegment] = [
        (bytes(range(32)), 1448, (b"x" * 5000, memoryview(b"y" * 792)), 5792),
        (bytes(32), 0, (b"z" * 10,), 10),
        (bytes(20), 0, (), 0),
    ]
    one_by_one, together = _core(), _core()
    one_by_one._identification = together._identification = 0xFFFE
    for header, size, parts, _ in segments:
        one_by_one.send_ip(LOCAL, REMOTE, ipv4.PROTO_TCP, header, segment_size=size, tail=parts)
    together.send_segments(LOCAL, REMOTE, ipv4.PROTO_TCP, segments)
    expected = one_by_one.packets_to_send(0.0)
    got = together.packets_to_send(0.0)
    assert got == expected
    assert together.statistics()["ip"]["sent"] == 3
    identifications = []
    for packet in got:
        assert isinstance(packet, OffloadedPacket)
        parsed = dpkt.ip.IP(packet.whole())  # an independent parser checks the header
        assert parsed.sum == dpkt.ip.IP(bytes(parsed)).sum
        identifications.append(parsed.id)
    assert identifications == [0xFFFF, 0, 1]


def test_the_ip_layer_queues_the_ipv6_packets_send_ip_would() -> None:
    def core() -> StackCore:
        return StackCore(["2001:2::2/64"], rng=random.Random(3), transmit_offload=True,
                         max_packet_size=65535)  # fmt: skip

    local = ipaddress.ip_address("2001:2::2").packed
    remote = ipaddress.ip_address("2001:2::9").packed
    segments: list[EmittedSegment] = [
        (bytes(range(32)), 1428, (b"x" * 5000, memoryview(b"y" * 792)), 5792),
        (bytes(32), 0, (b"z" * 10,), 10),
    ]
    one_by_one, together = core(), core()
    for header, size, parts, _ in segments:
        one_by_one.send_ip(local, remote, ipv4.PROTO_TCP, header, segment_size=size, tail=parts)
    together.send_segments(local, remote, ipv4.PROTO_TCP, segments)
    assert together.packets_to_send(0.0) == one_by_one.packets_to_send(0.0)
    assert together.ip6_stats == one_by_one.ip6_stats


@pytest.mark.parametrize("family", [4, 6])
def test_the_ip_layer_refuses_a_packet_longer_than_the_link_takes(family: int) -> None:
    """All or nothing: a segment too long for the link, after one that fits, leaves
    nothing queued (the TCP layer recorded them together)."""
    if family == 4:
        core, local, remote = _core(), LOCAL, REMOTE
    else:
        core = StackCore(["2001:2::2/64"], rng=random.Random(3), transmit_offload=True,
                         max_packet_size=65535)  # fmt: skip
        local = ipaddress.ip_address("2001:2::2").packed
        remote = ipaddress.ip_address("2001:2::9").packed
    fits: EmittedSegment = (bytes(32), 1448, (b"x" * 1448 * 2,), 1448 * 2)
    too_long: EmittedSegment = (bytes(32), 1448, (), 65_500)
    with pytest.raises(ValueError, match="exceeds the link's limit of 65535"):
        core.send_segments(local, remote, ipv4.PROTO_TCP, [fits, too_long])
    assert core.packets_to_send(0.0) == []

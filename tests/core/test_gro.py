"""Software GRO (core/gro.py) through the sans-I/O core, in virtual time.

Every test feeds one batch of packets to two cores, one merging (``IpConfig(gro=True)``)
and one not, through the driver's :class:`~aionetstack.core.pump.Pump`, and checks that
both deliver the same bytes, owe and send the same ACKs, and count the same drops;
only the number of segments the TCP layer processed differs.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.config import IpConfig, StackConfig
from aionetstack.core.gro import Coalescer, MergedSegment
from aionetstack.core.pump import EventHandlers, Pump
from aionetstack.core.stack import StackCore
from aionetstack.core.tcp import TcpConnection
from aionetstack.testing.segments import make_segment
from aionetstack.wire import ipv4, ipv6
from aionetstack.wire.checksum import internet_checksum
from aionetstack.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, build_options, parse_tcp
from aionetstack.wire.udp import build_udp

US4, PEER4 = bytes([198, 18, 0, 2]), bytes([198, 18, 0, 1])
US6 = bytes.fromhex("20010002000000000000000000000002")
PEER6 = bytes.fromhex("20010002000000000000000000000001")
MSS = 1448  # 1460 less the timestamp option
NOW = 10.0
PEER_ISN = 1000
TSVAL = 777


class BatchLink:
    """A link that hands over the batches it is given, one per ``receive_batch``."""

    receive_checksums_partial = False

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.sent: list[bytes] = []

    def receive_batch(self, limit: int, now: float) -> list[bytes]:
        return self.batches.pop(0) if self.batches else []

    def send(self, packet: bytes, now: float) -> None:
        self.sent.append(bytes(packet))

    def send_offloaded(
        self, packet: bytes, segment_size: int, now: float,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:  # fmt: skip
        raise AssertionError("no offload here")

    def get_timer(self) -> float | None:
        return None


@dataclasses.dataclass
class Receiver:
    """A core with one connection established from PEER (port 40000) to us (port 80)."""

    core: StackCore
    link: BatchLink
    pump: Pump
    version: int
    our_isn: int

    @property
    def connection(self) -> TcpConnection:
        (connection,) = self.core.tcp.connections
        return connection

    def packet(
        self, seq: int, payload: bytes = b"", *, flags: int = ACK, tsval: int = TSVAL,
        window: int = 4000, ttl: int = 64, tos: int = 0,
    ) -> bytes:  # fmt: skip
        """A segment from the peer (seq counted from the first data byte, 0)."""
        us, peer = (US4, PEER4) if self.version == 4 else (US6, PEER6)
        segment = make_segment(
            peer, us, 40000, 80, seq=(PEER_ISN + 1 + seq) & 0xFFFFFFFF, ack=self.our_isn + 1,
            flags=flags, window=window, payload=payload,
            options=build_options(timestamp=(tsval, 1)),
        )  # fmt: skip
        if self.version == 4:
            header = ipv4.IPv4Header(peer, us, ipv4.PROTO_TCP, ttl=ttl, tos=tos)
            return ipv4.build_ipv4(header, segment)
        return ipv6.build_ipv6(ipv6.IPv6Header(peer, us, ipv4.PROTO_TCP, hop_limit=ttl), segment)

    def feed(self, batch: Sequence[bytes], now: float = NOW) -> list[bytes]:
        """Give the core one batch; return what it sent (ACKs) after processing it."""
        self.link.sent.clear()
        self.link.batches.append(list(batch))
        self.pump.receive(now)
        self.pump.process(now)
        return list(self.link.sent)

    def stream(self) -> bytes:
        return self.connection.receive()

    def tcp(self, name: str) -> int:
        return self.core.statistics()["tcp"].get(name, 0)


def receiver(*, gro: bool, version: int = 4) -> Receiver:
    config = StackConfig(ip=IpConfig(gro=gro))
    core = StackCore(["198.18.0.2/24", "2001:2::2/64"], config=config, rng=random.Random(7))
    core.tcp.listen(None, 80)
    link = BatchLink()
    pump = Pump(core, link, EventHandlers({}), _raise)
    peer, us = (PEER4, US4) if version == 4 else (PEER6, US6)
    syn = make_segment(
        peer, us, 40000, 80, seq=PEER_ISN, flags=SYN, window=65535,
        options=build_options(mss=1460, window_scale=7, sack_permitted=True,
                              timestamp=(TSVAL, 0)),
    )  # fmt: skip
    if version == 4:
        syn = ipv4.build_ipv4(ipv4.IPv4Header(peer, us, ipv4.PROTO_TCP), syn)
    else:
        syn = ipv6.build_ipv6(ipv6.IPv6Header(peer, us, ipv4.PROTO_TCP), syn)
    core.receive_packet(syn, NOW - 1)
    (synack,) = core.packets_to_send(NOW - 1)
    assert isinstance(synack, bytes)
    our_isn = parse_tcp(synack[20 if version == 4 else 40 :]).seq
    made = Receiver(core, link, pump, version, our_isn)
    core.receive_packet(made.packet(0), NOW - 1)  # the handshake's last ACK
    assert core.packets_to_send(NOW - 1) == []
    return made


def _raise(doing: str, error: Exception) -> None:
    raise AssertionError(f"core error while {doing}") from error


def both(
    build: Callable[[Receiver], list[bytes]], *, version: int = 4
) -> tuple[Receiver, Receiver, list[bytes], list[bytes]]:
    """The same batch (built per receiver) into a merging core and a plain one."""
    merging, plain = receiver(gro=True, version=version), receiver(gro=False, version=version)
    assert merging.our_isn == plain.our_isn  # same seed: the two build identical packets
    batch = build(merging)
    assert batch == build(plain)
    return merging, plain, merging.feed(batch), plain.feed(batch)


def data(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize("version", [4, 6])
def test_a_run_is_merged_into_one_segment_and_acked_as_the_separate_ones(version: int) -> None:
    payload = data(20 * MSS)

    def build(peer: Receiver) -> list[bytes]:
        return [peer.packet(i * MSS, payload[i * MSS : (i + 1) * MSS]) for i in range(20)]

    merging, plain, acks, plain_acks = both(build, version=version)
    assert merging.stream() == plain.stream() == payload
    assert acks == plain_acks and len(acks) == 1  # one ACK for the batch, the same bytes
    assert parse_tcp(acks[0][20 if version == 4 else 40 :]).ack == PEER_ISN + 1 + len(payload)
    # Counted work: the TCP layer processed one segment for 20 packets.
    assert merging.tcp("segments_in") == 2 + 1  # SYN, ACK, then the merged one
    assert plain.tcp("segments_in") == 2 + 20
    assert merging.core.statistics()["gro"] == {
        "merged": 1,
        "segments_merged": 20,
        "acks_thinned": 0,
    }


def test_a_full_batch_of_max_sized_runs_is_cut_at_64_kib() -> None:
    payload = data(100 * MSS)

    def build(peer: Receiver) -> list[bytes]:
        return [peer.packet(i * MSS, payload[i * MSS : (i + 1) * MSS]) for i in range(100)]

    merging, plain, acks, plain_acks = both(build)
    # The receive window (64 KiB before autotuning) takes 45 segments; the rest is dropped
    # as out of window, alike.
    stream = merging.stream()
    assert stream == plain.stream() == payload[:65535]
    assert acks == plain_acks
    per_run = (0xFFFF - 20 - 32) // MSS  # 45 segments fit in one IPv4 packet
    merged = Coalescer(merging.core).coalesce(build(merging))
    assert [item.count for item in merged if isinstance(item, MergedSegment)] == [45, 45, 10]
    assert all(len(item.packet) <= 0xFFFF for item in merged if isinstance(item, MergedSegment))
    assert per_run == 45


def test_a_delayed_ack_is_owed_alike_for_one_segment_and_for_a_short_run() -> None:
    # Less than two full segments' worth: the ACK waits for the delayed-ACK timer in both.
    half = MSS // 2
    payload = data(2 * half)

    def build(peer: Receiver) -> list[bytes]:
        return [peer.packet(0, payload[:half]), peer.packet(half, payload[half:])]

    merging, plain, acks, plain_acks = both(build)
    assert acks == plain_acks == []
    assert merging.connection._delack_deadline == plain.connection._delack_deadline
    deadline = NOW + 1.0  # past the delayed-ACK timeout
    merging.core.handle_timer(deadline)
    plain.core.handle_timer(deadline)
    delayed = merging.core.packets_to_send(deadline)
    assert delayed == plain.core.packets_to_send(deadline) and len(delayed) == 1
    # The short second segment ended the run: it was merged as the last.
    assert merging.core.statistics()["gro"]["segments_merged"] == 2


def test_each_segment_acks_alike_across_batches() -> None:
    # Two full segments per batch: an ACK after each batch, whether merged or not.
    payload = data(6 * MSS)
    merging, plain = receiver(gro=True), receiver(gro=False)
    for start in range(0, 6, 2):
        batches = [
            [peer.packet(i * MSS, payload[i * MSS : (i + 1) * MSS]) for i in (start, start + 1)]
            for peer in (merging, plain)
        ]
        acks = merging.feed(batches[0])
        assert acks == plain.feed(batches[1]) and len(acks) == 1
    assert merging.stream() == plain.stream() == payload


HOSTILE: dict[str, Callable[[Receiver, bytes], list[bytes]]] = {
    # The second segment overlaps the first by 448 bytes.
    "overlap": lambda p, d: [p.packet(0, d[:MSS]), p.packet(1000, d[1000 : 1000 + MSS]),
                             p.packet(1000 + MSS, d[1000 + MSS : 1000 + 2 * MSS])],
    # The middle segment's timestamp differs: option bytes are compared whole.
    "options": lambda p, d: [p.packet(0, d[:MSS]), p.packet(MSS, d[MSS : 2 * MSS], tsval=778),
                             p.packet(2 * MSS, d[2 * MSS : 3 * MSS], tsval=778)],
    "window": lambda p, d: [p.packet(0, d[:MSS]), p.packet(MSS, d[MSS : 2 * MSS], window=4001),
                            p.packet(2 * MSS, d[2 * MSS : 3 * MSS])],
    "fin": lambda p, d: [p.packet(0, d[:MSS]), p.packet(MSS, d[MSS : 2 * MSS], flags=ACK | FIN),
                         p.packet(2 * MSS, d[2 * MSS : 3 * MSS])],
    "psh": lambda p, d: [p.packet(0, d[:MSS]), p.packet(MSS, d[MSS : 2 * MSS], flags=ACK | PSH),
                         p.packet(2 * MSS, d[2 * MSS : 3 * MSS])],
    "urg": lambda p, d: [p.packet(0, d[:MSS]), p.packet(MSS, d[MSS : 2 * MSS], flags=ACK | URG),
                         p.packet(2 * MSS, d[2 * MSS : 3 * MSS])],
    "ece-cwr": lambda p, d: [p.packet(0, d[:MSS]),
                             p.packet(MSS, d[MSS : 2 * MSS], flags=ACK | ECE | CWR),
                             p.packet(2 * MSS, d[2 * MSS : 3 * MSS])],
    "rst": lambda p, d: [p.packet(0, d[:MSS]), p.packet(MSS, d[MSS : 2 * MSS]),
                         p.packet(2 * MSS, flags=ACK | RST)],
    "syn": lambda p, d: [p.packet(0, d[:MSS]), p.packet(MSS, d[MSS : 2 * MSS], flags=SYN)],
    "ttl": lambda p, d: [p.packet(0, d[:MSS]), p.packet(MSS, d[MSS : 2 * MSS], ttl=9),
                         p.packet(2 * MSS, d[2 * MSS : 3 * MSS], ttl=9)],
    "tos": lambda p, d: [p.packet(0, d[:MSS]), p.packet(MSS, d[MSS : 2 * MSS], tos=4)],
    "longer": lambda p, d: [p.packet(0, d[:1000]), p.packet(1000, d[1000 : 1000 + MSS])],
    "pure-ack": lambda p, d: [p.packet(0, d[:MSS]), p.packet(MSS), p.packet(MSS, d[MSS : 2 * MSS])],
    "reordered": lambda p, d: [p.packet(MSS, d[MSS : 2 * MSS]), p.packet(0, d[:MSS]),
                               p.packet(2 * MSS, d[2 * MSS : 3 * MSS])],
    "duplicate": lambda p, d: [p.packet(0, d[:MSS]), p.packet(0, d[:MSS]),
                               p.packet(MSS, d[MSS : 2 * MSS])],
}  # fmt: skip


def more_fragments(packet: bytes) -> bytes:
    """``packet`` (IPv4) with MF set and its header checksum fixed."""
    header = bytearray(packet[:20])
    header[6] |= 0x20
    header[10:12] = b"\x00\x00"
    header[10:12] = internet_checksum(header).to_bytes(2, "big")
    return bytes(header) + packet[20:]


def corrupt(packet: bytes, offset: int = -1) -> bytes:
    changed = bytearray(packet)
    changed[offset] ^= 0x01
    return bytes(changed)


HOSTILE["bad-checksum"] = lambda p, d: [
    p.packet(0, d[:MSS]), corrupt(p.packet(MSS, d[MSS : 2 * MSS])),
    *(p.packet(i * MSS, d[i * MSS : (i + 1) * MSS]) for i in range(2, 6)),
]  # fmt: skip
HOSTILE["udp-between"] = lambda p, d: [
    p.packet(0, d[:MSS]),
    ipv4.build_ipv4(ipv4.IPv4Header(PEER4, US4, ipv4.PROTO_UDP),
                    build_udp(5000, 9, b"x", PEER4, US4)),
    p.packet(MSS, d[MSS : 2 * MSS]),
]  # fmt: skip
HOSTILE["fragment"] = lambda p, d: [
    p.packet(0, d[:MSS]),
    # An IPv4 fragment (MF set) of the same flow is never merged.
    more_fragments(p.packet(MSS, d[MSS : 2 * MSS])),
]  # fmt: skip


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_batches_deliver_and_ack_as_without_merging(case: str) -> None:
    payload = data(6 * MSS, seed=len(case))
    merging, plain, acks, plain_acks = both(lambda peer: HOSTILE[case](peer, payload))
    alive = bool(merging.core.tcp.connections) and bool(plain.core.tcp.connections)
    assert alive or case in ("rst", "syn")
    if merging.core.tcp.connections:
        assert merging.stream() == plain.stream()
    assert acks == plain_acks
    stats, plain_stats = merging.core.statistics(), plain.core.statistics()
    assert stats["udp"] == plain_stats["udp"]
    ip, plain_ip = dict(stats["ip"]), dict(plain_stats["ip"])
    for counts in (ip, plain_ip):  # IP sees merged packets as one
        del counts["received"], counts["delivered"]
    assert ip == plain_ip
    tcp, plain_tcp = dict(stats["tcp"]), dict(plain_stats["tcp"])
    for counts in (tcp, plain_tcp):
        # Counted per segment the TCP layer saw: fewer with merging.
        for name in (
            "segments_in",
            "predicted_segments",
            "out_of_order_segments_received",
            "memory_in_use",
        ):
            counts.pop(name, None)
    assert tcp == plain_tcp


def test_a_bad_checksum_is_dropped_and_counted_and_not_merged() -> None:
    payload = data(6 * MSS)
    merging, plain, _, _ = both(lambda peer: HOSTILE["bad-checksum"](peer, payload))
    assert merging.tcp("dropped_bad_checksum") == plain.tcp("dropped_bad_checksum") == 1
    assert merging.stream() == payload[:MSS]  # the rest waits out of order for the resend
    # The segment after the hole goes alone (it does not continue the flow's last one);
    # the three after it are merged.
    assert merging.core.statistics()["gro"] == {
        "merged": 1,
        "segments_merged": 3,
        "acks_thinned": 0,
    }


def test_merged_segment_layout() -> None:
    peer = receiver(gro=True)
    payload = data(3 * MSS)
    batch = [peer.packet(i * MSS, payload[i * MSS : (i + 1) * MSS]) for i in range(3)]
    batch[-1] = peer.packet(2 * MSS, payload[2 * MSS :], flags=ACK | PSH)
    (merged,) = Coalescer(peer.core).coalesce(batch)
    assert isinstance(merged, MergedSegment) and merged.count == 3
    header, segment = ipv4.parse_ipv4(merged.packet)  # the IPv4 header checksum verifies
    assert header.total_length == len(merged.packet) == 20 + 32 + 3 * MSS
    tcp = parse_tcp(segment)
    assert tcp.flags == ACK | PSH and bytes(tcp.payload) == payload
    assert tcp.seq == PEER_ISN + 1


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, MSS), min_size=1, max_size=40),
    moves=st.lists(st.tuples(st.sampled_from(["swap", "dup", "drop", "corrupt", "psh", "ack"]),
                             st.integers(0, 39)), max_size=6),
    version=st.sampled_from([4, 6]),
    seed=st.integers(0, 2**16),
)  # fmt: skip
def test_merging_never_changes_the_delivered_stream_or_the_acks(
    sizes: list[int], moves: list[tuple[str, int]], version: int, seed: int
) -> None:
    payload = data(sum(sizes), seed)

    def build(peer: Receiver) -> list[bytes]:
        segments: list[tuple[int, int, int]] = []  # (start, end, flags)
        start = 0
        for size in sizes:
            segments.append((start, start + size, ACK))
            start += size
        for move, where in moves:
            index = where % len(segments)
            if move == "swap" and index + 1 < len(segments):
                segments[index], segments[index + 1] = segments[index + 1], segments[index]
            elif move == "dup":
                segments.insert(index, segments[index])
            elif move == "drop" and len(segments) > 1:
                del segments[index]
            elif move == "psh":
                segments[index] = (segments[index][0], segments[index][1], ACK | PSH)
            elif move == "ack":
                segments.insert(index, (segments[index][0], segments[index][0], ACK))
        packets = [peer.packet(s, payload[s:e], flags=f) for s, e, f in segments]
        for move, where in moves:
            if move == "corrupt":
                index = where % len(packets)
                packets[index] = corrupt(packets[index], len(packets[index]) // 2)
        return packets

    merging, plain, acks, plain_acks = both(build, version=version)
    assert merging.stream() == plain.stream()
    assert acks == plain_acks
    assert merging.tcp("dropped_bad_checksum") == plain.tcp("dropped_bad_checksum")
    assert merging.tcp("segments_in") <= plain.tcp("segments_in")


# -- pure ACKs ---------------------------------------------------------------------------


def pure_ack(peer: Receiver, acked: int, *, window: int = 4000, tsval: int = TSVAL) -> bytes:
    """A pure ACK from the peer for our first ``acked`` data bytes."""
    us, peer_address = (US4, PEER4) if peer.version == 4 else (US6, PEER6)
    segment = make_segment(
        peer_address, us, 40000, 80, seq=PEER_ISN + 1, ack=(peer.our_isn + 1 + acked) & 0xFFFFFFFF,
        flags=ACK, window=window, options=build_options(timestamp=(tsval, 1)),
    )  # fmt: skip
    if peer.version == 4:
        return ipv4.build_ipv4(ipv4.IPv4Header(peer_address, us, ipv4.PROTO_TCP), segment)
    return ipv6.build_ipv6(ipv6.IPv6Header(peer_address, us, ipv4.PROTO_TCP), segment)


def sending(*, gro: bool, version: int = 4) -> Receiver:
    """A receiver whose connection has sent its initial window and has more to send."""
    peer = receiver(gro=gro, version=version)
    peer.connection.send(data(40 * MSS))
    peer.feed([])
    return peer


def after_acks(peer: Receiver) -> tuple[object, ...]:
    """What the ACKs changed: SND.UNA, the window, cwnd, duplicate ACKs and what was sent."""
    connection = peer.connection
    sent = [(parse_tcp(p[20 if peer.version == 4 else 40 :]).seq, len(p)) for p in peer.link.sent]
    return (
        connection._una, connection._snd_wnd, connection._cc.cwnd, connection._loss.dupacks,
        peer.tcp("fast_retransmits"), sent,
    )  # fmt: skip


@pytest.mark.parametrize("version", [4, 6])
def test_a_run_of_pure_acks_keeps_its_first_and_newest(version: int) -> None:
    thinning, plain = sending(gro=True, version=version), sending(gro=False, version=version)
    batch = [pure_ack(thinning, n * MSS, window=4000 + n) for n in range(1, 9)]
    assert batch == [pure_ack(plain, n * MSS, window=4000 + n) for n in range(1, 9)]
    kept = Coalescer(thinning.core).coalesce(batch)
    assert kept == [batch[0], batch[-1]]
    thinning.feed(batch)
    plain.feed(batch)
    assert after_acks(thinning) == after_acks(plain)
    assert thinning.core.statistics()["gro"]["acks_thinned"] == 6
    assert thinning.tcp("segments_in") == plain.tcp("segments_in") - 6


def test_duplicate_acks_are_never_thinned_and_still_trigger_fast_retransmit() -> None:
    thinning, plain = sending(gro=True), sending(gro=False)
    batch = [pure_ack(thinning, MSS)] * 5
    assert Coalescer(thinning.core).coalesce(batch) == batch
    thinning.feed(batch)
    plain.feed(batch)
    assert after_acks(thinning) == after_acks(plain)
    assert thinning.tcp("fast_retransmits") == 1


def test_acks_around_a_data_segment_or_a_bad_checksum_are_not_thinned_across_it() -> None:
    peer = sending(gro=True)
    first, second, third, fourth = (pure_ack(peer, n * MSS) for n in range(1, 5))
    data_segment = peer.packet(0, b"request")
    kept = Coalescer(peer.core).coalesce([first, second, data_segment, third, fourth])
    assert kept == [first, second, data_segment, third, fourth]
    bad = corrupt(third)
    kept = Coalescer(peer.core).coalesce([first, second, bad, fourth])
    assert kept == [first, second, bad, fourth]


def test_acknowledgment_numbers_are_compared_across_the_wrap() -> None:
    def ack_number(value: int) -> bytes:
        segment = make_segment(
            PEER4, US4, 40000, 80, seq=5, ack=value, flags=ACK,
            options=build_options(timestamp=(TSVAL, 1)),
        )  # fmt: skip
        return ipv4.build_ipv4(ipv4.IPv4Header(PEER4, US4, ipv4.PROTO_TCP), segment)

    coalescer = Coalescer(receiver(gro=True).core)
    rising = [ack_number(v) for v in (0xFFFFFF00, 0xFFFFFFF0, 0x10, 0x100)]
    assert coalescer.coalesce(rising) == [rising[0], rising[-1]]
    falling = [ack_number(v) for v in (0x10, 0xFFFFFFF0, 0x100)]  # the second goes back
    assert coalescer.coalesce(falling) == falling


@settings(max_examples=60, deadline=None)
@given(
    acks=st.lists(st.tuples(st.integers(0, 12), st.sampled_from([3000, 4000, 9000])),
                  min_size=1, max_size=30),
    data_at=st.sets(st.integers(0, 29), max_size=3),
    version=st.sampled_from([4, 6]),
)  # fmt: skip
def test_thinning_never_changes_what_the_acks_do(
    acks: list[tuple[int, int]], data_at: set[int], version: int
) -> None:
    """Any batch of ACKs of sent data (duplicates, reordered, windows changing, the
    peer's data between them) leaves SND.UNA, the window, cwnd, the duplicate-ACK count
    and what is sent next as it would without thinning."""
    thinning, plain = sending(gro=True, version=version), sending(gro=False, version=version)
    sent = thinning.connection._nxt - 1

    def build(peer: Receiver) -> list[bytes]:
        batch = []
        offset = 0
        for index, (segments, window) in enumerate(acks):
            if index in data_at:
                batch.append(peer.packet(offset, b"q" * 10))
                offset += 10
            batch.append(pure_ack(peer, min(segments * MSS, sent), window=window))
        return batch

    batch = build(thinning)
    assert batch == build(plain)
    thinning.feed(batch)
    plain.feed(batch)
    assert after_acks(thinning) == after_acks(plain)
    assert thinning.stream() == plain.stream()


@pytest.mark.parametrize("version", [4, 6])
def test_with_receive_offload_only_pure_acks_are_thinned(version: int) -> None:
    """A link whose kernel merged the data already: data passes untouched, ACK runs thin."""
    peer = sending(gro=True, version=version)
    coalescer = Coalescer(peer.core, verify=False, merge=False)
    acks = [pure_ack(peer, n * MSS) for n in range(1, 6)]
    one, two = peer.packet(0, b"a" * 100), peer.packet(100, b"b" * 100)
    assert coalescer.thin_acks([*acks, one, two]) == [acks[0], acks[-1], one, two]
    # Any other packet ends the runs: the ACKs after it start a new one.
    assert coalescer.thin_acks([acks[0], acks[1], one, acks[2], acks[3], acks[4]]) == [
        acks[0], acks[1], one, acks[2], acks[4],
    ]  # fmt: skip
    assert coalescer.acks_thinned == 3 + 1


def test_with_receive_offload_an_ack_with_a_bad_ip_header_is_not_thinned() -> None:
    peer = sending(gro=True)
    coalescer = Coalescer(peer.core, verify=False, merge=False)
    first, second, third = (pure_ack(peer, n * MSS) for n in range(1, 4))
    bad = corrupt(third, 8)  # the TTL: the IPv4 header checksum no longer holds
    assert coalescer.thin_acks([first, second, bad]) == [first, second, bad]


def _with_ip_header_fixed(packet: bytearray) -> bytes:
    """``packet`` with its IPv4 header checksum made right again."""
    packet[10:12] = b"\0\0"
    packet[10:12] = internet_checksum(bytes(packet[:20])).to_bytes(2, "big")
    return bytes(packet)


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (6, 0x20),  # more fragments
        (7, 0x01),  # a fragment offset
        (9, 17),  # UDP
        (3, 53),  # a total length that is not the packet's
        (32, 0x81),  # a reserved bit beside the data offset
        (40, 0x00),  # not NOP NOP TS: the options are not the timestamps alone
    ],
)
def test_a_52_byte_ack_that_is_not_plain_is_never_thinned(offset: int, value: int) -> None:
    """The 52-byte IPv4 ACK with timestamps is tested in one unpacking: every field the
    general check looks at still keeps a packet that is not a plain pure ACK."""
    peer = sending(gro=True)
    coalescer = Coalescer(peer.core, verify=False, merge=False)
    first, second, third = (pure_ack(peer, n * MSS) for n in range(1, 4))
    assert len(third) == 52
    odd = bytearray(third)
    odd[offset] = value
    changed = _with_ip_header_fixed(odd)
    assert coalescer.thin_acks([first, second, third]) == [first, third]
    assert coalescer.thin_acks([first, second, changed]) == [first, second, changed]


def test_the_offload_pump_thins_acks_and_merges_no_data() -> None:
    """The pump of a link with receive offload makes a thinning-only coalescer."""

    class OffloadLink(BatchLink):
        receive_checksums_partial = True

    config = StackConfig(ip=IpConfig(gro=True))
    core = StackCore(["198.18.0.2/24"], config=config, rng=random.Random(7))
    pump = Pump(core, OffloadLink(), EventHandlers({}), _raise)
    assert pump._gro is not None and not pump._gro._merge


@pytest.mark.parametrize("timestamps", [True, False])
def test_acks_with_sack_blocks_are_never_thinned(timestamps: bool) -> None:
    """A SACK block may not be repeated by the next ACK: such ACKs all reach TCP (with
    one block and no timestamps the header is as long as a timestamps-only one)."""
    peer = sending(gro=True)

    def sack_ack(acked: int) -> bytes:
        edge = peer.our_isn + 1 + 9 * MSS
        options = build_options(
            timestamp=(TSVAL, 1) if timestamps else None, sack_blocks=[(edge, edge + MSS)]
        )
        segment = make_segment(
            PEER4, US4, 40000, 80, seq=PEER_ISN + 1, ack=peer.our_isn + 1 + acked, flags=ACK,
            options=options,
        )  # fmt: skip
        return ipv4.build_ipv4(ipv4.IPv4Header(PEER4, US4, ipv4.PROTO_TCP), segment)

    batch = [sack_ack(n * MSS) for n in range(1, 5)]
    assert Coalescer(peer.core).coalesce(batch) == batch
    assert Coalescer(peer.core, verify=False, merge=False).thin_acks(batch) == batch

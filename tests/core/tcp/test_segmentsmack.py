"""The out-of-order queue under a SegmentSmack flood (CVE-2018-5390, FreeBSD CVE-2018-6922).

Linux counterpart: the rbtree out-of-order queue and ``tcp_prune_ofo_queue``. The cost
bound is counted work (Python lines executed in ``reassembly.py``, traced with
``sys.settrace``), so it does not depend on the machine's speed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from aionetstack.config import TcpConfig
from aionetstack.core.tcp import reassembly
from aionetstack.core.tcp.connection import check_invariants
from aionetstack.core.tcp.reassembly import Reassembly
from aionetstack.testing.segments import ScriptedPeer
from aionetstack.wire.tcp import ACK, build_options

PEER_ISN = 1000
_REASSEMBLY_FILE = reassembly.__file__


def _lines_in_reassembly(action: Callable[[], object]) -> int:
    """Run ``action`` and count the lines it executes in reassembly.py (counted work)."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if frame.f_code.co_filename != _REASSEMBLY_FILE:
            return None  # do not trace lines of other files
        if event == "line":
            count += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        action()
    finally:
        sys.settrace(previous)
    return count


def _flooded_peer() -> tuple[ScriptedPeer, Any, int]:
    peer = ScriptedPeer(TcpConfig())
    options = build_options(mss=1460, sack_permitted=True, window_scale=7, timestamp=(1, 0))
    connection, iss = peer.passive_open(peer_isn=PEER_ISN, options=options)
    return peer, connection, iss


def _hole(peer: ScriptedPeer, iss: int, index: int) -> None:
    """One byte at RCV.NXT + 2 + 2*index: a new range with a one-byte hole below it."""
    peer.inject(seq=PEER_ISN + 1 + 2 + 2 * index, ack=iss + 1, flags=ACK, payload=b"z")


def test_one_byte_holes_are_capped_in_segments() -> None:
    """6,000 one-byte segments with holes: the queue stops at its segment cap (default
    4096, Linux truesize-like), refuses the rest and counts them; invariants hold."""
    peer, connection, iss = _flooded_peer()
    for index in range(6000):
        _hole(peer, iss, index)
    ooo = connection._ooo
    assert ooo is not None
    assert ooo.range_count <= TcpConfig().out_of_order_segments
    assert ooo.check() == []
    assert peer.layer.statistics()["drops_out_of_order_queue_full"] >= 6000 - 4096
    assert check_invariants(connection) == []
    # The hole at RCV.NXT fills: everything up to the first gap is delivered.
    peer.inject(seq=PEER_ISN + 1, ack=iss + 1, flags=ACK, payload=b"ab")
    assert connection.receive() == b"abz"


def test_out_of_order_cost_per_segment_does_not_grow_with_the_ranges_held() -> None:
    """The work one more out-of-order segment costs (queueing it and building the SACK
    blocks of the duplicate ACK) is the same at 200 and at 4,000 ranges held."""
    peer, _connection, iss = _flooded_peer()
    index = 0
    samples: dict[int, int] = {}
    for target in (200, 4000):
        while index < target:
            _hole(peer, iss, index)
            index += 1
        start = index

        def burst(first: int = start) -> None:
            for offset in range(20):
                _hole(peer, iss, first + offset)

        samples[target] = _lines_in_reassembly(burst)
        index += 20
    per_segment_small = samples[200] / 20
    per_segment_large = samples[4000] / 20
    assert per_segment_large <= 1.25 * per_segment_small, samples
    assert per_segment_large < 120, samples  # a few dozen lines, whatever the queue holds


def test_descending_one_byte_segments_stay_bounded() -> None:
    """Segments arriving right to left (each prepends to the range above): tiny ones are
    coalesced into the first piece, so pieces stay few and each costs constant work."""
    queue = Reassembly(limit=1 << 20, max_segments=256)
    base = 100_000
    for index in range(10_000):
        before = queue.work
        assert queue.add(base - index, b"x")
        assert queue.work - before <= 2
    assert queue.range_count == 1 and queue.check() == []
    assert queue.segments_held <= 10_000 // 2048 + 1


def test_pruning_drops_the_highest_ranges_first() -> None:
    """Full queue, then a segment nearer RCV.NXT: the ranges above it are pruned (Linux
    tcp_prune_ofo_queue), highest first, and counted; a segment above them all is refused."""
    queue = Reassembly(limit=1 << 20, max_segments=4)
    for start in (100, 200, 300, 400):
        assert queue.add(start, b"abc")
    assert not queue.add(500, b"def")  # nothing above it to prune: refused
    assert queue.add(50, b"low")
    assert queue.sack_blocks(10)[0] == (50, 53)
    assert sorted(queue.sack_blocks(10)) == [(50, 53), (100, 103), (200, 203), (300, 303)]
    assert (queue.pruned_ranges, queue.pruned_bytes) == (1, 3)
    # The byte cap prunes the same way.
    small = Reassembly(limit=10)
    assert small.add(100, b"12345") and small.add(200, b"12345")
    assert small.add(10, b"abcd")
    assert small.sack_blocks(4) == [(10, 14), (100, 105)]
    assert small.check() == []


def test_merging_keeps_pieces_and_delivers_the_bytes_in_order() -> None:
    queue = Reassembly(limit=1 << 20)
    stream = bytes(range(200))
    for start in range(150, 0, -10):  # a right-to-left fill, with holes, then the holes
        queue.add(start, stream[start : start + 5])
    for start in range(155, 0, -10):
        queue.add(start, stream[start : start + 5])
    assert queue.range_count == 1 and queue.check() == []
    ready = queue.pop_ready(10)
    assert ready is not None and bytes(ready) == stream[10:160]
    assert not queue and queue.segments_held == 0 and queue.bytes_held == 0


def test_a_full_queue_prunes_above_a_nearer_segment_and_counts_it() -> None:
    """Through a connection: with the segment cap reached, a segment nearer RCV.NXT is
    kept and the highest range is pruned (statistics: out_of_order_ranges_pruned)."""
    peer = ScriptedPeer(TcpConfig(out_of_order_segments=8))
    connection, iss = peer.passive_open(peer_isn=PEER_ISN)
    for index in range(8):
        peer.inject(seq=PEER_ISN + 1 + 100 + 10 * index, ack=iss + 1, payload=b"q")
    peer.inject(seq=PEER_ISN + 1 + 50, ack=iss + 1, payload=b"n")
    stats = peer.layer.statistics()
    assert stats["out_of_order_ranges_pruned"] == 1
    assert connection._ooo is not None and connection._ooo.highest_end == 100 + 10 * 6 + 1

"""SACK processing cost under repeated blocks (the SACK-slowness class, CVE-2019-11478).

Linux counterpart: ``recv_sack_cache`` and the rbtree retransmission queue; gVisor's
B-tree scoreboard. Cost is counted work (Python lines executed in aionetstack/core,
traced), never seconds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from aionetstack import core
from aionetstack.config import TcpConfig
from aionetstack.core.tcp import TcpConnection
from aionetstack.core.tcp.recovery import check_invariants
from aionetstack.testing.segments import ScriptedPeer
from aionetstack.wire.tcp import build_options

PEER_ISN = 1000
MSS = 64
_CORE = str(Path(core.__file__).parent)


def core_lines(action: Callable[[], object]) -> int:
    """Run ``action`` and count the Python lines it executes in aionetstack/core."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if not frame.f_code.co_filename.startswith(_CORE):
            return None
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


def open_flight(records: int) -> tuple[ScriptedPeer, TcpConnection]:
    """A sender with at least ``records`` 64-byte segments in flight (peer MSS 64, the
    minimum), grown by ACKing every segment in slow start."""
    peer = ScriptedPeer(TcpConfig(hystart=False, congestion_control="newreno"))
    options = build_options(mss=MSS, sack_permitted=True, window_scale=7)
    connection, _ = peer.passive_open(peer_isn=PEER_ISN, options=options)
    connection.send(b"x" * (MSS * 4 * records))
    pending = [s for s in peer.take() if s.payload]
    for _ in range(64):
        if connection._nxt - connection._una >= MSS * records:
            break
        fresh = []
        for segment in pending:
            emitted = peer.inject(seq=PEER_ISN + 1, ack=segment.seq + len(segment.payload))
            fresh += [s for s in emitted if s.payload]
        pending = fresh
        peer.clock.advance(0.01)
    return peer, connection


def sack_flood_cost(records: int) -> float:
    """Lines per duplicate ACK that repeats three SACK blocks over the whole flight."""
    peer, connection = open_flight(records)
    una = (connection._iss + connection._una) & 0xFFFFFFFF
    count = (connection._nxt - connection._una) // MSS
    blocks = [
        (una + MSS * 2, una + MSS * (count // 3)),
        (una + MSS * (count // 3 + 1), una + MSS * (2 * count // 3)),
        (una + MSS * (2 * count // 3 + 1), una + MSS * (count - 1)),
    ]
    sack = build_options(sack_blocks=[(a & 0xFFFFFFFF, b & 0xFFFFFFFF) for a, b in blocks])

    def ack() -> None:
        peer.inject(seq=PEER_ISN + 1, ack=una, options=sack)

    for _ in range(5):  # the first ones mark the records and start recovery
        ack()
    lines = core_lines(lambda: [ack() for _ in range(20)])
    assert check_invariants(connection) == []
    return lines / 20


def test_repeated_sack_blocks_cost_the_same_at_640_and_5120_records() -> None:
    """1,000 identical SACK ACKs must not each re-walk the flight: the per-ACK work at
    5,120 records in flight is within 1.3x of that at 640 (8x more records)."""
    small = sack_flood_cost(512)
    large = sack_flood_cost(4096)
    assert large <= 1.3 * small, (small, large)


def test_the_scoreboard_matches_the_records_after_partial_and_overlapping_blocks() -> None:
    """Blocks that cut records in half, overlap, repeat and then get cumulatively ACKed:
    the merged scoreboard always equals the union of SACKed records."""
    peer, connection = open_flight(64)
    una = (connection._iss + connection._una) & 0xFFFFFFFF
    for left, right in [(3, 7), (10, 12), (5, 11), (2, 3), (20, 30), (1, 40), (41, 42)]:
        edge = build_options(
            sack_blocks=[((una + MSS * left + 7) & 0xFFFFFFFF, (una + MSS * right) & 0xFFFFFFFF)]
        )
        peer.inject(seq=PEER_ISN + 1, ack=una, options=edge)
        assert check_invariants(connection) == []
    peer.inject(seq=PEER_ISN + 1, ack=(una + MSS * 25) & 0xFFFFFFFF)
    assert check_invariants(connection) == []
    assert connection._loss.sack_ends and connection._loss.sack_ends[0] > connection._una

"""Segments per second through two TCP layers in memory (no I/O, no simulator).

A bulk transfer from layer A to layer B; segments are handed straight from one
layer's emit to the other's receive_segment (checksums are computed on send and
not verified, as on a TUN with offloads), with one flush per delivered batch.

    python benchmarks/core_segments.py [--megabytes 50] [--mss 1460] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aionetstack.config import TcpConfig
from aionetstack.core.tcp import TcpAccepted, TcpLayer, TcpReadable

A = bytes([198, 18, 0, 1])
B = bytes([198, 18, 0, 2])


def run(megabytes: int, mss: int) -> dict[str, float]:
    total = megabytes * 1_000_000
    config = TcpConfig(send_buffer=4 << 20, receive_buffer=4 << 20)
    wire_ab: list[bytes] = []
    wire_ba: list[bytes] = []
    events_a: collections.deque[object] = collections.deque()
    events_b: collections.deque[object] = collections.deque()
    layer_a = TcpLayer(config, random.Random(1), emit=lambda s, d, seg: wire_ab.append(seg),
                       events=events_a, mss_for=lambda _: mss)  # fmt: skip
    layer_b = TcpLayer(config, random.Random(2), emit=lambda s, d, seg: wire_ba.append(seg),
                       events=events_b, mss_for=lambda _: mss)  # fmt: skip
    layer_b.listen(B, 5001)
    client = layer_a.connect(A, B, 5001, 0.0)
    chunk = bytes(256 * 1024)
    now = 0.0
    sent = received = 0
    segments = 0
    server = None
    started = time.perf_counter()
    while received < total:
        now += 0.0001
        if sent < total:
            sent += client.send(memoryview(chunk)[: min(len(chunk), total - sent)])
        layer_a.flush(now)
        batch, wire_ab[:] = list(wire_ab), []
        for segment in batch:
            layer_b.receive_segment(A, B, memoryview(segment), now)
        segments += len(batch)
        while events_b:
            event = events_b.popleft()
            if isinstance(event, TcpAccepted):
                server = event.listener.accept()
            elif isinstance(event, TcpReadable):
                received += len(event.connection.receive())
        layer_b.flush(now)
        batch, wire_ba[:] = list(wire_ba), []
        for segment in batch:
            layer_a.receive_segment(B, A, memoryview(segment), now)
        segments += len(batch)
        events_a.clear()
        if not batch and not wire_ab:
            timer = min(
                t for t in (layer_a.get_timer(), layer_b.get_timer(), now + 1) if t is not None
            )
            now = max(now, timer)
            layer_a.handle_timer(now)
            layer_b.handle_timer(now)
    elapsed = time.perf_counter() - started
    assert server is not None and received == total
    return {
        "segments": segments,
        "seconds": elapsed,
        "segments_per_second": segments / elapsed,
        "megabits_per_second": total * 8 / elapsed / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--mss", type=int, default=1460)
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    args = parser.parse_args()
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        result = run(args.megabytes, args.mss)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    else:
        result = run(args.megabytes, args.mss)
    print(
        f"MSS {args.mss}: {result['segments']} segments (data + ACKs) "
        f"in {result['seconds']:.2f} s = "
        f"{result['segments_per_second']:,.0f} segments/s through both layers, "
        f"{result['megabits_per_second']:,.0f} Mbit/s of payload"
    )


if __name__ == "__main__":
    main()

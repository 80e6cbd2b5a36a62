"""Segments per second through two TCP layers in memory (no I/O, no simulator).

A bulk transfer from layer A to layer B; segments are handed straight from one
layer's emit to the other's receive_segment (checksums are computed on send and
not verified, as on a TUN with offloads), with one flush per delivered batch.
``--echo N`` measures instead 1-byte request/response transactions on N
connections (the per-segment cost of small exchanges, with partial checksums as
on an offloading TUN).

    python benchmarks/core_segments.py [--megabytes 50] [--mss 1460] [--profile]
    python benchmarks/core_segments.py --echo 100 [--transactions 200000]
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
from aionetstack.core.tcp import TcpAccepted, TcpConnected, TcpLayer, TcpReadable

A = bytes([198, 18, 0, 1])
B = bytes([198, 18, 0, 2])


class _Side:
    """One TCP layer of a pair: what it emits goes to ``wire``, its events to ``events``."""

    def __init__(self, config: TcpConfig, seed: int, mss: int) -> None:
        self.wire: list[bytes] = []
        self.events: collections.deque[object] = collections.deque()
        self.layer = TcpLayer(config, random.Random(seed),
                              output=lambda s, d, seg, *_: self.wire.append(seg),
                              events=self.events, mss_for=lambda _: mss)  # fmt: skip


def run(megabytes: int, mss: int) -> dict[str, float]:
    total = megabytes * 1_000_000
    config = TcpConfig(send_buffer=4 << 20, receive_buffer=4 << 20)
    a, b = _Side(config, 1, mss), _Side(config, 2, mss)
    layer_a, wire_ab, events_a = a.layer, a.wire, a.events
    layer_b, wire_ba, events_b = b.layer, b.wire, b.events
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


def echo(connections: int, transactions: int) -> dict[str, float]:
    """1-byte transactions: A writes, B echoes on readable, A writes again on readable."""
    a, b = _Side(TcpConfig(), 1, 1460), _Side(TcpConfig(), 2, 1460)
    layer_a, wire_ab, events_a = a.layer, a.wire, a.events
    layer_b, wire_ba, events_b = b.layer, b.wire, b.events
    layer_a.partial_checksums = layer_b.partial_checksums = True
    layer_b.listen(B, 5001)
    clients = [layer_a.connect(A, B, 5001, 0.0) for _ in range(connections)]
    for client in clients:
        client.set_nodelay(True)
    now = 0.0
    done = segments = 0
    started = time.perf_counter()

    def deliver(batch: list[bytes], layer: TcpLayer, source: bytes, destination: bytes) -> int:
        for segment in batch:
            layer.receive_segment(source, destination, memoryview(segment), now)
        return len(batch)

    while done < transactions:
        now += 0.00005
        layer_a.flush(now)
        batch, wire_ab[:] = list(wire_ab), []
        segments += deliver(batch, layer_b, A, B)
        while events_b:
            event = events_b.popleft()
            if isinstance(event, TcpAccepted):
                server = event.listener.accept()
                assert server is not None
                server.set_nodelay(True)
            elif isinstance(event, TcpReadable):
                event.connection.send(event.connection.receive())
        layer_b.flush(now)
        batch, wire_ba[:] = list(wire_ba), []
        segments += deliver(batch, layer_a, B, A)
        while events_a:
            event = events_a.popleft()
            if isinstance(event, TcpReadable):
                done += len(event.connection.receive())
                event.connection.send(b"x")
            elif isinstance(event, TcpConnected):
                event.connection.send(b"x")
        layer_a.handle_timer(now)
        layer_b.handle_timer(now)
    elapsed = time.perf_counter() - started
    return {"transactions_per_second": done / elapsed, "segments": segments, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--mss", type=int, default=1460)
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    parser.add_argument("--echo", type=int, default=0, metavar="N",
                        help="1-byte transactions on N connections instead of bulk")  # fmt: skip
    parser.add_argument("--transactions", type=int, default=200_000)
    args = parser.parse_args()
    if args.echo:
        best = max(
            (echo(args.echo, args.transactions) for _ in range(3)),
            key=lambda r: r["transactions_per_second"],
        )
        print(
            f"{args.echo} connections: {best['transactions_per_second']:,.0f} 1-byte "
            f"transactions/s through both layers ({best['segments']} segments, best of 3)"
        )
        return
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

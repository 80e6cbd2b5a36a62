"""A network simulator for TCP in virtual time.

Two hosts, each with its own :class:`TcpLayer`, joined by one path per
direction. A path models propagation delay, jitter, a bottleneck bandwidth with
a drop-tail queue, and seeded loss, duplication, reordering and corruption.
The simulation never sleeps: :meth:`Network.step` jumps ``now`` to the next
deadline among both layers' timers and both paths' deliveries. The receiving
side verifies the TCP checksum before ``receive_segment`` (as the IP layer does
in the real stack), so corrupted segments are caught and counted.
"""

from __future__ import annotations

import collections
import hashlib
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import TcpConfig
from ..core.tcp import (
    TcpAccepted,
    TcpClosed,
    TcpConnected,
    TcpEndpoint,
    TcpEofReceived,
    TcpLayer,
    TcpReadable,
    TcpWritable,
)
from ..wire.checksum import internet_checksum, pseudo_header_sum

__all__ = [
    "ADDRESS_A",
    "ADDRESS_B",
    "BulkTransfer",
    "Host",
    "Network",
    "PathProfile",
    "SimPath",
    "device_offload",
    "mathis_bound",
    "throughput_row",
    "throughput_table",
]

ADDRESS_A = bytes([198, 18, 1, 1])
ADDRESS_B = bytes([198, 18, 1, 2])
#: Bytes of IPv4 header counted against a path's bandwidth per segment.
_IP_OVERHEAD = 20


@dataclass(frozen=True, slots=True)
class PathProfile:
    """One direction of a path. Probabilities are per packet; times in seconds."""

    delay: float = 0.0
    jitter: float = 0.0
    #: Bottleneck rate in bytes per second (None: infinite).
    bandwidth: float | None = None
    #: Packets that may wait for the bottleneck before drop-tail.
    queue_limit: int = 1000
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    #: How long a reordered packet is held back (default: 1 ms plus the delay).
    reorder_delay: float | None = None
    corrupt: float = 0.0


@dataclass(slots=True)
class _Counters:
    submitted: int = 0
    lost: int = 0
    queue_drops: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    delivered: int = 0


class SimPath:
    """One direction: submit(packet, now) then release(now) when next_release() is due."""

    def __init__(self, profile: PathProfile, rng: random.Random) -> None:
        self.profile = profile
        self._rng = rng
        self._heap: list[tuple[float, int, bytes, bytes, bytes]] = []
        self._counter = 0
        self._tx_free_at = 0.0
        self._departures: collections.deque[float] = collections.deque()
        self.counters = _Counters()

    def submit(self, source: bytes, destination: bytes, segment: bytes, now: float) -> None:
        profile = self.profile
        rng = self._rng
        counters = self.counters
        counters.submitted += 1
        if profile.loss and rng.random() < profile.loss:
            counters.lost += 1
            return
        departure = now
        if profile.bandwidth is not None:
            departures = self._departures
            while departures and departures[0] <= now:
                departures.popleft()
            if len(departures) >= profile.queue_limit:
                counters.queue_drops += 1
                return
            departure = (
                max(now, self._tx_free_at) + (len(segment) + _IP_OVERHEAD) / profile.bandwidth
            )
            self._tx_free_at = departure
            departures.append(departure)
        arrival = departure + profile.delay
        if profile.jitter:
            arrival += profile.jitter * rng.random()
        if profile.reorder and rng.random() < profile.reorder:
            counters.reordered += 1
            hold = (
                profile.reorder_delay
                if profile.reorder_delay is not None
                else profile.delay + 0.001
            )
            arrival += hold
        if profile.corrupt and rng.random() < profile.corrupt:
            counters.corrupted += 1
            damaged = bytearray(segment)
            bit = rng.randrange(len(damaged) * 8)
            damaged[bit // 8] ^= 1 << (bit % 8)
            segment = bytes(damaged)
        self._push(arrival, source, destination, segment)
        if profile.duplicate and rng.random() < profile.duplicate:
            counters.duplicated += 1
            self._push(arrival + 1e-6, source, destination, segment)

    def _push(self, arrival: float, source: bytes, destination: bytes, segment: bytes) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (arrival, self._counter, source, destination, segment))

    def next_release(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def release(self, now: float) -> list[tuple[bytes, bytes, bytes]]:
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, source, destination, segment = heapq.heappop(heap)
            out.append((source, destination, segment))
        self.counters.delivered += len(out)
        return out


@dataclass(slots=True)
class Host:
    """One end: an address, its TCP layer and its event queue; ``handler`` gets the events."""

    address: bytes
    layer: TcpLayer
    events: collections.deque[object]
    handler: Callable[[object], None] | None = None
    checksum_drops: int = 0
    log: list[tuple[float, bytes]] = field(default_factory=list)


def device_offload(
    source: bytes, destination: bytes, segment: bytes, segment_size: int
) -> list[bytes]:
    """What a NIC/TUN does with a CHECKSUM_PARTIAL (and TSO) segment: cut it into
    ``segment_size`` payload pieces (0: don't cut) and complete every checksum."""
    header_length = (segment[12] >> 4) * 4
    header, payload = segment[:header_length], segment[header_length:]
    if segment_size <= 0 or len(payload) <= segment_size:
        chunks = [payload]
    else:
        chunks = [payload[i : i + segment_size] for i in range(0, len(payload), segment_size)]
    seq = int.from_bytes(header[4:8], "big")
    flags = header[13]
    out = []
    for index, chunk in enumerate(chunks):
        piece = bytearray(header)
        piece[4:8] = ((seq + index * segment_size) & 0xFFFFFFFF).to_bytes(4, "big")
        if index < len(chunks) - 1:
            piece[13] = flags & ~0x09  # FIN and PSH only on the last piece
        piece[16:18] = b"\x00\x00"
        piece += chunk
        checksum = internet_checksum(piece, pseudo_header_sum(source, destination, 6, len(piece)))
        piece[16:18] = checksum.to_bytes(2, "big")
        out.append(bytes(piece))
    return out


class Network:
    """Two hosts joined by a forward (A to B) and a backward (B to A) path."""

    def __init__(
        self,
        forward: PathProfile | None = None,
        backward: PathProfile | None = None,
        *,
        config_a: TcpConfig | None = None,
        config_b: TcpConfig | None = None,
        seed: int = 0,
        mtu: int = 1500,
        record: bool = False,
        addresses: tuple[bytes, bytes] = (ADDRESS_A, ADDRESS_B),
        tso: int = 0,
    ) -> None:
        self.now = 0.0
        self.seed = seed
        self.record = record
        forward = forward or PathProfile()
        self.paths = {
            addresses[1]: SimPath(forward, random.Random(f"{seed}-forward")),
            addresses[0]: SimPath(backward or forward, random.Random(f"{seed}-backward")),
        }
        mss = mtu - (40 if len(addresses[0]) == 4 else 60)  # RFC 6691: MTU less IP and TCP headers
        self.a = self._host(addresses[0], config_a, random.Random(f"{seed}-a"), mss)
        self.b = self._host(addresses[1], config_b, random.Random(f"{seed}-b"), mss)
        if tso:
            # Both ends send TSO super-segments of up to ``tso`` payload bytes, cut by the "device".
            for host in (self.a, self.b):
                host.layer.max_segment_payload = tso
                host.layer.partial_checksums = True
        self.steps = 0

    def _host(self, address: bytes, config: TcpConfig | None, rng: random.Random, mss: int) -> Host:
        events: collections.deque[object] = collections.deque()
        host = Host(address, None, events)  # type: ignore[arg-type]

        def emit(
            source: bytes,
            destination: bytes,
            segment: bytes,
            segment_size: int = -1,
            tail: tuple[bytes | memoryview, ...] = (),
        ) -> None:
            if tail:  # the payload as the send buffer's views (a TUN gathers them: writev)
                segment = b"".join((segment, *tail))
            pieces = (
                [segment]
                if segment_size < 0
                else device_offload(source, destination, segment, segment_size)
            )
            for piece in pieces:
                if self.record:
                    host.log.append((self.now, piece))
                self.paths[destination].submit(source, destination, piece, self.now)

        host.layer = TcpLayer(
            config or TcpConfig(), rng, output=emit, events=events, mss_for=lambda _: mss
        )
        return host

    @property
    def hosts(self) -> tuple[Host, Host]:
        return (self.a, self.b)

    def next_deadline(self) -> float | None:
        candidates = [
            t
            for t in (
                self.a.layer.get_timer(),
                self.b.layer.get_timer(),
                self.paths[self.a.address].next_release(),
                self.paths[self.b.address].next_release(),
            )
            if t is not None
        ]
        return min(candidates) if candidates else None

    def step(self) -> bool:
        """Advance to the next deadline and process it. False when nothing is left to do."""
        self.settle()  # whatever the application did since the last step goes out now
        deadline = self.next_deadline()
        if deadline is None:
            return False
        self.now = max(self.now, deadline)
        now = self.now
        self.steps += 1
        for host in self.hosts:
            for source, destination, segment in self.paths[host.address].release(now):
                initial = pseudo_header_sum(source, destination, 6, len(segment))
                if internet_checksum(segment, initial) != 0:
                    host.checksum_drops += 1
                    continue
                host.layer.receive_segment(source, destination, memoryview(segment), now)
        for host in self.hosts:
            timer = host.layer.get_timer()
            if timer is not None and timer <= now:
                host.layer.handle_timer(now)
        self.settle()
        return True

    def settle(self) -> None:
        """Flush both layers and hand events to the handlers until both are quiet."""
        now = self.now
        for _ in range(1000):
            for host in self.hosts:
                host.layer.flush(now)
            busy = False
            for host in self.hosts:
                while host.events:
                    busy = True
                    event = host.events.popleft()
                    if host.handler is not None:
                        host.handler(event)
            if not busy:
                return

    def run(
        self, until: Callable[[], bool], *, max_time: float = 3600.0, max_steps: int = 10_000_000
    ) -> bool:
        """Step until ``until()`` is true; False if time, steps or work ran out first."""
        self.settle()
        for _ in range(max_steps):
            if until():
                return True
            if self.now > max_time or not self.step():
                return until()
        return until()


class BulkTransfer:
    """A sends ``size`` seeded random bytes to B, then closes; B reads, hashes, closes."""

    def __init__(
        self, network: Network, size: int, *, seed: int = 0, port: int = 5001, chunk: int = 65536
    ) -> None:
        self.network = network
        self.size = size
        self.data = random.Random(f"data-{seed}").randbytes(size)
        self.expected_digest = hashlib.sha256(self.data).digest()
        self.digest = hashlib.sha256()
        self.received = 0
        self.sent = 0
        self.chunk = chunk
        self.server_connection: TcpEndpoint | None = None
        self.client_closed: TcpClosed | None = None
        self.server_closed: TcpClosed | None = None
        self.eof = False
        self.mismatch_at: int | None = None
        self.listener = network.b.layer.listen(network.b.address, port)
        network.a.handler = self._client_event
        network.b.handler = self._server_event
        self.client = network.a.layer.connect(
            network.a.address, network.b.address, port, network.now
        )
        self.started_at = network.now
        self.finished_at: float | None = None
        self._pump()

    @property
    def done(self) -> bool:
        return self.client_closed is not None and self.server_closed is not None

    @property
    def ok(self) -> bool:
        return (
            self.done
            and self.received == self.size
            and self.digest.digest() == self.expected_digest
            and self.client_closed is not None
            and self.client_closed.error is None
            and self.server_closed is not None
            and self.server_closed.error is None
        )

    def goodput(self) -> float:
        """Bytes per second of virtual time from connect to the last byte read."""
        end = self.finished_at if self.finished_at is not None else self.network.now
        return self.received / max(end - self.started_at, 1e-9)

    def _pump(self) -> None:
        client = self.client
        view = memoryview(self.data)
        while self.sent < self.size:
            try:
                accepted = client.send(view[self.sent : self.sent + self.chunk])
            except BrokenPipeError:
                return
            if accepted == 0:
                return
            self.sent += accepted
        if self.sent == self.size:
            client.close()
            self.sent += 1  # close once

    def _client_event(self, event: object) -> None:
        if isinstance(event, (TcpConnected, TcpWritable)):
            self._pump()
        elif isinstance(event, TcpClosed):
            self.client_closed = event

    def _server_event(self, event: object) -> None:
        if isinstance(event, TcpAccepted):
            self.server_connection = event.listener.accept()
        elif isinstance(event, TcpReadable):
            data = event.connection.receive()
            if (
                self.mismatch_at is None
                and data != self.data[self.received : self.received + len(data)]
            ):
                self.mismatch_at = self.received
            self.digest.update(data)
            self.received += len(data)
            if self.received == self.size:
                self.finished_at = self.network.now
        elif isinstance(event, TcpEofReceived):
            self.eof = True
            event.connection.close()
        elif isinstance(event, TcpClosed):
            self.server_closed = event


# --- throughput table -------------------------------------------------------------------

#: The path of the throughput table: 10 MB/s bottleneck, 50 ms RTT, 1500-byte MTU.
TABLE_BANDWIDTH = 10_000_000.0
TABLE_RTT = 0.05
TABLE_LOSSES = (0.0, 0.001, 0.01, 0.05)
TABLE_SIZE = 4_000_000


def mathis_bound(mss: int, rtt: float, loss: float) -> float | None:
    """Mathis et al. 1997: goodput <= MSS/RTT * C/sqrt(p), C = sqrt(3/2) ~ 1.22."""
    if loss <= 0:
        return None
    return mss / rtt * 1.22 / math.sqrt(loss)


def throughput_row(
    congestion_control: str, loss: float, *, seed: int = 1, size: int = TABLE_SIZE
) -> dict[str, object]:
    """One transfer over the table's path with forward-path loss; deterministic for a seed."""
    config = TcpConfig(congestion_control=congestion_control)
    forward = PathProfile(
        delay=TABLE_RTT / 2, bandwidth=TABLE_BANDWIDTH, queue_limit=256, loss=loss
    )
    backward = PathProfile(delay=TABLE_RTT / 2)
    network = Network(forward, backward, config_a=config, config_b=config, seed=seed)
    transfer = BulkTransfer(network, size, seed=seed)
    network.run(lambda: transfer.done, max_time=100_000)
    mss = transfer.client.snd_mss
    goodput = transfer.goodput()
    bound = mathis_bound(mss, TABLE_RTT, loss)
    return {
        "congestion_control": congestion_control,
        "loss": loss,
        "ok": transfer.ok,
        "goodput_bytes_per_s": round(goodput),
        "capacity_fraction": round(goodput / TABLE_BANDWIDTH, 4),
        "mathis_bound_bytes_per_s": None if bound is None else round(bound),
        "mathis_fraction": None if bound is None else round(goodput / bound, 4),
        "retransmitted_segments": network.a.layer.statistics().get("segments_retransmitted", 0),
        "virtual_seconds": round(network.now, 3),
    }


def throughput_table() -> list[dict[str, object]]:
    """Goodput per loss rate for NewReno and CUBIC (the regression snapshot's content)."""
    return [throughput_row(cc, loss) for cc in ("newreno", "cubic") for loss in TABLE_LOSSES]

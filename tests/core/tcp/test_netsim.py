"""Transfers through the simulated network: byte-exact under loss, reordering, duplication,
corruption and delay, deterministic from their seeds; and the throughput snapshot."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from aionetstack.config import TcpConfig
from aionetstack.core.output import CallbackOutput
from aionetstack.testing.netsim import (
    ADDRESS_A,
    ADDRESS_B,
    BulkTransfer,
    Network,
    PathProfile,
    throughput_table,
)

LOSSES = (0.0, 0.01, 0.05, 0.2)
REORDERS = (0.0, 0.05)
DUPLICATES = (0.0, 0.01)
RTTS = (0.001, 0.05, 0.2)
MATRIX = list(itertools.product(LOSSES, REORDERS, DUPLICATES, RTTS))
SNAPSHOT = Path(__file__).parent / "snapshots" / "throughput.json"


def run_transfer(
    loss: float,
    reorder: float,
    duplicate: float,
    rtt: float,
    size: int,
    *,
    seed: int,
    congestion_control: str = "cubic",
) -> tuple[BulkTransfer, Network]:
    profile = PathProfile(
        delay=rtt / 2,
        bandwidth=12_500_000,
        queue_limit=512,
        loss=loss,
        duplicate=duplicate,
        reorder=reorder,
        reorder_delay=rtt / 4 + 0.0005,
    )
    config = TcpConfig(congestion_control=congestion_control)
    network = Network(profile, config_a=config, config_b=config, seed=seed)
    transfer = BulkTransfer(network, size, seed=seed)
    network.run(lambda: transfer.done, max_time=200_000)
    return transfer, network


def assert_exact(transfer: BulkTransfer, seed: int) -> None:
    assert transfer.mismatch_at is None, f"seed {seed}: first wrong byte at {transfer.mismatch_at}"
    assert transfer.received == transfer.size, (
        f"seed {seed}: {transfer.received} of {transfer.size}"
    )
    assert transfer.ok, f"seed {seed}: {transfer.client_closed} {transfer.server_closed}"


@pytest.mark.parametrize(("loss", "reorder", "duplicate", "rtt"), MATRIX)
def test_matrix_small(loss: float, reorder: float, duplicate: float, rtt: float) -> None:
    seed = MATRIX.index((loss, reorder, duplicate, rtt))
    transfer, _ = run_transfer(loss, reorder, duplicate, rtt, 150_000, seed=seed)
    assert_exact(transfer, seed)


@pytest.mark.slow
@pytest.mark.parametrize(("loss", "reorder", "duplicate", "rtt"), MATRIX)
def test_matrix_10mb(loss: float, reorder: float, duplicate: float, rtt: float) -> None:
    seed = 1000 + MATRIX.index((loss, reorder, duplicate, rtt))
    transfer, _ = run_transfer(loss, reorder, duplicate, rtt, 10_000_000, seed=seed)
    assert_exact(transfer, seed)


@pytest.mark.parametrize("congestion_control", ["newreno", "cubic"])
def test_one_megabyte_with_everything_at_once(congestion_control: str) -> None:
    transfer, network = run_transfer(
        0.05, 0.05, 0.01, 0.05, 1_000_000, seed=77, congestion_control=congestion_control
    )
    assert_exact(transfer, 77)
    counters = network.paths[ADDRESS_B].counters
    assert counters.lost > 0 and counters.reordered > 0 and counters.duplicated > 0


def test_corruption_is_caught_by_the_checksum() -> None:
    profile = PathProfile(delay=0.01, bandwidth=5_000_000, corrupt=0.05)
    network = Network(profile, seed=5)
    transfer = BulkTransfer(network, 500_000, seed=5)
    network.run(lambda: transfer.done, max_time=1000)
    assert_exact(transfer, 5)
    assert network.b.checksum_drops > 0 and network.a.checksum_drops > 0
    assert network.b.checksum_drops + network.a.checksum_drops == (
        network.paths[ADDRESS_B].counters.corrupted + network.paths[ADDRESS_A].counters.corrupted
    )


def test_simulation_is_deterministic() -> None:
    def fingerprint() -> tuple[float, int, dict[str, int]]:
        transfer, network = run_transfer(0.05, 0.05, 0.01, 0.05, 300_000, seed=9)
        assert_exact(transfer, 9)
        return network.now, network.steps, network.a.layer.statistics()

    assert fingerprint() == fingerprint()


def test_many_connections_share_the_timer_heap() -> None:
    network = Network(PathProfile(delay=0.005, loss=0.02), seed=11)
    listener = network.b.layer.listen(ADDRESS_B, 7)
    clients = [network.a.layer.connect(ADDRESS_A, ADDRESS_B, 7, 0.0) for _ in range(50)]
    payload = {id(c): bytes([i]) * (1000 + i) for i, c in enumerate(clients)}
    received: dict[int, bytearray] = {}
    servers = []

    def server_event(event: object) -> None:
        from aionetstack.core.tcp import TcpAccepted, TcpReadable

        if isinstance(event, TcpAccepted):
            connection = event.listener.accept()
            assert connection is not None
            servers.append(connection)
        elif isinstance(event, TcpReadable):
            received.setdefault(event.connection.remote_port, bytearray()).extend(
                event.connection.receive()
            )

    network.b.handler = server_event
    for client in clients:
        client.send(payload[id(client)])
    assert network.run(
        lambda: sum(len(v) for v in received.values()) == sum(map(len, payload.values())),
        max_time=600,
    )
    for client in clients:
        assert bytes(received[client.local_port]) == payload[id(client)]
    assert len({c.local_port for c in clients}) == 50
    assert listener.pending == 0


def test_throughput_snapshot() -> None:
    """Regenerate with: python tests/core/tcp/snapshots/regenerate.py"""
    expected = json.loads(SNAPSHOT.read_text())
    assert throughput_table() == expected


def test_throughput_is_sane() -> None:
    rows = json.loads(SNAPSHOT.read_text())
    for row in rows:
        assert row["ok"]
        assert 0 < row["capacity_fraction"] <= 1
        if row["mathis_fraction"] is not None:
            # NewReno within a factor of two of the Mathis model (a Reno model); CUBIC is
            # allowed to beat it (RFC 9438 §5: more aggressive at large BDP) but not lag it.
            assert row["mathis_fraction"] >= 0.5, row
            if row["congestion_control"] == "newreno":
                assert row["mathis_fraction"] <= 2.0, row


IPV6_A = bytes.fromhex("20010db8000000000000000000000001")
IPV6_B = bytes.fromhex("20010db8000000000000000000000002")


@pytest.mark.parametrize(
    ("name", "config", "mtu", "addresses"),
    [
        ("newreno-no-sack", TcpConfig(sack=False, congestion_control="newreno"), 1500, None),
        ("cubic-no-sack", TcpConfig(sack=False), 1500, None),
        ("no-timestamps", TcpConfig(timestamps=False), 1500, None),
        ("no-window-scaling", TcpConfig(window_scaling=False), 1500, None),
        ("nothing", TcpConfig(sack=False, timestamps=False, window_scaling=False), 1500, None),
        (
            "small-buffers",
            TcpConfig(send_buffer=4096, receive_buffer=4096, out_of_order_limit=4096),
            1500,
            None,
        ),
        ("jumbo-64k-segments", TcpConfig(), 65535, None),
        ("ipv6", TcpConfig(), 1500, (IPV6_A, IPV6_B)),
    ],
)
def test_option_combinations_under_loss(
    name: str, config: TcpConfig, mtu: int, addresses: tuple[bytes, bytes] | None
) -> None:
    profile = PathProfile(
        delay=0.01, bandwidth=50_000_000, loss=0.03, reorder=0.03, reorder_delay=0.004
    )
    extra = {"addresses": addresses} if addresses else {}
    network = Network(profile, config_a=config, config_b=config, seed=21, mtu=mtu, **extra)
    transfer = BulkTransfer(network, 600_000, seed=21)
    network.run(lambda: transfer.done, max_time=5000)
    assert_exact(transfer, 21)
    if mtu > 9000:
        assert transfer.client.snd_mss > 60_000
    if addresses:
        assert transfer.client.snd_mss == 1500 - 60 - 12


def test_sack_recovery_beats_newreno_without_sack() -> None:
    """With several losses per window, SACK recovery (RFC 6675) needs fewer timeouts."""

    def timeouts(sack: bool) -> int:
        config = TcpConfig(sack=sack, congestion_control="newreno")
        profile = PathProfile(delay=0.025, bandwidth=10_000_000, loss=0.03)
        network = Network(
            profile, PathProfile(delay=0.025), config_a=config, config_b=config, seed=4
        )
        transfer = BulkTransfer(network, 2_000_000, seed=4)
        network.run(lambda: transfer.done, max_time=5000)
        assert_exact(transfer, 4)
        return network.a.layer.statistics().get("retransmission_timeouts", 0)

    assert timeouts(sack=True) < timeouts(sack=False)


@pytest.mark.parametrize("loss", [0.0, 0.02])
def test_tso_super_segments_cut_by_the_device(loss: float) -> None:
    """With max_segment_payload the sender emits super-segments (partial checksums) that
    the simulated device cuts into MSS pieces; the transfer stays byte-exact."""
    profile = PathProfile(delay=0.005, bandwidth=100_000_000, loss=loss, queue_limit=2000)
    network = Network(profile, seed=31, tso=65_000, record=True)
    emitted_sizes: list[int] = []
    inner = network.a.layer.output

    def spy(
        source: bytes,
        destination: bytes,
        segment: bytes,
        segment_size: int = -1,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        emitted_sizes.append(len(segment) + sum(len(piece) for piece in tail))
        inner.emit(source, destination, segment, segment_size, tail)

    network.a.layer.output = CallbackOutput(spy)
    transfer = BulkTransfer(network, 3_000_000, seed=31)
    network.run(lambda: transfer.done, max_time=1000)
    assert_exact(transfer, 31)
    assert max(emitted_sizes) > 4 * 1448  # super-segments left the layer
    assert max(len(piece) for _, piece in network.a.log) <= 1500 - 20  # the wire saw MSS pieces


def test_hystart_leaves_slow_start_before_the_queue_overflows() -> None:
    """RFC 9406: with HyStart++ the rising RTT ends slow start without self-inflicted loss;
    without it, slow start overflows the bottleneck queue."""

    def retransmissions(hystart: bool) -> int:
        config = TcpConfig(hystart=hystart)
        profile = PathProfile(delay=0.025, bandwidth=10_000_000, queue_limit=256)
        network = Network(
            profile, PathProfile(delay=0.025), config_a=config, config_b=config, seed=2
        )
        transfer = BulkTransfer(network, 4_000_000, seed=2)
        network.run(lambda: transfer.done, max_time=1000)
        assert_exact(transfer, 2)
        return network.a.layer.statistics().get("segments_retransmitted", 0)

    assert retransmissions(hystart=True) == 0
    assert retransmissions(hystart=False) > 50

"""pcap capture: files dpkt and tshark read back, and a link wrapper that records both ways."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import dpkt
import pytest

from aionetstack.link.base import Link
from aionetstack.link.memory import MemoryLink
from aionetstack.link.pcap import LINKTYPE_RAW, CapturingLink, PcapWriter
from aionetstack.wire.icmpv4 import build_echo
from aionetstack.wire.ipv4 import PROTO_ICMP, IPv4Header, build_ipv4

NEAR = bytes([198, 18, 0, 2])
FAR = bytes([198, 18, 0, 1])


def echo(source: bytes, destination: bytes, *, reply: bool, sequence: int) -> bytes:
    icmp = build_echo(reply=reply, identifier=0x1234, sequence=sequence, payload=b"abcdefgh")
    return build_ipv4(IPv4Header(source=source, destination=destination, protocol=PROTO_ICMP), icmp)


def read_pcap(path: Path) -> tuple[int, list[tuple[float, bytes]]]:
    with path.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        return reader.datalink(), [(ts, bytes(buf)) for ts, buf in reader]


def test_writer_round_trip_through_dpkt(tmp_path: Path) -> None:
    path = tmp_path / "trace.pcap"
    packets = [echo(NEAR, FAR, reply=False, sequence=n) for n in range(3)]
    with PcapWriter(path) as writer:
        for n, data in enumerate(packets):
            writer.write(data, 1_700_000_000.25 + n)
        assert writer.packets_written == 3
    linktype, records = read_pcap(path)
    assert linktype == LINKTYPE_RAW == 101
    assert [data for _, data in records] == packets
    assert [ts for ts, _ in records] == pytest.approx(
        [1_700_000_000.25, 1_700_000_001.25, 1_700_000_002.25], abs=1e-6
    )
    first = dpkt.ip.IP(records[0][1])
    assert first.src == NEAR and first.dst == FAR
    assert isinstance(first.data, dpkt.icmp.ICMP) and first.data.type == 8


def test_a_timestamp_just_below_a_second_rolls_over_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "edge.pcap"
    with PcapWriter(path) as writer:
        writer.write(echo(NEAR, FAR, reply=False, sequence=0), 41.9999999)
    _, records = read_pcap(path)
    assert records[0][0] == pytest.approx(42.0, abs=1e-6)
    raw = path.read_bytes()
    assert int.from_bytes(raw[24 + 4 : 24 + 8], "little") == 0  # microseconds field


def test_writer_accepts_a_binary_file_and_refuses_other_things() -> None:
    buffer = io.BytesIO()
    writer = PcapWriter(buffer)
    writer.write(b"\x45" + bytes(19), 1.0)
    writer.flush()
    assert len(buffer.getvalue()) == 24 + 16 + 20
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"\x45" + bytes(19), 2.0)
    with pytest.raises(TypeError, match="path or a binary file"):
        PcapWriter(42)  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tshark.pcap"
    with PcapWriter(path) as writer:
        writer.write(echo(NEAR, FAR, reply=False, sequence=1), 100.0)
        writer.write(echo(FAR, NEAR, reply=True, sequence=1), 100.001)
    result = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "ip.src", "-e", "icmp.type"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert lines == [["198.18.0.2", "8"], ["198.18.0.1", "0"]]


def test_capturing_link_records_both_directions(tmp_path: Path) -> None:
    path = tmp_path / "link.pcap"
    a, b = MemoryLink.pair()
    captured = CapturingLink(a, str(path), time_offset=1000.0)
    assert isinstance(captured, Link)
    assert captured.mtu == a.mtu
    assert captured.receive_checksums_partial is a.receive_checksums_partial
    assert (captured.transmit_offload, captured.max_packet_size) == (
        a.transmit_offload,
        a.max_packet_size,
    )
    assert captured.fileno() == a.fileno()
    request = echo(NEAR, FAR, reply=False, sequence=7)
    reply = echo(FAR, NEAR, reply=True, sequence=7)
    captured.send(request, 1.5)
    assert b.receive_batch(10, 1.5) == [request]
    b.send(reply, 1.75)
    assert captured.receive_batch(10, 2.0) == [reply]
    assert captured.get_timer() is None
    stats = captured.statistics()
    assert stats["captured_packets"] == 2
    assert stats["sent_packets"] == 1
    captured.close()
    assert a.closed
    _, records = read_pcap(path)
    assert records == [(1001.5, request), (1002.0, reply)]
    b.close()


def test_capturing_link_writes_into_a_given_writer_and_checks_its_link(tmp_path: Path) -> None:
    writer = PcapWriter(tmp_path / "given.pcap")
    a, b = MemoryLink.pair()
    captured = CapturingLink(a, writer)
    assert captured.writer is writer
    captured.close()
    b.close()
    with pytest.raises(TypeError, match="Link"):
        CapturingLink(object(), writer)  # type: ignore[arg-type]

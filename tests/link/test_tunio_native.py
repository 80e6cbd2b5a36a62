"""The TUN's per-packet read and write in C (``link/_tunio.c``) against their Python
twins (``link/tun_io.py``), over non-blocking pipes: the same counts, bytes and
errors; an empty queue is ``None`` for both, never an exception."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.link import tun_io
from aionetstack.link.tun_io import (
    read_packet_python,
    write_offloaded_python,
    write_packet_python,
)
from aionetstack.wire.ipv4 import IPv4Header, build_ipv4
from aionetstack.wire.ipv6 import IPv6Header, build_ipv6
from aionetstack.wire.tcp import ACK, build_tcp
from aionetstack.wire.udp import build_udp
from aionetstack.wire.vnet import (
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VNET_HEADER_LENGTH,
    VnetHeader,
    parse_vnet_header,
)

needs_c = pytest.mark.skipif(not tun_io.ACCELERATED, reason="link/_tunio.c was not built")

Reader = Callable[[int, bytearray | memoryview], int | None]
Writer = Callable[..., int]
READERS: list[Reader] = [read_packet_python]
WRITERS: list[Writer] = [write_packet_python]
OFFLOADED_WRITERS: list[Writer] = [write_offloaded_python]
if tun_io.ACCELERATED:
    from aionetstack.link import _tunio

    READERS.append(_tunio.read_packet)
    WRITERS.append(_tunio.write_packet)
    OFFLOADED_WRITERS.append(_tunio.write_offloaded)


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    yield read_end, write_end
    os.close(read_end)
    os.close(write_end)


@pytest.mark.parametrize("read", READERS)
def test_an_empty_queue_reads_as_none(read: Reader, pipe: tuple[int, int]) -> None:
    assert read(pipe[0], bytearray(64)) is None


@pytest.mark.parametrize("read", READERS)
def test_a_read_fills_the_buffer_and_counts(read: Reader, pipe: tuple[int, int]) -> None:
    os.write(pipe[1], b"packet bytes")
    buffer = bytearray(64)
    assert read(pipe[0], memoryview(buffer)) == 12
    assert buffer[:12] == b"packet bytes"
    assert read(pipe[0], buffer) is None


@pytest.mark.parametrize("read", READERS)
def test_a_read_of_a_closed_writer_is_zero(read: Reader, pipe: tuple[int, int]) -> None:
    read_end, write_end = os.pipe()
    os.close(write_end)
    try:
        assert read(read_end, bytearray(8)) == 0
    finally:
        os.close(read_end)


@pytest.mark.parametrize("read", READERS)
def test_a_bad_fd_raises_oserror_with_its_errno(read: Reader) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    with pytest.raises(OSError) as raised:
        read(read_end, bytearray(8))
    assert raised.value.errno == errno.EBADF


@pytest.mark.parametrize("read", READERS)
def test_a_read_only_buffer_is_refused(read: Reader, pipe: tuple[int, int]) -> None:
    os.write(pipe[1], b"x")
    with pytest.raises(BufferError, match="not writable"):
        read(pipe[0], b"read-only")  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    head=st.none() | st.binary(max_size=12),
    packet=st.binary(min_size=1, max_size=200),
    tail=st.lists(st.binary(max_size=300), max_size=6),
    as_views=st.booleans(),
)
def test_a_write_gathers_head_packet_and_tail_in_order(
    head: bytes | None, packet: bytes, tail: list[bytes], as_views: bool
) -> None:
    parts = tuple(memoryview(part) if as_views else part for part in tail)
    for write in WRITERS:
        read_end, write_end = os.pipe()
        try:
            written = write(write_end, head, packet, parts)
            assert written == len(packet) + sum(len(part) for part in tail)
            expected = (head or b"") + packet + b"".join(tail)
            assert os.read(read_end, len(expected) + 1) == expected
        finally:
            os.close(read_end)
            os.close(write_end)


@pytest.mark.parametrize("write", WRITERS)
def test_a_full_queue_raises_blocking_io_error(write: Writer, pipe: tuple[int, int]) -> None:
    chunk = bytes(65536)
    with pytest.raises(BlockingIOError):
        for _ in range(64):  # a pipe holds 64 KiB by default: bounded either way
            write(pipe[1], None, chunk, ())


@pytest.mark.parametrize("write", WRITERS)
def test_many_buffers_are_gathered_past_the_kernels_limit_refused(
    write: Writer, pipe: tuple[int, int]
) -> None:
    """A segment may span many of the send buffer's chunks: 300 parts go out as one
    write (the C function allocates past its 64 local slots); past IOV_MAX (1024) the
    kernel refuses, EINVAL, for both; a list is not a tuple."""
    parts = tuple(bytes([index % 256]) for index in range(300))
    assert write(pipe[1], b"h", b"p", parts) == 1 + 300
    assert os.read(pipe[0], 400) == b"h" + b"p" + b"".join(parts)
    with pytest.raises(OSError) as raised:
        write(pipe[1], None, b"p", (b"t",) * 1100)
    assert raised.value.errno == errno.EINVAL
    with pytest.raises(TypeError, match="tuple"):
        write(pipe[1], None, b"p", [b"t"])


V4_SOURCE, V4_DESTINATION = bytes([198, 18, 0, 2]), bytes([198, 18, 0, 1])
V6_SOURCE = bytes.fromhex("20010002" + "00" * 11 + "02")
V6_DESTINATION = bytes.fromhex("20010002" + "00" * 11 + "01")
ETHERNET = bytes(range(14))


def _tcp_packet(version: int, options: bytes = b"") -> bytes:
    """An IP packet's headers: IPv4 or IPv6, then a TCP header with ``options``."""
    source, destination = (
        (V4_SOURCE, V4_DESTINATION) if version == 4 else (V6_SOURCE, V6_DESTINATION)
    )
    segment = build_tcp(
        40000, 80, 1, 2, ACK, 65535, options=options, source=source, destination=destination
    )
    if version == 4:
        return build_ipv4(IPv4Header(source, destination, 6), segment)
    return build_ipv6(IPv6Header(source, destination, 6), segment)


def _written_header(write: Writer, *args: object) -> tuple[int, VnetHeader, bytes]:
    """Call ``write`` on a pipe: (its count, the virtio_net_hdr and the bytes after it)."""
    read_end, write_end = os.pipe()
    try:
        count = write(write_end, *args)
        written = os.read(read_end, 70000)
    finally:
        os.close(read_end)
        os.close(write_end)
    return count, parse_vnet_header(written[:VNET_HEADER_LENGTH]), written[VNET_HEADER_LENGTH:]


@pytest.mark.parametrize("write", OFFLOADED_WRITERS)
@pytest.mark.parametrize(
    ("version", "link_header", "segment_size", "gso_type"),
    [
        (4, 0, 0, VIRTIO_NET_HDR_GSO_NONE),
        (4, 0, 1448, VIRTIO_NET_HDR_GSO_TCPV4),
        (6, 0, 1428, VIRTIO_NET_HDR_GSO_TCPV6),
        (4, 14, 1448, VIRTIO_NET_HDR_GSO_TCPV4),  # a TAP frame: offsets past Ethernet
        (6, 14, 0, VIRTIO_NET_HDR_GSO_NONE),
    ],
)
def test_an_offloaded_tcp_write_asks_the_kernel_to_complete_and_cut_it(
    write: Writer, version: int, link_header: int, segment_size: int, gso_type: int
) -> None:
    """The header (virtio spec 1.2 §5.1.6): the checksum from the TCP header's start at
    offset 16; with a segment size, the TSO type of the IP version and the length of
    every header (link, IP, TCP with its 12 option bytes) before the payload."""
    packet = (ETHERNET[:link_header]) + _tcp_packet(version, options=bytes(12))
    ip_header = 20 if version == 4 else 40
    payload = (b"payload", memoryview(b"views"))
    count, header, rest = _written_header(write, packet, segment_size, payload, link_header)
    assert count == len(packet) + 12 and rest == packet + b"payloadviews"
    assert header == VnetHeader(
        VIRTIO_NET_HDR_F_NEEDS_CSUM, gso_type,
        link_header + ip_header + 32 if segment_size else 0, segment_size,
        link_header + ip_header, 16,
    )  # fmt: skip


@pytest.mark.parametrize("write", OFFLOADED_WRITERS)
def test_an_offloaded_udp_write_completes_its_checksum_only(write: Writer) -> None:
    datagram = build_udp(5353, 53, b"query", V4_SOURCE, V4_DESTINATION)
    packet = build_ipv4(IPv4Header(V4_SOURCE, V4_DESTINATION, 17), datagram)
    count, header, rest = _written_header(write, packet, 0, (), 0)
    assert (count, rest) == (len(packet), packet)
    assert header == VnetHeader(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE, 0, 0, 20, 6)


@pytest.mark.parametrize("write", OFFLOADED_WRITERS)
@pytest.mark.parametrize(
    ("packet", "segment_size", "link_header"),
    [
        (b"", 0, 0),  # empty
        (b"\x20" + bytes(39), 0, 0),  # IP version 2
        (build_ipv4(IPv4Header(V4_SOURCE, V4_DESTINATION, 1), b"\x08\x00icmp"), 0, 0),
        (build_ipv4(IPv4Header(V4_SOURCE, V4_DESTINATION, 17), bytes(8)), 1000, 0),  # UDP cut
        (_tcp_packet(4)[:30], 0, 0),  # ends inside the TCP header
        (_tcp_packet(4), 70000, 0),  # no such segment size
        (_tcp_packet(4), 0, 256),  # no such link header
        (ETHERNET, 0, 14),  # a frame with no packet
    ],
)
def test_a_packet_the_device_cannot_complete_is_refused_and_nothing_written(
    write: Writer, pipe: tuple[int, int], packet: bytes, segment_size: int, link_header: int
) -> None:
    with pytest.raises(ValueError):
        write(pipe[1], packet, segment_size, (), link_header)
    assert tun_io.read_packet(pipe[0], bytearray(64)) is None


@needs_c
@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    packet=st.binary(max_size=80),
    segment_size=st.sampled_from([0, 1, 1448, 65535]),
    link_header=st.sampled_from([0, 14]),
)
def test_the_c_offloaded_write_equals_the_python_one_on_arbitrary_bytes(
    packet: bytes, segment_size: int, link_header: int
) -> None:
    """Whatever the bytes: the same header and count, or ValueError from both."""
    outcomes = []
    for write in OFFLOADED_WRITERS:
        try:
            outcomes.append(_written_header(write, packet, segment_size, (b"tail",), link_header))
        except ValueError:
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]


@needs_c
def test_the_c_functions_are_the_ones_in_use() -> None:
    assert tun_io.read_packet is _tunio.read_packet
    assert tun_io.write_packet is _tunio.write_packet
    assert tun_io.write_offloaded is _tunio.write_offloaded


def test_the_c_module_was_built_where_required() -> None:
    """CI (AIONETSTACK_REQUIRE_ACCEL=1) has a compiler: a silent fallback is a failure."""
    if not os.environ.get("AIONETSTACK_REQUIRE_ACCEL"):
        pytest.skip("AIONETSTACK_REQUIRE_ACCEL is not set")
    assert tun_io.ACCELERATED, "link/_tunio.c was not built: is a C compiler installed?"

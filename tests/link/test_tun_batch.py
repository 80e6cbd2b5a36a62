"""How much one ``TunPath.receive_batch`` reads (link/tun_path.py): at most ``limit``
packets and about ``_BATCH_BYTES`` of data, the rest left for the next batch.

The device here is a pipe: TunPath only ``read``s its fd, and a pipe holding more than a
buffer's worth answers each read with one full buffer, as a TUN answers it with one
packet. No namespace is needed: nothing is sent anywhere.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator

import pytest

from aionetstack.link.receive_pool import ReceivePool
from aionetstack.link.tun_path import _BATCH_BYTES, TunPath

PACKET = 65536  # one offloaded super-packet's size: lent, not copied
QUEUED = _BATCH_BYTES // PACKET + 3  # more than a batch's bytes, within pipe-max-size


class _PipePath(TunPath):
    """TunPath's reads over a non-blocking pipe's read end (no virtio_net_hdr)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._closed = False
        self._skip = 0
        self.name = "pipe"
        self._pool = ReceivePool(PACKET)
        self.received_packets = 0
        self.received_bytes = 0
        self.received_runts = 0
        self.receive_errors = 0


@pytest.fixture
def queued() -> Iterator[_PipePath]:
    """A path whose device holds ``QUEUED`` full-sized packets, each of one repeated byte."""
    read_end, write_end = os.pipe2(os.O_NONBLOCK)
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, QUEUED * PACKET)
    except OSError:
        pytest.skip("this system's pipe-max-size is below the queue this test needs")
    try:
        for index in range(QUEUED):
            assert os.write(write_end, bytes([index]) * PACKET) == PACKET
        yield _PipePath(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_batch_of_large_packets_ends_at_its_byte_budget(queued: _PipePath) -> None:
    first = queued.receive_batch(256, 0.0)
    assert len(first) == _BATCH_BYTES // PACKET  # the packet limit (256) is far away
    assert [packet[0] for packet in first] == list(range(len(first)))
    rest = queued.receive_batch(256, 0.0)
    assert len(rest) == QUEUED - len(first)  # what is left, then the queue is empty
    assert queued.receive_batch(256, 0.0) == []
    assert [bytes(packet[:1]) for packet in (*first, *rest)] == [
        bytes([index]) for index in range(QUEUED)
    ]  # nothing lost or reordered across batches
    assert queued.received_bytes == QUEUED * PACKET


def test_the_packet_limit_still_ends_a_batch(queued: _PipePath) -> None:
    assert len(queued.receive_batch(3, 0.0)) == 3
    assert len(queued.receive_batch(2, 0.0)) == 2
    assert len(queued.receive_batch(256, 0.0)) == QUEUED - 5

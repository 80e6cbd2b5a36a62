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
from aionetstack.link.tun_io import read_packet_python, write_packet_python

needs_c = pytest.mark.skipif(not tun_io.ACCELERATED, reason="link/_tunio.c was not built")

Reader = Callable[[int, bytearray | memoryview], int | None]
Writer = Callable[..., int]
READERS: list[Reader] = [read_packet_python]
WRITERS: list[Writer] = [write_packet_python]
if tun_io.ACCELERATED:
    from aionetstack.link import _tunio

    READERS.append(_tunio.read_packet)
    WRITERS.append(_tunio.write_packet)


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


@needs_c
def test_the_c_functions_are_the_ones_in_use() -> None:
    assert tun_io.read_packet is _tunio.read_packet
    assert tun_io.write_packet is _tunio.write_packet


def test_the_c_module_was_built_where_required() -> None:
    """CI (AIONETSTACK_REQUIRE_ACCEL=1) has a compiler: a silent fallback is a failure."""
    if not os.environ.get("AIONETSTACK_REQUIRE_ACCEL"):
        pytest.skip("AIONETSTACK_REQUIRE_ACCEL is not set")
    assert tun_io.ACCELERATED, "link/_tunio.c was not built: is a C compiler installed?"

"""ReceiveBuffer: a chunk FIFO that reads out exactly the bytes appended, in order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aionetstack.core.tcp.receive_buffer import SMALL_CHUNK, ReceiveBuffer
from aionetstack.testing.segments import LOCAL, REMOTE, ScriptedPeer, make_segment
from aionetstack.wire.tcp import ACK

# Small chunks go into the bytearray tail, large ones (>= SMALL_CHUNK) are kept as given.
_chunks = st.lists(
    st.one_of(st.binary(max_size=40), st.binary(min_size=SMALL_CHUNK, max_size=SMALL_CHUNK + 40)),
    max_size=12,
)
_reads = st.lists(
    st.tuples(
        st.sampled_from(["take", "into", "chunks", "whole"]),
        st.integers(min_value=-1, max_value=SMALL_CHUNK + 90),
    ),
    max_size=12,
)


@given(_chunks, _reads)
def test_reads_return_the_appended_bytes_in_order(
    chunks: list[bytes], reads: list[tuple[str, int]]
) -> None:
    buffer = ReceiveBuffer()
    expected = bytearray()
    for index, chunk in enumerate(chunks):
        # Alternate the shapes the connection appends: bytes, views of bytes, bytearrays.
        shaped = (chunk, memoryview(b"xx" + chunk)[2:], bytearray(chunk))[index % 3]
        buffer.append(shaped)
        expected += chunk
    got = bytearray()
    for how, size in reads:
        if how == "chunks":
            taken = buffer.take_chunks(size)
            data = b"".join(taken)
            assert all(taken)
            assert len(data) == (
                len(expected) - len(got) if size < 0 else min(size, len(expected) - len(got))
            )
            got += data
        elif how == "whole":
            left = len(expected) - len(got)
            taken = buffer.take_whole_chunks(size)
            data = b"".join(taken)
            assert all(taken)
            if size < 0 or size >= left:
                assert len(data) == left
            elif size == 0:
                assert taken == []
            else:  # whole chunks until there is enough: the last one was needed
                assert len(data) >= size and len(data) - len(taken[-1]) < size
            got += data
        elif how == "into":
            target = bytearray(max(size, 0))
            count = buffer.take_into(target)
            assert count == min(len(target), len(expected) - len(got))
            got += target[:count]
        else:
            data = buffer.take(size)
            assert isinstance(data, bytes)
            assert len(data) == (
                len(expected) - len(got) if size < 0 else min(size, len(expected) - len(got))
            )
            got += data
        assert len(buffer) == buffer.size == len(expected) - len(got)
    got += buffer.take()
    assert got == expected
    assert not buffer and buffer.take() == b"" and buffer.take_into(bytearray(4)) == 0


def test_chunks_taken_are_not_changed_by_later_appends() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"ab")  # small: gathered in the bytearray tail
    taken = buffer.take_chunks(-1)
    buffer.append(b"cd")
    assert b"".join(taken) == b"ab"
    assert buffer.take() == b"cd"


def test_take_all_of_one_bytes_chunk_hands_it_over_without_copying() -> None:
    buffer = ReceiveBuffer()
    chunk = b"payload" * 100
    buffer.append(chunk)
    assert buffer.take() is chunk


def test_empty_chunks_are_not_kept() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"")
    buffer.append(memoryview(b"abc")[3:])
    assert buffer.size == 0 and not buffer
    assert buffer._chunks is None  # an idle buffer holds no list


def test_a_flood_of_tiny_chunks_is_gathered_not_kept_one_by_one() -> None:
    buffer = ReceiveBuffer()
    packet = bytes(1500)
    for _ in range(5000):
        buffer.append(memoryview(packet)[52:53])  # one byte of a 1500-byte packet
    assert buffer.size == 5000
    assert buffer._chunks is not None and len(buffer._chunks) == 1
    assert all(not isinstance(chunk, memoryview) for chunk in buffer._chunks)  # no packet pinned
    assert buffer.take(3) == b"\0\0\0" and buffer.size == 4997


def test_take_into_accepts_a_memoryview_of_another_format() -> None:
    buffer = ReceiveBuffer()
    buffer.append(b"abcdefgh")
    target = memoryview(bytearray(8)).cast("I")
    assert buffer.take_into(target) == 8
    assert target.tobytes() == b"abcdefgh"


# --- through a connection -----------------------------------------------------------

PEER_ISN = 5000


def test_a_segment_in_reused_memory_is_copied_before_it_is_kept() -> None:
    peer = ScriptedPeer()
    connection, iss = peer.passive_open(peer_isn=PEER_ISN)
    raw = bytearray(
        make_segment(REMOTE, LOCAL, peer.peer_port, peer.local_port,
                     seq=PEER_ISN + 1, ack=iss + 1, flags=ACK, payload=b"first")
    )  # fmt: skip
    peer.layer.receive_segment(REMOTE, LOCAL, memoryview(raw), peer.now)
    raw[-5:] = b"XXXXX"  # the link reuses its buffer for the next packet
    assert connection.receive() == b"first"


def test_a_filled_gap_delivers_in_order_and_frees_the_out_of_order_queue() -> None:
    peer = ScriptedPeer()
    connection, iss = peer.passive_open(peer_isn=PEER_ISN)
    assert connection._ooo is None  # nothing out of order yet: no queue
    peer.inject(seq=PEER_ISN + 1 + 3, ack=iss + 1, payload=b"def")
    assert connection._ooo is not None and connection.readable_bytes == 0
    peer.inject(seq=PEER_ISN + 1, ack=iss + 1, payload=b"abc")
    assert connection._ooo is None
    assert connection.readable_bytes == 6
    target = bytearray(4)
    assert connection.receive_into(target) == 4 and target == b"abcd"
    assert connection.receive() == b"ef"

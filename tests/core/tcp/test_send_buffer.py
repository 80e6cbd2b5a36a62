"""SendBuffer: views return exactly the bytes written at those offsets, across releases."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aionetstack.core.tcp.send_buffer import SMALL_WRITE, SendBuffer

_sizes = st.sampled_from([0, 1, 7, SMALL_WRITE - 1, SMALL_WRITE, SMALL_WRITE + 300])
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("write"), _sizes, st.sampled_from(["bytes", "bytearray", "view"])),
        st.tuples(st.just("release"), st.floats(0, 1), st.just("")),
        st.tuples(st.just("view"), st.floats(0, 1), st.just("")),
    ),
    max_size=30,
)


@given(_steps, st.floats(0, 1))
def test_views_match_a_reference_stream(steps: list[tuple[str, float, str]], cut: float) -> None:
    buffer = SendBuffer()
    reference = bytearray()  # the bytes held, oldest first
    counter = 0
    for action, amount, shape in steps:
        if action == "write":
            data = bytes((counter + i) % 251 for i in range(int(amount)))
            counter += len(data)
            shaped: bytes | bytearray | memoryview = data
            if shape == "bytearray":
                shaped = bytearray(data)
            elif shape == "view":
                shaped = memoryview(data)
            buffer.append(shaped)
            reference += data
        elif action == "release":
            count = int(amount * len(reference))
            buffer.release(count)
            del reference[:count]
        else:
            start = int(amount * len(reference))
            length = int(cut * (len(reference) - start))
            assert bytes(buffer.view(start, length)) == reference[start : start + length]
            parts = buffer.view_parts(start, length)
            assert b"".join(parts) == reference[start : start + length]
        assert len(buffer) == buffer.size == len(reference)
    if reference:
        assert bytes(buffer.view(0, len(reference))) == reference


def test_a_large_bytes_write_is_kept_without_copying_and_survives_release() -> None:
    buffer = SendBuffer()
    block = bytes(range(256)) * 64
    buffer.append(block)
    view = buffer.view(100, 1000)
    assert isinstance(view, memoryview) and view.obj is block
    buffer.release(len(block))
    assert bytes(view) == block[100:1100] and not buffer


def test_parts_across_large_writes_are_views_of_them_not_copies() -> None:
    buffer = SendBuffer()
    first, second = bytes(range(256)) * 64, bytes(range(255, -1, -1)) * 64
    buffer.append(first)
    buffer.append(second)
    parts = buffer.view_parts(len(first) - 100, 300)  # 100 bytes of one, 200 of the next
    assert [len(part) for part in parts] == [100, 200]
    assert all(isinstance(part, memoryview) for part in parts)
    assert [part.obj for part in parts] == [first, second]  # type: ignore[union-attr]
    assert b"".join(parts) == first[-100:] + second[:200]


def test_small_writes_gather_into_few_chunks_and_a_tail_view_is_a_snapshot() -> None:
    buffer = SendBuffer()
    for _ in range(1000):
        buffer.append(b"ab")
    assert buffer._chunks is not None and len(buffer._chunks) == 1
    snapshot = buffer.view(0, 4)
    buffer.append(b"cd")  # the tail grows; what was handed out must not change
    assert snapshot == b"abab"


def test_out_of_range_requests_are_refused() -> None:
    buffer = SendBuffer()
    buffer.append(b"abc")
    assert buffer.view(1, 0) == b""
    try:
        buffer.view(2, 2)
    except IndexError:
        pass
    else:
        raise AssertionError("view past the end was allowed")
    try:
        buffer.release(4)
    except ValueError:
        pass
    else:
        raise AssertionError("released more than held")


def test_a_tail_of_small_writes_sent_whole_is_one_bytes_snapshot() -> None:
    buffer = SendBuffer()
    buffer.append(b"ab")
    buffer.append(b"cd")
    (whole,) = buffer.view_parts(0, 4)
    assert type(whole) is bytes and whole == b"abcd"
    buffer.append(b"ef")  # the tail grows; the part handed out must not change
    assert whole == b"abcd"
    assert buffer.view_parts(1, 2) == (b"bc",)

"""The send buffer: bytes the application wrote and the peer has not acknowledged yet.

Large writes are kept as the ``bytes`` objects they came in (no copy); small ones are
gathered into a ``bytearray`` tail so that a stream of tiny writes stays a few chunks.
Acknowledged bytes are released from the front by dropping whole chunks. A single
growing ``bytearray`` with its acknowledged prefix deleted would instead reallocate and
copy everything it holds on most appends (CPython moves the data when it grows a buffer
whose front was trimmed), which for megabyte buffers costs more than the sending itself.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Final

__all__ = ["SendBuffer"]

#: Writes shorter than this are copied into the tail ``bytearray`` rather than kept whole.
SMALL_WRITE: Final = 4096
#: The tail ``bytearray`` takes small writes until it holds this many bytes.
TAIL_LIMIT: Final = 65536
#: The ``_ends`` of every empty buffer, shared: a buffer makes its own on first append.
_NO_ENDS: Final[list[int]] = []


class SendBuffer:
    """A FIFO of written bytes addressed by offset from its oldest held byte.

    Contract: ``view(offset, length)`` returns bytes the buffer holds; a ``memoryview``
    it returns looks into an immutable ``bytes`` chunk, so it stays valid after
    :meth:`release`. The chunk lists exist only while the buffer holds data.
    """

    __slots__ = ("_base", "_chunks", "_ends", "size")

    def __init__(self) -> None:
        self._chunks: list[bytes | bytearray] | None = None
        #: ``_ends[i]`` is the position just past chunk ``i`` (positions never wrap).
        self._ends = _NO_ENDS
        #: Position of the oldest byte held.
        self._base = 0
        #: Bytes held.
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size != 0

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` (a ``bytes`` object of SMALL_WRITE bytes or more is kept, not copied)."""
        length = len(data)
        if not length:
            return
        chunks = self._chunks
        if chunks is None:
            chunks = self._chunks = []
            self._ends = []
        ends = self._ends
        end = (ends[-1] if ends else self._base) + length
        if length < SMALL_WRITE:
            tail = chunks[-1] if chunks else None
            if type(tail) is bytearray and len(tail) < TAIL_LIMIT:
                tail += data
                ends[-1] = end
            else:
                chunks.append(bytearray(data))
                ends.append(end)
        else:
            chunks.append(data if type(data) is bytes else bytes(data))
            ends.append(end)
        self.size += length

    def view(self, offset: int, length: int) -> bytes | memoryview:
        """The ``length`` bytes starting ``offset`` bytes after the oldest held byte."""
        chunks = self._chunks
        if chunks is None or offset < 0 or length <= 0 or offset + length > self.size:
            if length <= 0:
                return b""
            raise IndexError(f"send buffer holds {self.size} bytes, asked [{offset}, +{length})")
        ends = self._ends
        position = self._base + offset
        stop = position + length
        index = bisect_right(ends, position)
        chunk = chunks[index]
        chunk_end = ends[index]
        low = position - (chunk_end - len(chunk))
        if stop <= chunk_end:
            if type(chunk) is bytes:
                return memoryview(chunk)[low : low + length]
            return bytes(memoryview(chunk)[low : low + length])  # the tail may still grow
        pieces: list[bytes | bytearray | memoryview] = [memoryview(chunk)[low:]]
        index += 1
        while ends[index] < stop:
            pieces.append(chunks[index])
            index += 1
        last = chunks[index]
        pieces.append(memoryview(last)[: len(last) - (ends[index] - stop)])
        return b"".join(pieces)

    def view_parts(self, offset: int, length: int) -> tuple[bytes | memoryview, ...]:
        """The bytes of :meth:`view`, as the pieces of the chunks holding them (no copy of a
        ``bytes`` chunk): for a gathering write (``writev``) of a segment that spans chunks.
        A ``bytearray`` chunk's piece is copied out (it may still grow or be trimmed)."""
        chunks = self._chunks
        if chunks is None or offset < 0 or length <= 0 or offset + length > self.size:
            return (self.view(offset, length),)
        ends = self._ends
        position = self._base + offset
        stop = position + length
        index = bisect_right(ends, position)
        chunk = chunks[index]
        end = ends[index]
        low = position - end + len(chunk)
        if stop <= end:  # within one chunk (every segment of small writes)
            if type(chunk) is bytes:
                return (memoryview(chunk)[low : low + length],)
            if low == 0 and length == len(chunk):
                return (bytes(chunk),)  # a tail of small writes sent whole: no view made
            return (memoryview(chunk)[low : low + length].tobytes(),)
        piece = memoryview(chunk)[low:]
        first = piece if type(chunk) is bytes else piece.tobytes()
        index += 1
        end = ends[index]
        middle: list[bytes] | None = None  # usually none: a TSO segment spans two writes
        while end < stop:  # whole chunks between the first and the last
            chunk = chunks[index]
            if middle is None:
                middle = []
            middle.append(chunk if type(chunk) is bytes else bytes(chunk))
            index += 1
            end = ends[index]
        chunk = chunks[index]
        piece = memoryview(chunk)[: len(chunk) - (end - stop)]
        last = piece if type(chunk) is bytes else piece.tobytes()
        return (first, last) if middle is None else (first, *middle, last)

    def release(self, count: int) -> None:
        """Forget the ``count`` oldest bytes (acknowledged by the peer)."""
        if count <= 0:
            return
        if count > self.size:
            raise ValueError(f"cannot release {count} bytes of {self.size}")
        self.size -= count
        self._base += count
        if not self.size:
            self._chunks = None
            self._ends = _NO_ENDS
            return
        chunks = self._chunks
        assert chunks is not None
        done = bisect_right(self._ends, self._base)
        if done:
            del chunks[:done]
            del self._ends[:done]

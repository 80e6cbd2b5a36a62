"""The in-order receive buffer: bytes received and not yet read, kept as they arrived.

Appending never copies: a chunk (usually a memoryview of the received packet) is
stored as it is, and bytes are copied once, when the application reads them
(``take`` joins chunks into one ``bytes``; ``take_into`` copies straight into the
caller's buffer). A growing ``bytearray`` would instead copy every byte twice and
allocate afresh after each read, which for 64 KB super-segments means page faults.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ReceiveBuffer"]

#: Chunks shorter than this are copied into a ``bytearray`` tail instead of kept as views:
#: a view pins its whole packet, so a flood of tiny segments the application does not
#: read would otherwise hold many times the receive window in memory.
SMALL_CHUNK: Final = 512
#: The tail ``bytearray`` gathers small chunks until it holds this many bytes.
TAIL_LIMIT: Final = 16384

_Chunk = bytes | bytearray | memoryview


class ReceiveBuffer:
    """A FIFO of byte chunks with a byte count; the chunk list exists only while it holds data.

    Contract: a chunk given to :meth:`append` is owned by the buffer from then on; the
    caller must not change it (pass ``bytes``, a memoryview of ``bytes``, or a
    ``bytearray`` nobody else keeps).
    """

    __slots__ = ("_chunks", "size")

    def __init__(self) -> None:
        self._chunks: list[_Chunk] | None = None
        #: Bytes held (``len`` of the buffer, as a plain attribute for hot paths).
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size != 0

    def append(self, chunk: _Chunk) -> None:
        """Queue ``chunk`` (non-empty chunks only are kept)."""
        length = len(chunk)
        if not length:
            return
        chunks = self._chunks
        if length < SMALL_CHUNK:
            tail = chunks[-1] if chunks else None
            if type(tail) is bytearray and len(tail) < TAIL_LIMIT:
                tail += chunk
            elif chunks is None:
                self._chunks = [bytearray(chunk)]
            else:
                chunks.append(bytearray(chunk))
        elif chunks is None:
            self._chunks = [chunk]
        else:
            chunks.append(chunk)
        self.size += length

    def take(self, max_bytes: int = -1) -> bytes:
        """Remove and return up to ``max_bytes`` bytes (all of them when negative)."""
        chunks = self.take_chunks(max_bytes)
        return bytes(chunks[0]) if len(chunks) == 1 else b"".join(chunks)

    def take_chunks(self, max_bytes: int = -1) -> list[_Chunk]:
        """Remove up to ``max_bytes`` bytes (all when negative) as the chunks holding them:
        no join (only the head of a chunk cut in two is copied). The chunks leave the
        buffer, so nothing changes them afterwards; views keep their packet alive until
        the caller drops them."""
        chunks = self._chunks
        if chunks is None:
            return []
        if max_bytes < 0 or max_bytes >= self.size:
            self._chunks = None
            self.size = 0
            return chunks
        taken: list[_Chunk] = []
        index = self._split(max_bytes, taken)
        del chunks[:index]
        self.size -= max_bytes
        return taken

    def take_whole_chunks(self, enough: int = -1) -> list[_Chunk]:
        """Remove whole chunks, oldest first, until they hold at least ``enough`` bytes
        (all of them when negative or when the buffer holds no more): no chunk is cut,
        so nothing is copied. The same ownership as :meth:`take_chunks`."""
        chunks = self._chunks
        if chunks is None:
            return []
        if enough < 0 or enough >= self.size:
            self._chunks = None
            self.size = 0
            return chunks
        total = 0
        index = 0
        while total < enough:
            total += len(chunks[index])
            index += 1
        taken = chunks[:index]
        del chunks[:index]
        self.size -= total
        if not chunks:
            self._chunks = None
        return taken

    def take_into(self, buffer: bytearray | memoryview) -> int:
        """Move bytes into ``buffer`` (as many as fit); returns how many."""
        chunks = self._chunks
        if chunks is None:
            return 0
        view = memoryview(buffer).cast("B")
        count = min(len(view), self.size)
        if not count:
            return 0
        position = 0
        index = 0
        while position < count:
            chunk = chunks[index]
            length = len(chunk)
            if position + length <= count:
                view[position : position + length] = chunk
                position += length
                index += 1
            else:
                part = count - position
                view[position:count] = memoryview(chunk)[:part]
                chunks[index] = _rest(chunk, part)
                position = count
        if count == self.size:
            self._chunks = None
            self.size = 0
        else:
            del chunks[:index]
            self.size -= count
        return count

    def _split(self, count: int, taken: list[_Chunk]) -> int:
        """Move the first ``count`` bytes' chunks into ``taken`` (splitting the last one in
        place); return how many whole chunks to delete from the front."""
        chunks = self._chunks
        assert chunks is not None
        index = 0
        while count:
            chunk = chunks[index]
            length = len(chunk)
            if length <= count:
                taken.append(chunk)
                count -= length
                index += 1
            else:
                taken.append(memoryview(chunk)[:count].tobytes())
                chunks[index] = _rest(chunk, count)
                count = 0
        return index


def _rest(chunk: _Chunk, start: int) -> _Chunk:
    """``chunk`` without its first ``start`` bytes. A ``bytearray`` (a tail that may still
    grow) is cut in place, never exported to a memoryview that would pin its size."""
    if type(chunk) is bytearray:
        del chunk[:start]
        return chunk
    return memoryview(chunk)[start:]

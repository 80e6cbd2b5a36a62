"""Receive buffers lent to the stack instead of copied out of one reused buffer.

A link reads each packet into a :class:`~aionetstack.wire.packet_memory.PacketMemory`.
A small packet is copied out (``bytes``) and the buffer read into again; a large one
(a 64 KB super-packet from a TUN with offload) is handed on as a view of the buffer,
which is then *lent*: it is read into again only once nothing refers to it any more,
which its reference count tells (each live view holds one reference through its
managed buffer). Large packets thus cost no copy, no allocation and, above all, no
fresh pages: a new 64 KB ``bytes`` per packet, freed in bursts as the application
reads, made glibc give the heap top back and fault it in again (the system time of a
bulk upload was mostly those page faults).

Memory held: one buffer per large packet the stack still holds (as it held a ``bytes``
of the packet before, at most twice that packet's size), at most
:data:`LENT_BUFFERS_MAX` buffers in all (past that, packets are copied out). Returned
buffers are kept for reuse: :data:`SPARE_BUFFERS` of them, and as many more as the
last stretch of reads needed; after a burst (many connections' unread data held at
once) the pool gives the rest back at its sweeps.
Making a pool raises glibc's heap thresholds once (``link/heap.py``): what the stack no
longer allocates per packet, the application still does per read.
"""

from __future__ import annotations

import sys
import sysconfig
from collections import deque
from typing import Final

from ..wire.packet_memory import PacketMemory
from .heap import keep_heap_mapped

__all__ = ["LEND_THRESHOLD", "LENT_BUFFERS_MAX", "SPARE_BUFFERS", "ReceivePool"]

#: Packets of at least this many bytes are lent as views; smaller ones are copied out
#: (a 1,500-byte packet must not pin a 64 KB buffer while it waits to be read). Half the
#: buffer: data held in lent buffers occupies at most twice its size, so the stack's
#: memory accounting (which counts bytes held) is off by at most that factor. A
#: free-threaded CPython's reference counts are not exact when read, so there nothing
#: is lent (every packet is copied out, as before the pool).
LEND_THRESHOLD: Final = 1 << 30 if sysconfig.get_config_var("Py_GIL_DISABLED") else 32768
#: Lent buffers checked for return per take (the oldest first: data is read in order).
_SCAN: Final = 4
#: Buffers kept once returned (64 KB each) beyond what the steady state needs: the pool
#: shrinks back to this many after a burst.
SPARE_BUFFERS: Final = 64
#: Buffers lent between two sweeps for returned buffers (a pass over all of them: about
#: one reference count read per packet lent).
_SWEEP_EVERY: Final = 1024
#: Buffers lent at most (64 MiB): ten connections whose readers paused hold up to their
#: receive buffers (4 MiB each by default) of unread data, 640 buffers, which a smaller
#: bound turned into a copy of every packet (12% of an upload server's CPU). With all
#: of them held, packets are copied out again, as before the pool. Memory held this way
#: is the connections' unread data, bounded by their receive buffers either way.
LENT_BUFFERS_MAX: Final = 1024


class ReceivePool:
    """Buffers of ``size`` bytes: :attr:`current` to read into and :attr:`view`, a
    ``memoryview`` of it to copy small packets out of; :meth:`lend` after a read whose
    packet is to be handed on as a view (``current`` is then a buffer nothing refers to)."""

    __slots__ = (
        "_free",
        "_idle_refs",
        "_lent",
        "_missed",
        "_size",
        "_takes",
        "current",
        "made",
        "view",
    )

    def __init__(self, size: int) -> None:
        keep_heap_mapped()  # the application's buffers for what it receives (link/heap.py)
        self._size = size
        self._lent: deque[PacketMemory] = deque()
        #: Returned buffers the last sweep found, for the takes the scan cannot serve.
        self._free: list[PacketMemory] = []
        self._takes = 0  # buffers asked for since the last sweep
        self._missed = 0  # of those, the ones the scan found no returned buffer for
        #: Buffers made in all (counted work: a steady state makes none).
        self.made = 1
        self.current = PacketMemory(size)
        self.view = memoryview(self.current)
        # The reference count of a tracked buffer that nothing else holds, measured by
        # the code that measures lent ones: interpreted and compiled (mypyc) code hold
        # different temporaries while they measure.
        self._idle_refs = _first_refs(deque([PacketMemory(1)]))

    def lend(self) -> bool:
        """Hand ``current`` on with the packet just read into it, if another buffer is
        ready to read into: a returned one, or a new one while fewer than
        :data:`LENT_BUFFERS_MAX` exist. False (nothing changed): every buffer is still
        held, and the caller copies the packet out of ``current`` instead."""
        spare = self._spare()
        if spare is None:
            return False
        self.view.release()  # the pool's own view must not count as a user of the buffer
        self._lent.append(self.current)
        self.current = spare
        self.view = memoryview(spare)
        return True

    def _spare(self) -> PacketMemory | None:
        """A buffer to read into: a returned one the scan finds among the oldest lent,
        else one the last sweep found, else a new one (None: the bound is reached)."""
        lent = self._lent
        idle = self._idle_refs
        self._takes += 1
        if self._takes == _SWEEP_EVERY:
            self._sweep()
        for _ in range(min(_SCAN, len(lent))):
            if _first_refs(lent) == idle:
                return lent.popleft()  # every view of it is gone: read into it again
            lent.rotate(-1)
        self._missed += 1
        if self._free:
            return self._free.pop()
        if len(lent) < LENT_BUFFERS_MAX:
            self.made += 1
            return PacketMemory(self._size)
        return None

    def _sweep(self) -> None:
        """One pass over the lent buffers, in order: the returned ones go to the free
        list, which keeps :data:`SPARE_BUFFERS` plus as many as the scan missed since
        the last sweep (what the steady state needs beyond it); the rest are given back.
        After a burst the scan misses nothing and the pool shrinks to its spares; while
        many connections hold data the scan misses often, and those takes are served
        from the free list instead of by new buffers."""
        keep = SPARE_BUFFERS + self._missed
        self._takes = 0
        self._missed = 0
        free = self._free
        del free[keep:]
        lent = self._lent
        idle = self._idle_refs
        for _ in range(len(lent)):
            if _first_refs(lent) == idle:
                returned = lent.popleft()
                if len(free) < keep:
                    free.append(returned)
                continue
            lent.rotate(-1)

    @property
    def lent(self) -> int:
        """Buffers tracked (lent, or returned and waiting for reuse)."""
        return len(self._lent) + len(self._free)


def _first_refs(buffers: deque[PacketMemory]) -> int:
    """The reference count of ``buffers[0]`` as this function sees it: the deque's, plus
    the temporaries of the code that runs it (the same for every call)."""
    return sys.getrefcount(buffers[0])

"""glibc's heap kept mapped while large packets are received (mallopt(3)).

glibc serves a request of at least its *mmap threshold* (128 KiB at start) with a
fresh mapping, and gives the heap's top back to the kernel once more than its *trim
threshold* (twice the mmap threshold) lies free there. Both grow by themselves: freeing
a mapped block raises the mmap threshold to that block's size ("dynamic mmap
threshold"). An asyncio server gets there through its own reads, which allocate up to
256 KiB each; the stack's receive path allocates nothing per packet (its buffers are
lent, ``link/receive_pool.py``), so a process receiving bulk data through it stayed at
the start values, and the application's 64-256 KiB stream buffers, freed at every read,
made glibc trim the heap and fault the same pages in again: most of an upload server's
CPU time, as page faults, in most measured runs (docs/performance.md).

:func:`keep_heap_mapped` raises the thresholds the way glibc documents, by freeing one
mapped block, once per process. Its cost: up to twice :data:`HEAP_BLOCK` of free heap
kept mapped instead of returned to the kernel. Thresholds set explicitly
(``mallopt``, or the ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``
environment variables) turn glibc's adjustment off, and this with it; other C
libraries just allocate and free one block.
"""

from __future__ import annotations

import functools
from typing import Final

__all__ = ["HEAP_BLOCK", "keep_heap_mapped"]

#: The block freed: glibc's mmap threshold becomes 4 MiB and its trim threshold 8 MiB.
#: 1 MiB was not enough for ten uploading connections (their stream buffers and 1 MiB
#: reads at once trimmed the heap again in one of two runs); 2 and 4 MiB were.
HEAP_BLOCK: Final = 4 << 20


@functools.cache  # once per process: later calls return at once
def keep_heap_mapped() -> None:
    """Free one :data:`HEAP_BLOCK`-byte block (once per process; later calls do nothing).

    ``bytes(n)`` asks the C library for zeroed memory, which glibc maps without
    touching it: the call costs two system calls, not 4 MiB of page faults.
    """
    block = bytes(HEAP_BLOCK)
    del block

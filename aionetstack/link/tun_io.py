"""The TUN's per-packet system calls: one read, one gathering write.

:func:`read_packet` and :func:`write_packet` are the C functions of
``link/_tunio.c`` when that module was built (``ACCELERATED`` says so) and otherwise
their Python twins here, under one contract. The C read answers an empty queue with
``None``: through ``io.FileIO`` or ``os``, the ``EAGAIN`` that ends every batch of
reads builds an ``OSError`` (its message decoded from ``strerror``) only to drop it,
about a third of the cost of a read. The C write takes the header, the packet and
its payload views as they are (no tuple built per packet).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

__all__ = [
    "ACCELERATED",
    "read_packet",
    "read_packet_python",
    "write_packet",
    "write_packet_python",
]

Buffer = bytes | bytearray | memoryview


def read_packet_python(fd: int, buffer: bytearray | memoryview) -> int | None:
    """One ``read(2)`` of ``fd`` into ``buffer``: the byte count, or ``None`` when the
    queue is empty (``EAGAIN``). ``OSError`` for any other failure (``EINTR`` is
    retried, PEP 475)."""
    try:
        return os.readv(fd, (buffer,))
    except BlockingIOError:
        return None


def write_packet_python(
    fd: int, head: Buffer | None, packet: Buffer, tail: tuple[Buffer, ...]
) -> int:
    """One ``writev(2)`` of ``head`` (``None``: nothing), ``packet``, then ``tail``'s
    buffers: the bytes written less ``head``'s length. ``OSError`` on failure
    (``BlockingIOError`` for a full queue; ``EINVAL`` past the kernel's ``IOV_MAX``
    buffers)."""
    if not isinstance(tail, tuple):
        raise TypeError("write_packet(): tail must be a tuple")
    if head is None:
        return os.writev(fd, (packet, *tail))
    return os.writev(fd, (head, packet, *tail)) - len(head)


read_packet: Callable[[int, bytearray | memoryview], int | None]
write_packet: Callable[[int, Buffer | None, Buffer, tuple[Buffer, ...]], int]
try:
    from ._tunio import read_packet, write_packet
except ImportError:  # built without a C compiler: the same contract in Python
    read_packet, write_packet = read_packet_python, write_packet_python

#: The C reads and writes (``link/_tunio.c``) are in use.
ACCELERATED: Final = read_packet is not read_packet_python

"""The TUN's per-packet reads and writes in C (``link/_tunio.c``).

See :mod:`aionetstack.link.tun_io`.
"""

def read_packet(fd: int, buffer: bytearray | memoryview, /) -> int | None: ...
def write_packet(
    fd: int,
    head: bytes | bytearray | memoryview | None,
    packet: bytes | bytearray | memoryview,
    tail: tuple[bytes | bytearray | memoryview, ...],
    /,
) -> int: ...
def write_offloaded(
    fd: int,
    packet: bytes | bytearray | memoryview,
    segment_size: int,
    tail: tuple[bytes | bytearray | memoryview, ...],
    link_header: int,
    /,
) -> int: ...

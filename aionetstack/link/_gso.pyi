"""Software GSO's cut in C (``link/_gso.c``).

See :func:`aionetstack.link.segmentation.cut_tcp_packets`.
"""

def cut_tcp_packets(
    packet: bytes | bytearray | memoryview,
    segment_size: int,
    tail: tuple[bytes | memoryview, ...],
    offset: int,
    /,
) -> list[bytes]: ...

"""Software GRO's batch pass in C (``core/_gro.c``).

See :meth:`aionetstack.core.gro.Coalescer.coalesce`.
"""

from collections.abc import Callable, Sequence

def coalesce(
    packets: Sequence[bytes | bytearray | memoryview],
    verify: bool,
    merged_type: Callable[[bytes, int], object],
    /,
) -> tuple[list[object], int, int, int]: ...
def thin_acks(
    packets: Sequence[bytes | bytearray | memoryview],
    verify: bool,
    /,
) -> tuple[list[object], int, int, int]: ...

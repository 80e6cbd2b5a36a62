"""The send path's TCP header with the timestamp option alone (RFC 9293 §3.1, RFC 7323
§3): 32 bytes, a data offset of 8 words, then NOP NOP and the timestamps in the layout
of RFC 7323 Appendix A, the one every data segment and ACK of a connection that
negotiated timestamps (and has no SACK blocks to send) carries.

:func:`timestamp_header` is ``wire/_headers.c``'s ``tcp_timestamp_header`` when that
module was built (``ACCELERATED``) and otherwise :func:`timestamp_header_python`, its
reference: the same bytes, held to it by ``tests/wire/test_tcp_send.py``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

__all__ = ["ACCELERATED", "TIMESTAMP_HEADER_LENGTH", "timestamp_header", "timestamp_header_python"]

#: The fixed header (20 bytes) and NOP, NOP, kind 8, length 10, TSval, TSecr (12 bytes).
TIMESTAMP_HEADER_LENGTH: Final = 32
#: The data offset (in 32-bit words) in the high nibble of byte 12 (RFC 9293 §3.1).
_OFFSET_BYTE: Final = (TIMESTAMP_HEADER_LENGTH // 4) << 4
#: RFC 9293 §3.2: NOP is kind 1; RFC 7323 §3: timestamps are kind 8, length 10.
_NOP: Final = 1
_TIMESTAMPS_KIND: Final = 8
_TIMESTAMPS_LENGTH: Final = 10
_LAYOUT: Final = struct.Struct("!HHIIBBHHHBBBBII")


def timestamp_header_python(  # noqa: PLR0917 - the C function's positional call
    source_port: int,
    destination_port: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    checksum: int,
    tsval: int,
    tsecr: int,
) -> bytes:
    """The 32-byte header; ``checksum`` is written as given (the partial sum a device
    completes, or 0 to be computed over the segment). ValueError (``struct.error``'s
    kind) for a field out of its range."""
    try:
        return _LAYOUT.pack(
            source_port, destination_port, seq, ack, _OFFSET_BYTE, flags, window, checksum,
            0, _NOP, _NOP, _TIMESTAMPS_KIND, _TIMESTAMPS_LENGTH, tsval, tsecr,
        )  # fmt: skip
    except struct.error as error:
        raise ValueError(str(error)) from None


timestamp_header: Callable[[int, int, int, int, int, int, int, int, int], bytes]
try:
    from ._headers import tcp_timestamp_header as timestamp_header
except ImportError:  # built without a C compiler: the same header in Python
    timestamp_header = timestamp_header_python

#: The C header (``wire/_headers.c``) is in use.
ACCELERATED: Final = timestamp_header is not timestamp_header_python

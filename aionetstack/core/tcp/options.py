"""Option arithmetic that needs no connection: the window scale to offer for a buffer
(RFC 7323 §2.2-§2.3).
"""

from __future__ import annotations

from typing import Final

#: RFC 7323 §2.2: the largest window a 16-bit field carries; §2.3: shift at most 14.
MAX_WINDOW_FIELD: Final = 0xFFFF
MAX_WINDOW_SCALE: Final = 14


def window_scale_for(buffer: int) -> int:
    """The smallest shift that lets the window field cover ``buffer`` (RFC 7323 §2.3)."""
    if buffer <= MAX_WINDOW_FIELD:
        return 0
    # 2**scale must reach ceil(buffer / MAX_WINDOW_FIELD) = q + 1, q as below.
    scale = ((buffer - 1) // MAX_WINDOW_FIELD).bit_length()
    return scale if scale < MAX_WINDOW_SCALE else MAX_WINDOW_SCALE

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
    scale = 0
    while (MAX_WINDOW_FIELD << scale) < buffer and scale < MAX_WINDOW_SCALE:
        scale += 1
    return scale

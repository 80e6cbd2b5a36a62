"""Ephemeral port choice (RFC 6056)."""

from __future__ import annotations

import errno
from collections.abc import Callable

from .randomness import RandomSource

__all__ = ["choose_ephemeral_port"]


def choose_ephemeral_port(
    rng: RandomSource, port_range: tuple[int, int], in_use: Callable[[int], bool]
) -> int:
    """Pick a free port in ``port_range`` (inclusive).

    RFC 6056 §3.3.1 (Algorithm 1): start at a random offset and probe upwards,
    wrapping around, so the first port tried is unpredictable. Raises
    ``OSError(EADDRINUSE)`` when every port in the range is taken.
    """
    low, high = port_range
    count = high - low + 1
    start = rng.getrandbits(32) % count
    for step in range(count):
        port = low + (start + step) % count
        if not in_use(port):
            return port
    raise OSError(errno.EADDRINUSE, f"no free ephemeral port in {low}..{high}")

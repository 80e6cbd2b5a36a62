"""The injected source of randomness (ISNs, ephemeral ports, IP identifiers).

The core never touches the global ``random`` module: drivers pass
``random.SystemRandom()`` in production and a seeded ``random.Random(seed)`` in
tests, so that every run of the simulator reproduces exactly.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["RandomSource"]


class RandomSource(Protocol):
    """The subset of :class:`random.Random` the core uses."""

    def getrandbits(self, k: int, /) -> int: ...

    def random(self) -> float: ...

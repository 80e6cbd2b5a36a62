"""A manual clock for virtual-time tests: time moves only when a test moves it."""

from __future__ import annotations

__all__ = ["ManualClock"]


class ManualClock:
    """Seconds as a float, starting at ``start``; never goes backwards."""

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        self.now += seconds
        return self.now

    def advance_to(self, when: float) -> float:
        """Move forward to ``when`` (no-op if that is in the past) and return the time."""
        self.now = max(self.now, when)
        return self.now

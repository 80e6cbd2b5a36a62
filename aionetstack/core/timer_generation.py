"""A count that tells the stack's single deadline when it may have moved earlier.

``StackCore.get_timer`` is asked after every pass of a driver, but the earliest
deadline only moves earlier when some timer source sets one: TCP's heap takes a
push (in a request/response exchange about once per 100 transactions), IP
reassembly starts a datagram, intercept holds a SYN or opens a UDP flow. Each
source bumps :attr:`TimerGeneration.count` then; while the count is unchanged,
the last answer stands. Deadlines that move later or go away need no bump: an
early answer only wakes the loop to find nothing due (and firing a timer drops
the answer, ``StackCore.handle_timer``).
"""

from __future__ import annotations

from typing import Final

__all__ = ["TIMER_ANSWER_CHECK", "TimerAnswerCheck", "TimerGeneration"]


class TimerGeneration:
    """Bumped (``count += 1``) by a timer source that may have set an earlier deadline."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class TimerAnswerCheck:
    """For tests: with ``enabled`` set before a stack is made, its ``get_timer`` asks the
    layers every time and counts in ``late`` each answer it would have reused that was
    later than the true deadline (a timer source that did not bump the generation)."""

    __slots__ = ("enabled", "late")

    def __init__(self) -> None:
        self.enabled = False
        self.late = 0


#: The one check every stack reads (``tests/conftest.py`` enables it for the suite).
TIMER_ANSWER_CHECK: Final = TimerAnswerCheck()

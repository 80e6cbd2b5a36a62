"""HyStart++'s delay increase test (RFC 9406 §4.2), the round state of one connection.

A connection makes a :class:`HyStartRounds` at its first RTT sample in slow start, so
one that never sends (an idle server connection, say) carries none of it.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "HYSTART_LOW_SSTHRESH",
    "HYSTART_MAX_RTT_THRESH",
    "HYSTART_MIN_RTT_THRESH",
    "HYSTART_RTT_SAMPLES",
    "HyStartRounds",
]

#: RFC 9406 §4.3: N_RTT_SAMPLE, MIN/MAX_RTT_THRESH (s), LOW_SSTHRESH (segments).
HYSTART_RTT_SAMPLES: Final = 8
HYSTART_MIN_RTT_THRESH: Final = 0.004
HYSTART_MAX_RTT_THRESH: Final = 0.016
HYSTART_LOW_SSTHRESH: Final = 16
#: RFC 9406 §4.2: the minimum RTT of a round with no sample yet is infinity.
_INF: Final = float("inf")


class HyStartRounds:
    """The smallest RTT of this round and the last, per round trip (RFC 9406 §4.2)."""

    __slots__ = ("last_round_min", "round_end", "round_min", "samples")

    def __init__(self) -> None:
        #: The send offset whose acknowledgment ends this round.
        self.round_end = 0
        self.round_min = _INF
        self.last_round_min = _INF
        #: RTT samples taken in this round.
        self.samples = 0

    def delay_increased(self, ack_off: int, nxt: int, rtt: float, cwnd: int, mss: int) -> bool:
        """Feed one RTT sample of an ACK up to ``ack_off``; True: leave slow start.

        ``nxt`` is SND.NXT (where the next round ends), ``cwnd`` and ``mss`` in bytes.
        A round's minimum RTT at least eta above the last round's, after
        N_RTT_SAMPLE samples and once cwnd is LOW_SSTHRESH segments, ends slow start.
        """
        if ack_off >= self.round_end:  # a new round begins
            self.last_round_min = self.round_min
            self.round_min = _INF
            self.samples = 0
            self.round_end = nxt
        self.round_min = min(self.round_min, rtt)
        self.samples += 1
        last = self.last_round_min
        if self.samples < HYSTART_RTT_SAMPLES or last == _INF or cwnd < HYSTART_LOW_SSTHRESH * mss:
            return False
        eta = min(max(last / 8, HYSTART_MIN_RTT_THRESH), HYSTART_MAX_RTT_THRESH)
        return self.round_min >= last + eta

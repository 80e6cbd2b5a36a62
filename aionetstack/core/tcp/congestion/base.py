"""The interface every congestion controller implements.

Windows are in bytes. The connection owns loss detection and recovery; a
controller only decides how ``cwnd``/``ssthresh`` react to ACKs and losses.
"""

from __future__ import annotations

from typing import Final

from ..shared import shared

__all__ = ["CongestionControl", "initial_window"]

#: RFC 6928 §2: IW = min(10*MSS, max(2*MSS, 14600)).
_IW_SEGMENTS: Final = 10
_IW_BYTES: Final = 14600


def initial_window(mss: int) -> int:
    """The initial congestion window in bytes (RFC 6928 §2), one shared ``int`` per value."""
    return shared(min(_IW_SEGMENTS * mss, max(2 * mss, _IW_BYTES)))


class CongestionControl:
    """Base class with the behaviour shared by NewReno and CUBIC (RFC 5681 §3.1).

    ``on_ack`` is called for ACKs that advance SND.UNA outside recovery;
    ``on_congestion`` when fast recovery begins; ``on_recovery_end`` when it ends;
    ``on_timeout`` after an RTO.
    """

    __slots__ = ("bytes_acked", "cwnd", "mss", "ssthresh")

    name = "base"

    def __init__(self, mss: int) -> None:
        self.mss = mss
        self.cwnd = initial_window(mss)
        #: RFC 5681 §3.1: ssthresh starts arbitrarily high.
        self.ssthresh = 1 << 62
        self.bytes_acked = 0

    @property
    def in_slow_start(self) -> bool:
        """RFC 5681 §3.1: slow start while cwnd < ssthresh."""
        return self.cwnd < self.ssthresh

    def set_mss(self, mss: int) -> None:
        """The send MSS became known (after the handshake): rescale the initial window."""
        self.mss = mss
        self.cwnd = initial_window(mss)

    def slow_start(self, acked: int) -> int:
        """RFC 5681 §3.1 slow start with byte counting (RFC 3465): grow by the bytes ACKed.

        Like Linux (and unlike RFC 3465's L = 2*SMSS cap), a stretch ACK counts in full:
        receivers that coalesce ACKs per batch or GRO super-segment (this stack's included)
        would otherwise turn slow start's doubling into linear growth.
        Returns the acked bytes left over once cwnd reaches ssthresh.
        """
        growth = min(acked, self.ssthresh - self.cwnd)
        self.cwnd += growth
        return acked - growth if self.cwnd >= self.ssthresh else 0

    def on_ack(self, acked: int, flight: int, now: float, rtt: float | None) -> None:
        raise NotImplementedError

    def on_congestion(self, flight: int, now: float) -> None:
        raise NotImplementedError

    def on_recovery_end(self, now: float) -> None:
        """RFC 6582 §3.2 step 3: deflate to ssthresh when recovery completes."""
        self.cwnd = max(min(self.cwnd, self.ssthresh), self.mss)

    def on_timeout(self, flight: int, now: float) -> None:
        """RFC 5681 §3.1 eq. (4) then LW = 1 segment."""
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss
        self.bytes_acked = 0

"""Retransmission timeout estimation (RFC 6298)."""

from __future__ import annotations

from typing import Final

__all__ = ["RttEstimator"]

#: RFC 6298 §2.3: alpha = 1/8, beta = 1/4; K = 4.
_ALPHA: Final = 0.125
_BETA: Final = 0.25
_K: Final = 4
#: RFC 6298 §2.3 "G": the clock granularity; our timestamps tick in milliseconds.
_GRANULARITY: Final = 0.001


class RttEstimator:
    """SRTT/RTTVAR and the RTO with exponential back-off.

    Karn's rule (RFC 6298 §3) is the caller's job: never feed a sample taken
    from a retransmitted segment unless it is timestamp-based (RFC 7323 §4).
    """

    __slots__ = (
        "backoff",
        "latest_rtt",
        "max_rto",
        "min_rto",
        "min_rtt",
        "rto_base",
        "rttvar",
        "samples",
        "srtt",
    )

    def __init__(self, initial_rto: float, min_rto: float, max_rto: float) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.latest_rtt: float | None = None
        self.min_rtt: float | None = None
        self.rto_base = min(initial_rto, max_rto)
        self.min_rto = min_rto
        self.max_rto = max_rto
        #: Number of back-offs applied since the last new ACK (RFC 6298 §5.5).
        self.backoff = 0
        #: Samples taken so far.
        self.samples = 0

    @property
    def rto(self) -> float:
        """Current timeout including back-off, clamped to ``max_rto`` (RFC 6298 §2.5)."""
        backoff = self.backoff
        if not backoff:
            return self.rto_base  # already clamped to max_rto by sample()
        return min(self.rto_base * (1 << min(backoff, 30)), self.max_rto)

    def sample(self, rtt: float) -> None:
        """Feed one RTT measurement (RFC 6298 §2.2 / §2.3)."""
        rtt = max(rtt, 0.0)
        self.samples += 1
        self.latest_rtt = rtt
        min_rtt = self.min_rtt
        if min_rtt is None or rtt < min_rtt:
            self.min_rtt = rtt
        srtt = self.srtt
        if srtt is None:
            srtt = self.srtt = rtt
            rttvar = self.rttvar = rtt / 2
        else:
            rttvar = self.rttvar = (1 - _BETA) * self.rttvar + _BETA * abs(srtt - rtt)
            srtt = self.srtt = (1 - _ALPHA) * srtt + _ALPHA * rtt
        # RFC 6298 §2.4: RTO is at least min_rto (1 s in the RFC; Linux uses 200 ms).
        variation = _K * rttvar
        rto = srtt + (variation if variation > _GRANULARITY else _GRANULARITY)
        rto = max(rto, self.min_rto)
        self.rto_base = rto if rto < self.max_rto else self.max_rto

    def back_off(self) -> None:
        """Double the timeout after it expired (RFC 6298 §5.5)."""
        self.backoff += 1

    def reset_backoff(self) -> None:
        """A new ACK arrived: the timeout is computed afresh (RFC 6298 §5.7 note)."""
        self.backoff = 0

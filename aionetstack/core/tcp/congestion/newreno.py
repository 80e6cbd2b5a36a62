"""NewReno congestion control (RFC 5681, RFC 6582)."""

from __future__ import annotations

from .base import CongestionControl

__all__ = ["NewReno"]


class NewReno(CongestionControl):
    """Slow start, then one MSS per RTT of ACKed data (appropriate byte counting)."""

    __slots__ = ()

    name = "newreno"

    def on_ack(self, acked: int, flight: int, now: float, rtt: float | None) -> None:
        if self.in_slow_start:
            acked = self.slow_start(acked)
            if not acked:
                return
        # RFC 5681 §3.1: congestion avoidance, cwnd += SMSS once per cwnd of ACKed bytes.
        self.bytes_acked += acked
        if self.bytes_acked >= self.cwnd:
            self.bytes_acked -= self.cwnd
            self.cwnd += self.mss

    def on_congestion(self, flight: int, now: float) -> None:
        """RFC 5681 §3.2 step 2 (eq. 4): ssthresh = max(FlightSize/2, 2*SMSS)."""
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh
        self.bytes_acked = 0

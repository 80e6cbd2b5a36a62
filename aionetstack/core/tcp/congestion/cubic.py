"""CUBIC congestion control (RFC 9438)."""

from __future__ import annotations

from typing import Final

from .base import CongestionControl

__all__ = ["Cubic"]

#: RFC 9438 §4.6 / §5: beta_cubic = 0.7, C = 0.4.
BETA_CUBIC: Final = 0.7
C_CUBIC: Final = 0.4
#: RFC 9438 §4.3: alpha_cubic = 3 * (1 - beta) / (1 + beta) for the Reno-friendly region.
ALPHA_CUBIC: Final = 3 * (1 - BETA_CUBIC) / (1 + BETA_CUBIC)


class Cubic(CongestionControl):
    """The window grows as a cubic function of the time since the last congestion event.

    Computed in segments (floats) as the RFC writes it, applied to ``cwnd`` in bytes.
    """

    __slots__ = ("_epoch_start", "_growth", "_k", "_w_est", "_w_last_max", "_w_max")

    name = "cubic"

    def __init__(self, mss: int) -> None:
        super().__init__(mss)
        self._epoch_start: float | None = None
        self._w_max = 0.0
        self._w_last_max = 0.0
        self._k = 0.0
        self._w_est = 0.0
        self._growth = 0.0

    def on_ack(self, acked: int, flight: int, now: float, rtt: float | None) -> None:
        if self.in_slow_start:
            acked = self.slow_start(acked)
            if not acked:
                return
        mss = self.mss
        cwnd_segments = self.cwnd / mss
        if self._epoch_start is None:
            # RFC 9438 §4.2: a new congestion-avoidance epoch.
            self._epoch_start = now
            if self._w_max < cwnd_segments:
                self._w_max = cwnd_segments
                self._k = 0.0
            else:
                self._k = ((self._w_max - cwnd_segments) / C_CUBIC) ** (1 / 3)
            self._w_est = cwnd_segments
        elapsed = now - self._epoch_start + (rtt or 0.0)
        # RFC 9438 §4.2 eq. (1): W_cubic(t) = C*(t-K)^3 + W_max.
        target = C_CUBIC * (elapsed - self._k) ** 3 + self._w_max
        # RFC 9438 §4.3: the Reno-friendly estimate.
        self._w_est += ALPHA_CUBIC * (acked / mss) / cwnd_segments
        target = max(target, self._w_est)
        # RFC 9438 §4.4/§4.5: target clamped to [cwnd, 1.5*cwnd].
        target = min(max(target, cwnd_segments), 1.5 * cwnd_segments)
        # RFC 9438 §4.4: cwnd grows by (target - cwnd)/cwnd per segment ACKed.
        self._growth += (target - cwnd_segments) * acked / cwnd_segments
        if self._growth >= 1.0:
            whole = int(self._growth)
            self.cwnd += whole
            self._growth -= whole

    def on_congestion(self, flight: int, now: float) -> None:
        """RFC 9438 §4.6 (multiplicative decrease) and §4.7 (fast convergence)."""
        cwnd_segments = self.cwnd / self.mss
        if cwnd_segments < self._w_last_max:
            self._w_last_max = cwnd_segments
            self._w_max = cwnd_segments * (1 + BETA_CUBIC) / 2
        else:
            self._w_last_max = cwnd_segments
            self._w_max = cwnd_segments
        self.ssthresh = max(int(self.cwnd * BETA_CUBIC), 2 * self.mss)
        self.cwnd = self.ssthresh
        self._epoch_start = None
        self.bytes_acked = 0

    def on_timeout(self, flight: int, now: float) -> None:
        """RFC 9438 §4.8: after an RTO, ssthresh from beta_cubic and a fresh epoch."""
        cwnd_segments = self.cwnd / self.mss
        self._w_last_max = self._w_max = cwnd_segments
        self.ssthresh = max(int(flight * BETA_CUBIC), 2 * self.mss)
        self.cwnd = self.mss
        self._epoch_start = None
        self.bytes_acked = 0

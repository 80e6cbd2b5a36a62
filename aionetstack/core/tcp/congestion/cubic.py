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


class _CubicState:
    """CUBIC's variables (RFC 9438 §4.1), made at the first congestion avoidance or loss:
    a connection still in its first slow start (an idle one, say) carries none of them."""

    __slots__ = ("epoch_start", "growth", "k", "w_est", "w_last_max", "w_max")

    def __init__(self) -> None:
        self.epoch_start: float | None = None
        self.w_max = 0.0
        self.w_last_max = 0.0
        self.k = 0.0
        self.w_est = 0.0
        self.growth = 0.0


class Cubic(CongestionControl):
    """The window grows as a cubic function of the time since the last congestion event.

    Computed in segments (floats) as the RFC writes it, applied to ``cwnd`` in bytes.
    """

    __slots__ = ("_state",)

    name = "cubic"

    def __init__(self, mss: int) -> None:
        super().__init__(mss)
        self._state: _CubicState | None = None

    @property
    def _w_max(self) -> float:
        """W_max in segments (0 before the first congestion event)."""
        return self._state.w_max if self._state is not None else 0.0

    def on_ack(self, acked: int, flight: int, now: float, rtt: float | None) -> None:
        if self.in_slow_start:
            acked = self.slow_start(acked)
            if not acked:
                return
        state = self._state
        if state is None:
            state = self._state = _CubicState()
        mss = self.mss
        cwnd_segments = self.cwnd / mss
        if state.epoch_start is None:
            # RFC 9438 §4.2: a new congestion-avoidance epoch.
            state.epoch_start = now
            if state.w_max < cwnd_segments:
                state.w_max = cwnd_segments
                state.k = 0.0
            else:
                state.k = ((state.w_max - cwnd_segments) / C_CUBIC) ** (1 / 3)
            state.w_est = cwnd_segments
        elapsed = now - state.epoch_start + (rtt or 0.0)
        # RFC 9438 §4.2 eq. (1): W_cubic(t) = C*(t-K)^3 + W_max.
        target = C_CUBIC * (elapsed - state.k) ** 3 + state.w_max
        # RFC 9438 §4.3: the Reno-friendly estimate.
        state.w_est += ALPHA_CUBIC * (acked / mss) / cwnd_segments
        target = max(target, state.w_est)
        # RFC 9438 §4.4/§4.5: target clamped to [cwnd, 1.5*cwnd].
        target = min(max(target, cwnd_segments), 1.5 * cwnd_segments)
        # RFC 9438 §4.4: cwnd grows by (target - cwnd)/cwnd per segment ACKed.
        state.growth += (target - cwnd_segments) * acked / cwnd_segments
        if state.growth >= 1.0:
            whole = int(state.growth)
            self.cwnd += whole
            state.growth -= whole

    def on_congestion(self, flight: int, now: float) -> None:
        """RFC 9438 §4.6 (multiplicative decrease) and §4.7 (fast convergence)."""
        state = self._state
        if state is None:
            state = self._state = _CubicState()
        cwnd_segments = self.cwnd / self.mss
        if cwnd_segments < state.w_last_max:
            state.w_last_max = cwnd_segments
            state.w_max = cwnd_segments * (1 + BETA_CUBIC) / 2
        else:
            state.w_last_max = cwnd_segments
            state.w_max = cwnd_segments
        self.ssthresh = max(int(self.cwnd * BETA_CUBIC), 2 * self.mss)
        self.cwnd = self.ssthresh
        state.epoch_start = None
        self.bytes_acked = 0

    def on_timeout(self, flight: int, now: float) -> None:
        """RFC 9438 §4.8: after an RTO, ssthresh from beta_cubic and a fresh epoch."""
        state = self._state
        if state is None:
            state = self._state = _CubicState()
        cwnd_segments = self.cwnd / self.mss
        state.w_last_max = state.w_max = cwnd_segments
        self.ssthresh = max(int(flight * BETA_CUBIC), 2 * self.mss)
        self.cwnd = self.mss
        state.epoch_start = None
        self.bytes_acked = 0

"""Pluggable congestion control: NewReno (RFC 5681/6582) and CUBIC (RFC 9438)."""

from __future__ import annotations

from .base import CongestionControl, initial_window
from .cubic import Cubic
from .newreno import NewReno

__all__ = ["CongestionControl", "Cubic", "NewReno", "create_congestion_control", "initial_window"]

_ALGORITHMS: dict[str, type[CongestionControl]] = {"cubic": Cubic, "newreno": NewReno}


def create_congestion_control(name: str, mss: int) -> CongestionControl:
    """Return a controller by its config name (``"cubic"`` or ``"newreno"``)."""
    try:
        return _ALGORITHMS[name](mss)
    except KeyError:
        raise ValueError(f"unknown congestion control {name!r}") from None

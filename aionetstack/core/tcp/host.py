"""What a connection needs from the layer that owns it, as a concrete class.

:class:`TcpHost` is the base of :class:`~.layer.TcpLayer`: it declares the layer's
fields a connection reads or writes (its configuration, counters, event queue, the
clock, how segments leave) and the layer's methods a connection calls. The layer
defines them; each method here raises ``NotImplementedError``, the layer overrides
it. A connection is typed with this class, not with a Protocol, so that in the
compiled build (``aionetstack/compiled.py``) a connection's calls to its layer and
reads of its fields are native: a vtable call and a struct field, not a lookup by
name. This module imports nothing of the connection or the layer, so neither import
cycles back through it.

Methods taking ``connection`` are passed the connection itself; they are typed
loosely here because the layer, not this module, knows the concrete class.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from ...config import TcpConfig
from ..counts import Counts
from ..output import SegmentOutput

__all__ = ["TcpHost"]


class TcpHost:
    """The part of the TCP layer a connection uses; :class:`~.layer.TcpLayer` is the one
    implementation (see the module docstring)."""

    config: TcpConfig
    events: collections.deque[object]
    #: The counters behind ``count`` (the per-segment paths add to them directly).
    stats: Counts
    #: The counters every segment bumps, kept as ints (a ``Counts`` item costs a generic
    #: lookup and store): ``segments_in``, ``segments_out``, ``predicted_segments`` and
    #: ``predicted_acks`` of ``TcpLayer.statistics``, which adds them to ``stats``'.
    segments_in: int
    segments_out: int
    predicted_segments: int
    predicted_acks: int
    #: The time of the call the layer is handling (its last ``receive``, ``flush`` or timer).
    now: float
    #: Emit segments whose checksum the link completes (``TcpLayer``'s docstring).
    partial_checksums: bool
    #: With TSO: the most payload one emitted segment may carry (0: one MSS).
    max_segment_payload: int
    #: Over the stack's TCP ``memory_limit`` at the last check.
    memory_pressure: bool
    #: Where finished segments go: the IP layer's TCP output, or a test's callables.
    output: SegmentOutput
    mss_for: Callable[[bytes], int]

    def count(self, name: str, amount: int = 1) -> None:
        """Add to the named counter of ``statistics()``."""
        raise NotImplementedError

    def mark_dirty(self, connection: Any) -> None:
        """``connection`` has something to send at the next flush."""
        raise NotImplementedError

    def reschedule(self, connection: Any) -> None:
        """``connection``'s earliest deadline may have moved earlier."""
        raise NotImplementedError

    def forget(self, connection: Any) -> None:
        """``connection`` reached CLOSED: drop it from every table."""
        raise NotImplementedError

    def admit_orphan(self, connection: Any) -> bool:
        """Whether a closed connection may live on as an orphan (``max_orphans``)."""
        raise NotImplementedError

    def admit_time_wait(self, connection: Any) -> bool:
        """Whether a connection may enter TIME-WAIT (``max_time_wait``)."""
        raise NotImplementedError

    def allow_challenge_ack(self) -> bool:
        """RFC 5961 §7: may one more challenge ACK be sent now?"""
        raise NotImplementedError

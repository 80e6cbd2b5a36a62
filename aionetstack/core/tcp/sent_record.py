"""One transmitted segment in a connection's retransmission queue."""

from __future__ import annotations

__all__ = ["SentRecord"]


class SentRecord:
    """One transmitted segment in the retransmission queue (offsets are unwrapped)."""

    __slots__ = ("end", "lost", "retransmitted", "retransmitting", "sacked", "sent_at", "start")

    def __init__(self, start: int, end: int, sent_at: float) -> None:
        self.start = start
        self.end = end
        self.sent_at = sent_at
        self.sacked = False
        self.lost = False
        #: Ever retransmitted (Karn's rule, RFC 6298 §3).
        self.retransmitted = False
        #: Retransmitted since it was last marked lost (counts in the pipe, RFC 6675 §4).
        self.retransmitting = False

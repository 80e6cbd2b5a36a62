"""The loss-recovery variables of one connection, made at the first sign of loss.

A connection that has never seen a duplicate ACK, a SACK block, a retransmission
timeout or a lost segment holds :data:`NO_LOSS`, one shared instance whose fields
are all zero and empty; the first write makes the connection its own
:class:`LossState` (``Tcb._own_loss``), and an ACK that acknowledges everything
outside recovery gives it back. Most connections, idle ones above all, so carry
none of these fields.
"""

from __future__ import annotations

import collections
from typing import Final

from .sent_record import SentRecord

__all__ = ["NO_LOSS", "NO_RANGES", "LossState"]

#: The SACK scoreboard of every state without one (read-only: ``_process_sack`` makes
#: a connection its own pair of lists before changing them; an empty list is 56 bytes).
NO_RANGES: Final[list[int]] = []


class LossState:
    """The SACK scoreboard (RFC 6675), duplicate ACKs, the pipe's lost and retransmitted
    bytes, fast recovery's point and PRR counters (RFC 6582, RFC 6937), all in send
    offsets. Fields are read-only on :data:`NO_LOSS`."""

    __slots__ = (
        "dupacks",
        "fack_index",
        "highest_sacked",
        "lost_bytes",
        "prr_delivered",
        "prr_out",
        "recover",
        "recover_fs",
        "reno_sacked",
        "retrans_bytes",
        "retx_index",
        "retx_queue",
        "sack_ends",
        "sack_starts",
        "sacked_bytes",
    )

    def __init__(self) -> None:
        #: RFC 5681 §2 duplicate ACKs in a row.
        self.dupacks = 0
        #: Bytes SACKed, marked lost, and lost and being retransmitted (RFC 6675 §4 pipe).
        self.sacked_bytes = 0
        self.lost_bytes = 0
        self.retrans_bytes = 0
        #: Without SACK, the bytes the duplicate ACKs stand for (Linux's Reno emulation).
        self.reno_sacked = 0
        #: The end of the highest SACKed record (RFC 6675 HighACK's counterpart).
        self.highest_sacked = 0
        #: The SACK scoreboard as merged ranges (sorted): what the peer has SACKed, so a
        #: block repeating known ranges costs a bisect, not a walk.
        self.sack_starts: list[int] = NO_RANGES
        self.sack_ends: list[int] = NO_RANGES
        #: Retransmissions in the order they were sent, (sent_at, record), for RACK's
        #: lost-retransmission check (RFC 8985 §6.2); made at the first retransmission.
        self.retx_queue: collections.deque[tuple[float, SentRecord]] | None = None
        #: Record indexes where the next retransmission and the SACK loss scan resume.
        self.retx_index = 0
        self.fack_index = 0
        #: RFC 6582 §3.2 "recover": SND.NXT when recovery began (recovery ends above it).
        self.recover = 0
        #: RFC 6937 §3: RecoverFS, prr_delivered and prr_out.
        self.recover_fs = 1
        self.prr_delivered = 0
        self.prr_out = 0

    def has_marks(self, una: int | None = None) -> bool:
        """Whether any byte is SACKed, lost, retransmitted or counted by a duplicate ACK
        (or, given SND.UNA, SACKed above it): header prediction then steps aside."""
        return bool(
            self.lost_bytes
            or self.sacked_bytes
            or self.reno_sacked
            or self.retrans_bytes
            or (una is not None and self.highest_sacked > una)
        )


#: The loss state of every connection that has none of its own (never written).
NO_LOSS: Final = LossState()

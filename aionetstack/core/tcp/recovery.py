"""Loss recovery: the SACK scoreboard (RFC 2018, RFC 6675), what is lost (IsLost in
its byte form, RACK-style time marking of RFC 8985 §6.2, NewReno's head of RFC 6582),
fast recovery with proportional rate reduction (RFC 6937), the pipe, and the
retransmission of lost segments (RFC 6675 §5 NextSeg rule 1).

The RTO and tail loss probe timers that also start retransmissions are in
``timers.py``; ``check_invariants`` checks the scoreboard's bookkeeping.
"""

from __future__ import annotations

import collections
from bisect import bisect_left, bisect_right
from typing import Final

from ...wire.seq import seq_diff
from .loss_state import NO_LOSS, NO_RANGES
from .receive import _ReceiveSide
from .sent_record import SentRecord
from .tcb import Tcb

#: RFC 6675 §2 DupThresh.
DUP_THRESH: Final = 3


def _start_of(record: SentRecord) -> int:
    return record.start


def check_invariants(connection: Tcb) -> list[str]:
    """Recompute the scoreboard counters from the records (for tests and debugging)."""
    problems = []
    sacked = lost = retrans = 0
    records = connection._records[connection._head :]
    previous_end = connection._una
    sacked_ranges: list[list[int]] = []
    for record in records:
        size = record.end - record.start
        if record.start != previous_end:
            problems.append(f"gap/overlap at {record.start} (expected {previous_end})")
        previous_end = record.end
        if record.sacked:
            sacked += size
            if sacked_ranges and sacked_ranges[-1][1] == record.start:
                sacked_ranges[-1][1] = record.end
            else:
                sacked_ranges.append([record.start, record.end])
        elif record.lost:
            lost += size
            if record.retransmitting:
                retrans += size
    if records and previous_end != connection._nxt:
        problems.append(f"records end at {previous_end}, nxt is {connection._nxt}")
    if sacked != connection._loss.sacked_bytes:
        problems.append(f"sacked {connection._loss.sacked_bytes} != {sacked}")
    if lost != connection._loss.lost_bytes:
        problems.append(f"lost {connection._loss.lost_bytes} != {lost}")
    if retrans != connection._loss.retrans_bytes:
        problems.append(f"retrans {connection._loss.retrans_bytes} != {retrans}")
    una = connection._una
    board = [
        [max(start, una), end]
        for start, end in zip(connection._loss.sack_starts, connection._loss.sack_ends, strict=True)
        if end > una
    ]
    if board != sacked_ranges:
        problems.append(f"SACK scoreboard {board} != SACKed records {sacked_ranges}")
    return problems


class _Recovery(_ReceiveSide):
    """The recovery part of :class:`~.connection.TcpConnection` (see the module docstring)."""

    __slots__ = ()

    def _process_sack(self, blocks: tuple[tuple[int, int], ...]) -> None:
        """Mark SACKed records (RFC 2018 §5, RFC 6675 §4 Update()).

        A record is SACKed when one block covers all of it. The scoreboard keeps the
        union of the SACKed records as merged ranges, and each block is first cut to
        the records it covers entirely (two bisects); the parts the scoreboard already
        holds are then skipped, so an ACK repeating known blocks costs O(log n) however
        many records they cover (the SACK-slowness class, CVE-2019-11478), and each
        record is walked about once, when it becomes SACKed.
        """
        records = self._records
        head = self._head
        loss = self._own_loss()
        starts = loss.sack_starts
        ends = loss.sack_ends
        if starts is NO_RANGES:  # the first SACK: this connection's own scoreboard
            starts = loss.sack_starts = []
            ends = loss.sack_ends = []
        una = self._una
        base_seq = self._seq(una)
        for left, right in blocks:
            start = una + seq_diff(left, base_seq)
            end = una + seq_diff(right, base_seq)
            if end <= start or end <= una or end > self._nxt:
                continue  # a D-SACK below SND.UNA or garbage: ignore
            # Cut the block to whole records: [first record starting at or after start,
            # end of the last record ending at or before end).
            low = bisect_left(records, start, lo=head, key=_start_of)
            high = bisect_right(records, end, lo=head, key=_start_of) - 1
            if high >= head and records[high].end > end:
                high -= 1
            if low > high:
                continue  # covers no record entirely
            start, end = records[low].start, records[high].end
            loss.highest_sacked = max(loss.highest_sacked, end)
            first = bisect_left(ends, start)
            last = bisect_right(starts, end)
            if last - first == 1 and starts[first] <= start and end <= ends[first]:
                continue  # nothing new in this block
            position = start
            for index in range(first, last + 1):
                gap_end = starts[index] if index < last else end
                if gap_end > position:
                    self._mark_sacked(records, position, min(gap_end, end))
                if index < last:
                    position = max(position, ends[index])
            if last > first:
                start = min(start, starts[first])
                end = max(end, ends[last - 1])
            starts[first:last] = [start]
            ends[first:last] = [end]

    def _mark_sacked(self, records: list[SentRecord], start: int, end: int) -> None:
        """Mark the records in [start, end) (whole records, none of them SACKed yet)."""
        loss = self._loss  # its own: _process_sack made it
        index = bisect_left(records, start, lo=self._head, key=_start_of)
        while index < len(records) and records[index].start < end:
            record = records[index]
            if not record.sacked:
                size = record.end - record.start
                if record.lost:
                    record.lost = False
                    loss.lost_bytes -= size
                    if record.retransmitting:
                        loss.retrans_bytes -= size
                        record.retransmitting = False
                record.sacked = True
                loss.sacked_bytes += size
                self._rack_sent_at = max(self._rack_sent_at, record.sent_at)
            index += 1

    def _detect_loss(self, now: float) -> None:
        """Enter fast recovery on DupThresh evidence (RFC 5681 §3.2, RFC 6675 §5)."""
        loss = self._loss
        if loss is NO_LOSS:
            return  # no duplicate ACK, SACK or lost segment yet: nothing to detect
        if self._sack_ok and loss.highest_sacked > self._una:
            self._mark_lost_by_sack()
            self._mark_lost_by_time()
        if loss.retrans_bytes:
            self._detect_lost_retransmissions()
        elif loss.retx_queue:
            loss.retx_queue = None  # nothing is being retransmitted any more
        if self._recovery is None and (
            loss.dupacks >= DUP_THRESH or loss.lost_bytes > loss.retrans_bytes
        ):
            self._layer.count("fast_retransmits")
            self._tlp_deadline = None
            self._recovery = "fast"
            loss.recover = self._nxt
            # RFC 6937 §3: PRR state at the start of recovery.
            loss.prr_delivered = 0
            loss.prr_out = 0
            loss.recover_fs = max(self._flight_size(), 1)
            self._cc.on_congestion(self._flight_size(), now)
            if loss.lost_bytes <= loss.retrans_bytes:
                self._mark_head_lost()

    def _proportional_rate_reduction(self, delivered: int) -> None:
        """RFC 6937 §3 (PRR-SSRB): on each ACK in fast recovery, let cwnd = pipe + sndcnt,
        so the window comes down to ssthresh smoothly instead of in one silent step."""
        cc = self._cc
        loss = self._loss  # its own: fast recovery made it
        loss.prr_delivered += max(delivered, 0)
        pipe = self._flight()
        ssthresh = cc.ssthresh
        if pipe > ssthresh:
            # Proportional part: ceil(prr_delivered * ssthresh / RecoverFS) - prr_out.
            sndcnt = -(-loss.prr_delivered * ssthresh // loss.recover_fs) - loss.prr_out
        else:
            # Slow-start reduction bound: catch up to ssthresh, at most MSS beyond delivery.
            limit = max(loss.prr_delivered - loss.prr_out, delivered) + self._snd_mss
            sndcnt = min(ssthresh - pipe, limit)
        cc.cwnd = pipe + max(sndcnt, 0)

    def _mark_lost_by_sack(self) -> None:
        """RFC 6675 §4 IsLost(), in its byte form: a hole is lost once more than
        (DupThresh - 1) * SMSS bytes above it have been SACKed (forward ACK bound)."""
        records = self._records
        loss = self._loss  # its own: something is SACKed
        threshold = loss.highest_sacked - (DUP_THRESH - 1) * self._snd_mss
        index = max(loss.fack_index, self._head)
        while index < len(records):
            record = records[index]
            if record.end > threshold:
                break
            if not record.sacked and not record.lost:
                record.lost = True
                loss.lost_bytes += record.end - record.start
            index += 1
        loss.fack_index = index

    def _mark_lost_by_time(self) -> None:
        """RFC 8985 §6.2 (RACK): an unSACKed segment is lost once a segment sent after it,
        by more than the reordering window (a quarter of min RTT), has been delivered."""
        limit = self._rack_sent_at - (self._rtt.min_rtt or 0.0) / 4
        records = self._records
        loss = self._loss  # its own: something is SACKed
        index = max(self._rack_index, self._head)
        while index < len(records):
            record = records[index]
            if not (record.sacked or record.lost):
                if record.sent_at >= limit:
                    break
                record.lost = True
                loss.lost_bytes += record.end - record.start
                loss.retx_index = min(loss.retx_index, index)
            index += 1
        self._rack_index = index

    def _detect_lost_retransmissions(self) -> None:
        """RFC 8985 §6.2 in part: a retransmission is lost once a segment sent after it
        (by more than a quarter of min RTT, the reordering window) has been delivered.

        Retransmissions queue up in the order they were sent, so only the oldest few
        are looked at: constant work per ACK when amortised, whatever the flight."""
        limit = self._rack_sent_at - (self._rtt.min_rtt or 0.0) / 4
        loss = self._loss  # its own: something is being retransmitted
        queue = loss.retx_queue
        while queue:
            sent_at, record = queue[0]
            if record.retransmitting and record.sent_at == sent_at and record.end > self._una:
                if sent_at >= limit:
                    break
                record.retransmitting = False
                loss.retrans_bytes -= record.end - record.start
                self._layer.count("lost_retransmissions_detected")
                index = bisect_left(self._records, record.start, lo=self._head, key=_start_of)
                loss.retx_index = min(loss.retx_index, index)
            queue.popleft()

    def _mark_head_lost(self) -> None:
        """Mark the first un-SACKed outstanding record lost (NewReno, RFC 6582 §3.2)."""
        records = self._records
        loss = self._own_loss()
        for index in range(self._head, len(records)):
            record = records[index]
            if record.sacked:
                continue
            if not record.lost:
                record.lost = True
                loss.lost_bytes += record.end - record.start
                loss.retx_index = min(loss.retx_index, index)
            elif not record.retransmitting:
                loss.retx_index = min(loss.retx_index, index)
            return

    def _outstanding(self) -> int:
        return self._nxt - self._una

    def _flight_size(self) -> int:
        """RFC 5681 FlightSize: sent and not cumulatively ACKed."""
        return self._nxt - self._una

    def _flight(self) -> int:
        """RFC 6675 §4 pipe: outstanding minus SACKed and lost, plus retransmitted.

        Without SACK, each duplicate ACK stands for one segment that left the network
        (``_reno_sacked``, as Linux's Reno emulation); that estimate can overlap the lost
        head, so the result is clamped at zero.
        """
        loss = self._loss
        if loss is NO_LOSS:
            return self._nxt - self._una
        pipe = (
            self._nxt
            - self._una
            - loss.sacked_bytes
            - loss.reno_sacked
            - loss.lost_bytes
            + loss.retrans_bytes
        )
        return pipe if pipe > 0 else 0

    def _retransmit_lost(self, now: float) -> None:
        """RFC 6675 §5 NextSeg() rule 1: retransmit lost segments while pipe < cwnd."""
        records = self._records
        loss = self._own_loss()
        index = max(loss.retx_index, self._head)
        cwnd = self._cc.cwnd
        while index < len(records) and loss.lost_bytes > loss.retrans_bytes:
            record = records[index]
            if record.sacked or (record.lost and record.retransmitting):
                index += 1
                continue
            if not record.lost:
                break
            if self._flight() + (record.end - record.start) > cwnd and self._flight() > 0:
                break
            self._transmit(record.start, record.end, now)
            record.retransmitting = True
            record.retransmitted = True
            record.sent_at = now
            queue = loss.retx_queue
            if queue is None:
                queue = loss.retx_queue = collections.deque()
            queue.append((now, record))
            loss.retrans_bytes += record.end - record.start
            self._layer.count("segments_retransmitted")
            index += 1
        loss.retx_index = index

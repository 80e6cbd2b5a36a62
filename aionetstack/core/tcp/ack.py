"""ACK processing, the send side's half of RFC 9293 §3.10.7.4 fifth.

SND.UNA advances (trimming the retransmission queue and the send buffer), the send
window updates from newer segments (SND.WL1/WL2), RTT samples (RFC 6298 with Karn's
rule, RFC 7323 §4.2 timestamps), the congestion controller hears of delivered bytes
(RFC 5681), HyStart++ may end slow start (RFC 9406), and an acknowledged FIN moves
FIN-WAIT-1, CLOSING and LAST-ACK on. Loss detection from duplicate ACKs and SACK is
in ``recovery.py``.
"""

from __future__ import annotations

from bisect import bisect_right

from ...wire.tcp import TcpOptions
from .events import TcpWritable
from .hystart import HyStartRounds
from .loss_state import NO_LOSS
from .recovery import _Recovery
from .sent_record import SentRecord
from .state import APP_CAN_SEND, TcpState
from .tcb import _SEQ_HALF, _SEQ_MASK, NO_RECORDS, NO_SEND_BUFFER, TS_HZ


class _AckProcessing(_Recovery):
    """The ack part of :class:`~.connection.TcpConnection` (see the module docstring)."""

    __slots__ = ()

    def _process_ack(  # noqa: PLR0917
        self, seq: int, ack: int, window: int, options: TcpOptions | None, length: int, now: float
    ) -> bool:
        """Returns False when the segment must be dropped."""
        ack_off = self._ack_offset(ack)
        una = self._una
        if ack_off > self._nxt:
            # RFC 9293 §3.10.7.4: ACK for something not yet sent: send ACK, drop.
            self._layer.count("drops_ack_too_new")
            if self._may_reply_to_invalid("ack_too_new", length=length, now=now):
                self._ack_now = True
                self._layer.mark_dirty(self)
            return False
        if ack_off < una - max(self._max_snd_wnd, 1):
            # RFC 5961 §5.2: too old to be acceptable; challenge.
            self._layer.count("drops_ack_too_old")
            self._challenge_ack("old_ack")
            return False
        self._keepalive_probes = 0
        self._probes_out = 0  # the peer answers: zero-window probes are not unanswered
        sack_blocks = options.sack_blocks if options is not None and self._sack_ok else ()
        old_wnd = self._snd_wnd
        loss = self._loss
        delivered_before = una + loss.sacked_bytes + loss.reno_sacked
        # RFC 9293 §3.10.7.4: update the send window from newer segments only.
        seq_off = self._rcv_offset_of(seq)
        if seq_off > self._snd_wl1 or (seq_off == self._snd_wl1 and ack_off >= self._snd_wl2):
            self._snd_wl1 = seq_off
            self._snd_wl2 = ack_off
            self._update_send_window(window)
        if ack_off > una:
            self._ack_new_data(ack_off, options, now)
        elif ack_off == una and length == 0 and self._nxt > una and self._snd_wnd == old_wnd:
            # RFC 5681 §2 "duplicate acknowledgment".
            loss = self._own_loss()
            loss.dupacks += 1
            self._layer.count("duplicate_acks_received")
            if not self._sack_ok:
                # Each one stands for a segment that left the network (Reno emulation).
                ceiling = self._outstanding() - (1 if self._recovery is None else 0)
                loss.reno_sacked = min(loss.reno_sacked + self._snd_mss, ceiling)
        if sack_blocks:
            self._process_sack(sack_blocks)
        if self._nxt > self._una:
            self._detect_loss(now)
        if self._recovery == "fast":
            loss = self._loss
            delivered = self._una + loss.sacked_bytes + loss.reno_sacked - delivered_before
            self._proportional_rate_reduction(delivered)
        self._stop_persist_if_window_open()
        self._layer.mark_dirty(self)
        self._after_ack_state_changes(now)
        return True

    def _ack_new_data(self, ack_off: int, options: TcpOptions | None, now: float) -> None:
        """SND.UNA advances (RFC 9293 §3.10.7.4; RFC 6298 §5; RFC 5681 §3)."""
        acked = ack_off - self._una
        flight = self._flight()
        records = self._records
        head = self._head
        rtt_sample: float | None = None
        since_last_send: float | None = None
        # Trim the retransmission queue.
        count = len(records)
        rack_sent_at = self._rack_sent_at
        while head < count:
            record = records[head]
            if record.end > ack_off:
                break
            if record.sacked or record.lost:
                self._forget(record)
            sent_at = record.sent_at
            rack_sent_at = max(rack_sent_at, sent_at)
            elapsed = now - sent_at
            if since_last_send is None or elapsed < since_last_send:
                since_last_send = elapsed
            if not record.retransmitted:
                rtt_sample = since_last_send
            head += 1
        self._rack_sent_at = rack_sent_at
        loss = self._loss
        if head < count and records[head].start < ack_off:
            record = records[head]
            cut = ack_off - record.start
            if record.sacked:  # a SACKed or lost record: the connection has its own state
                loss.sacked_bytes -= cut
            elif record.lost:
                loss.lost_bytes -= cut
                if record.retransmitting:
                    loss.retrans_bytes -= cut
            record.start = ack_off
        self._head = head
        if head == count:
            if count:  # everything sent is acknowledged: an idle connection keeps no records
                self._records = NO_RECORDS
                self._head = self._rack_index = 0
                if loss is not NO_LOSS:
                    loss.retx_index = loss.fack_index = 0
                # RACK's newest delivered send time matters only against records sent
                # before it (RFC 8985 §6.2): with none left, 0.0 acts alike and is shared.
                self._rack_sent_at = 0.0
        elif head > 256 and head * 2 > len(records):
            del records[:head]
            if loss is not NO_LOSS:
                loss.retx_index = max(loss.retx_index - head, 0)
                loss.fack_index = max(loss.fack_index - head, 0)
            self._rack_index = max(self._rack_index - head, 0)
            self._head = 0
        # Trim the send buffer (data offsets start at 1; FIN sits after the data).
        sbuf_start = self._sbuf_start
        data_end = sbuf_start + self._sbuf.size
        data_acked_to = ack_off if ack_off < data_end else data_end
        if data_acked_to > sbuf_start:
            sbuf = self._sbuf
            sbuf.release(data_acked_to - sbuf_start)
            self._sbuf_start = data_acked_to
            if not sbuf.size:  # all written data acknowledged: the buffer goes back
                self._sbuf = NO_SEND_BUFFER
        self._una = ack_off
        sack_ends = loss.sack_ends
        if sack_ends and sack_ends[0] <= ack_off:  # scoreboard ranges now below SND.UNA
            below = bisect_right(sack_ends, ack_off)
            del sack_ends[:below]
            del loss.sack_starts[:below]
        if loss.dupacks:
            loss.dupacks = 0
        if loss.reno_sacked:
            loss.reno_sacked = max(loss.reno_sacked - acked, 0)
        self._retries = 0
        self._retrans_stamp = None
        # RTT: timestamps (RFC 7323 §4.2) or Karn's rule (RFC 6298 §3).
        samples_before = self._rtt.samples
        if self._ts_ok and options is not None and options.timestamp is not None:
            self._rtt_sample_ts(options.timestamp[1], now, since_last_send)
        elif rtt_sample is not None:
            self._rtt.sample(rtt_sample)
        self._rtt.reset_backoff()
        cc = self._cc
        # RFC 9438 §5.8 (as Linux tcp_is_cwnd_limited): a sender the application leaves
        # short of its window, and so of a signal about it, does not grow cwnd: not in
        # slow start once cwnd is twice the flight, nor after it unless the flight filled it.
        # (A request/response exchange would otherwise inflate cwnd without limit.)
        cwnd_limited = (
            flight + self._snd_mss > cc.cwnd
            or self._sbuf_start + self._sbuf.size > self._nxt
            or (cc.cwnd < 2 * flight and cc.cwnd < cc.ssthresh)
        )
        if (
            cwnd_limited
            and self._rtt.samples != samples_before
            and cc.cwnd < cc.ssthresh
            and self._recovery is None
        ):
            self._hystart(ack_off)
        # Congestion control.
        if self._recovery is not None and ack_off >= loss.recover:
            if self._recovery == "fast":
                # RFC 6937 §3 / RFC 6675 §5: recovery ends with cwnd = ssthresh.
                self._cc.cwnd = max(self._cc.ssthresh, self._snd_mss)
                self._cc.on_recovery_end(now)
            self._recovery = None
        if loss is not NO_LOSS and self._records is NO_RECORDS and self._recovery is None:
            # Everything sent is acknowledged, recovery is over: the scoreboard is empty,
            # the counters are zero and "recover" lies below SND.UNA, so the shared zeros
            # stand for this connection's loss state again.
            self._loss = NO_LOSS
        if self._recovery is None or self._recovery == "loss":
            if cwnd_limited:
                cc.on_ack(acked, flight, now, self._rtt.srtt)
        elif not self._sack_ok:
            # RFC 6582 §3.2 step 5: a partial ACK: the next segment is lost too.
            self._mark_head_lost()
        # RFC 6298 §5.2/§5.3: restart or stop the retransmission timer.
        self._rto_deadline = now + self._rtt.rto if self._nxt > self._una else None
        # RFC 8985 §7.2: every ACK of new data restarts the probe timeout.
        self._tlp_probe_out = False
        self._arm_tlp(now)
        if self._want_writable and self._sbuf_limit - self._sbuf.size >= self._sbuf_limit // 2:
            self._want_writable = False
            if self.state in APP_CAN_SEND and not self._fin_queued:
                self._layer.events.append(TcpWritable(self))

    def _hystart(self, ack_off: int) -> None:
        """HyStart++ (RFC 9406 §4.2): a round's RTT rise ends slow start (ssthresh = cwnd)."""
        if not self._config.hystart:
            return
        sample = self._rtt.latest_rtt
        assert sample is not None
        rounds = self._hs
        if rounds is None:
            rounds = self._hs = HyStartRounds()
        cc = self._cc
        if rounds.delay_increased(ack_off, self._nxt, sample, cc.cwnd, self._snd_mss):
            self._layer.count("hystart_exits")
            cc.ssthresh = cc.cwnd

    def _forget(self, record: SentRecord) -> None:
        """Remove a cumulatively ACKed record's share from the pipe counters."""
        size = record.end - record.start
        loss = self._loss  # its own: the record is SACKed or lost
        if record.sacked:
            loss.sacked_bytes -= size
        elif record.lost:
            loss.lost_bytes -= size
            if record.retransmitting:
                loss.retrans_bytes -= size

    def _rtt_sample_ts(self, tsecr: int, now: float, bound: float | None = None) -> None:
        """RFC 7323 §4.2: RTT from TSecr (valid even for retransmissions).

        An ACK for a duplicate echoes the TSval of the original (RFC 7323 §4.3), which
        can be far older than our last transmission when ACKs were lost; ``bound`` (time
        since the most recent transmission among the ACKed records) caps such samples,
        so lost ACKs cannot inflate the RTO in a feedback loop.
        """
        elapsed = (self._ts_now(now) - tsecr) & _SEQ_MASK
        if tsecr and elapsed < _SEQ_HALF:
            sample = elapsed / TS_HZ
            if bound is not None and bound < sample:
                sample = bound
            self._rtt.sample(sample)

    def _stop_persist_if_window_open(self) -> None:
        """An ACK with an open window ends zero-window probing (RFC 9293 §3.8.6.1)."""
        if self._snd_wnd and self._persist_deadline is not None:
            self._persist_deadline = None
            self._persist_backoff = 0
            self._persist_started = None

    def _update_send_window(self, window: int) -> None:
        """SND.WND from a segment's window field. An unchanged window keeps its object, and
        a window at its largest is one object in both fields (an idle connection's)."""
        wnd = window << self._snd_wscale
        if wnd != self._snd_wnd:
            self._snd_wnd = wnd
            self._max_snd_wnd = max(wnd, self._max_snd_wnd)  # a tie keeps wnd: one object

    def _after_ack_state_changes(self, now: float) -> None:
        """FIN acknowledged: FIN-WAIT-1/CLOSING/LAST-ACK transitions (RFC 9293 §3.10.7.4 fifth)."""
        state = self.state
        fin_acked = self._fin_sent() and self._una >= self._fin_end()
        if not fin_acked:
            return
        if state is TcpState.FIN_WAIT_1:
            self._set_state(TcpState.FIN_WAIT_2)
            if self._orphan:
                self._fin_wait_deadline = now + self._config.fin_wait_2_timeout
        elif state is TcpState.CLOSING:
            self._enter_time_wait(now)
        elif state is TcpState.LAST_ACK:
            self._finish(None)

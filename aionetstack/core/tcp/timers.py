"""The connection's deadlines and what happens when each fires: retransmission
timeout (RFC 6298, with SYN retries and the retry limits that end in TimeoutError),
tail loss probe (RFC 8985 §7), zero-window probes (the persist timer, RFC 9293
§3.8.6.1), keepalive (RFC 1122 §4.2.3.6), delayed ACK, FIN-WAIT-2 and TIME-WAIT
(2 MSL). ``next_deadline`` gives the layer's timer heap the earliest of them.
"""

from __future__ import annotations

import errno
from typing import Final

from ...wire.tcp import ACK, RST
from .loss_state import NO_RANGES
from .opening import _Opening
from .sent_record import SentRecord
from .state import SENDS_DATA, SYNCHRONIZED, TcpState
from .tcb import NO_RECORDS

#: RFC 8985 §7.2: worst-case delayed-ACK time added to the PTO when one segment is in flight.
TLP_DELAYED_ACK_ALLOWANCE: Final = 0.2
#: A floor on the PTO (Linux uses two jiffies, 10 ms at HZ=200 .. 2 ms at HZ=1000).
TLP_MIN_PTO: Final = 0.01


def _timeout_error(message: str, cause: OSError | None) -> TimeoutError:
    error = TimeoutError(errno.ETIMEDOUT, message)
    error.__cause__ = cause
    return error


class _Timers(_Opening):
    """The timers part of :class:`~.connection.TcpConnection` (see the module docstring)."""

    __slots__ = ()

    def next_deadline(self) -> float | None:
        """The earliest of this connection's timers."""
        # Unrolled: this runs after every segment in and every flush.
        best = self._rto_deadline
        deadline = self._delack_deadline
        if deadline is not None and (best is None or deadline < best):
            best = deadline
        deadline = self._tlp_deadline
        if deadline is not None and (best is None or deadline < best):
            best = deadline
        deadline = self._keepalive_deadline
        if deadline is not None and (best is None or deadline < best):
            best = deadline
        deadline = self._persist_deadline
        if deadline is not None and (best is None or deadline < best):
            best = deadline
        deadline = self._time_wait_deadline
        if deadline is not None and (best is None or deadline < best):
            best = deadline
        deadline = self._fin_wait_deadline
        if deadline is not None and (best is None or deadline < best):
            best = deadline
        return best

    def on_timer(self, now: float) -> None:
        """Run every timer that is due (early or duplicate calls do nothing)."""
        if self._time_wait_deadline is not None and now >= self._time_wait_deadline:
            self._time_wait_deadline = None
            self._layer.count("time_wait_expired")
            self._set_state(TcpState.CLOSED)
            self._layer.forget(self)
            return
        if self._fin_wait_deadline is not None and now >= self._fin_wait_deadline:
            self._fin_wait_deadline = None
            if self.state is TcpState.FIN_WAIT_2:
                self._layer.count("orphans_fin_wait_2_timeout")
                self._finish(None)
                return
        if self._tlp_deadline is not None and now >= self._tlp_deadline:
            self._tlp_deadline = None
            self._tail_loss_probe(now)
        if self._rto_deadline is not None and now >= self._rto_deadline:
            self._rto_deadline = None
            self._retransmission_timeout(now)
            if self.state is TcpState.CLOSED:
                return
        if self._persist_deadline is not None and now >= self._persist_deadline:
            self._persist_deadline = None
            self._persist_probe(now)
            if self.state is TcpState.CLOSED:
                return
        if self._keepalive_deadline is not None and now >= self._keepalive_deadline:
            self._keepalive_deadline = None
            self._keepalive_fire(now)
            if self.state is TcpState.CLOSED:
                return
        if self._delack_deadline is not None and now >= self._delack_deadline:
            self._delack_deadline = None
            self._ack_now = True
        self.output(now)
        if self._keepalive and self._keepalive_deadline is None:
            self._arm_keepalive(now)

    def _own_records(self) -> list[SentRecord]:
        """The retransmission records, as this connection's own list (see ``NO_RECORDS``)."""
        records = self._records
        if records is NO_RECORDS:
            records = self._records = []
        return records

    def _retransmission_timeout(self, now: float) -> None:
        """RFC 6298 §5.4-5.6: retransmit the earliest segment, back off, restart."""
        state = self.state
        config = self._config
        self._layer.count("retransmission_timeouts")
        self._retries += 1
        if state is TcpState.SYN_SENT or state is TcpState.SYN_RECEIVED:
            limit = (
                config.syn_retries
                if state is TcpState.SYN_SENT or self.listener is None
                else config.synack_retries
            )
            if self._retrans_stamp is None:
                self._retrans_stamp = self._syn_time  # the first SYN (this is its first RTO)
            if self._user_timeout and now - self._retrans_stamp >= self._user_timeout:
                self._layer.count("user_timeouts")  # Linux applies it to SYNs as well
                self._give_up(now)
                return
            if self._retries > limit:
                self._give_up(now)
                return
            self._rtt.back_off()
            self._rto_deadline = now + self._rtt.rto
            self._layer.count("segments_retransmitted")
            self._send_syn(now)
            return
        if self._nxt <= self._una:
            return
        if self._retrans_stamp is None:
            head = self._records[self._head] if self._head < len(self._records) else None
            self._retrans_stamp = head.sent_at if head is not None else now
        if self._orphan and self._retries > config.orphan_retries:
            self._layer.count("orphans_retries_exhausted")  # Linux tcp_orphan_retries
            self._give_up(now)
            return
        if self._user_timeout and now - self._retrans_stamp >= self._user_timeout:
            self._layer.count("user_timeouts")  # RFC 5482, Linux TCP_USER_TIMEOUT
            self._give_up(now)
            return
        if self._retries > config.data_retries:
            self._give_up(now)
            return
        self._cc.on_timeout(self._flight_size(), now)
        self._rtt.back_off()
        records = self._records
        loss = self._own_loss()
        # RFC 2018 §8 / RFC 6675 §5.1: SACKed data at SND.UNA means the receiver reneged.
        reneged = self._head < len(records) and records[self._head].sacked
        for index in range(self._head, len(records)):
            record = records[index]
            if record.sacked and reneged:
                record.sacked = False
                loss.sacked_bytes -= record.end - record.start
            if record.sacked:
                continue
            if record.retransmitting:
                record.retransmitting = False
                loss.retrans_bytes -= record.end - record.start
            if not record.lost:
                record.lost = True
                loss.lost_bytes += record.end - record.start
        loss.retx_queue = None
        if reneged:
            loss.highest_sacked = self._una
            loss.sack_starts = loss.sack_ends = NO_RANGES
        loss.reno_sacked = 0
        loss.dupacks = 0
        loss.retx_index = self._head
        loss.fack_index = self._head
        self._rack_index = self._head
        self._recovery = "loss"
        loss.recover = self._nxt
        self._rto_deadline = now + self._rtt.rto
        self._tlp_deadline = None
        self._retransmit_lost(now)

    def _give_up(self, now: float) -> None:
        self._layer.count("connections_timed_out")
        if self.state is TcpState.SYN_RECEIVED and self.listener is not None:
            self._finish(None)
            return
        if self.state in SYNCHRONIZED:
            self._send_control(self._seq(self._nxt), RST | ACK, now)
        self._finish(_timeout_error("TCP retransmission limit reached", self._soft_error))

    def _arm_tlp(self, now: float) -> None:
        """RFC 8985 §7.2: schedule a tail loss probe (PTO) if one may be sent."""
        if self._nxt <= self._una:  # nothing in flight (first: the commonest reason)
            self._tlp_deadline = None
            return
        srtt = self._rtt.srtt
        if (
            srtt is None
            or self._recovery is not None
            or self._tlp_probe_out
            or not self._sack_ok
            or not self._config.tail_loss_probe
            or self._nxt <= self._una
            or self.state not in SENDS_DATA
        ):
            self._tlp_deadline = None
            return
        pto = 2 * srtt
        if self._nxt - self._una <= self._snd_mss:
            pto += TLP_DELAYED_ACK_ALLOWANCE
        deadline = now + (pto if pto > TLP_MIN_PTO else TLP_MIN_PTO)
        if self._rto_deadline is not None and deadline >= self._rto_deadline:
            self._tlp_deadline = None  # the RTO comes first anyway
            return
        self._tlp_deadline = deadline

    def _tail_loss_probe(self, now: float) -> None:
        """RFC 8985 §7.3: send one new segment if the peer's window allows, else resend the
        last one, so that its ACK (with SACK) lets fast recovery repair the tail."""
        if self._nxt <= self._una or self._recovery is not None or self.state not in SENDS_DATA:
            return
        self._layer.count("tail_loss_probes")
        self._tlp_probe_out = True
        data_end = self._sbuf_start + self._sbuf.size
        room = self._una + self._snd_wnd - self._nxt
        if data_end > self._nxt and room > 0:
            start = self._nxt
            size = min(data_end - start, self._snd_mss, room)
            end = start + size
            if self._fin_queued and end == data_end:
                end += 1
            self._transmit(start, end, now)
            self._own_records().append(SentRecord(start, end, now))
            self._nxt = end
        else:
            records = self._records
            for index in range(len(records) - 1, self._head - 1, -1):
                record = records[index]
                if not record.sacked:
                    self._transmit(record.start, record.end, now)
                    record.retransmitted = True
                    record.sent_at = now
                    self._layer.count("segments_retransmitted")
                    break
        self._rto_deadline = now + self._rtt.rto  # §7.3: the RTO restarts after a probe

    def _arm_persist(self, now: float) -> None:
        """RFC 9293 §3.8.6.1: probe a zero window with backed-off timeouts."""
        if self._persist_deadline is None:
            timeout = min(
                self._rtt.rto_base * (1 << min(self._persist_backoff, 20)), self._rtt.max_rto
            )
            self._persist_deadline = now + timeout

    def _persist_probe(self, now: float) -> None:
        """Window probe: SND.UNA - 1 with no data makes the peer re-announce its window."""
        if self._nxt != self._una or self._data_end() <= self._nxt or self.state not in SENDS_DATA:
            self._persist_backoff = 0
            self._persist_started = None
            return
        if self._snd_wnd > 0 and self._snd_wnd < self._snd_mss:
            # A small window that Nagle/SWS held back: after the persist timeout, fill it.
            size = min(self._snd_wnd, self._data_end() - self._nxt)
            end = self._nxt + size
            self._transmit(self._nxt, end, now)
            self._own_records().append(SentRecord(self._nxt, end, now))
            self._nxt = end
            self._rto_deadline = now + self._rtt.rto
            return
        if self._persist_started is None:
            self._persist_started = now
        config = self._config
        if self._orphan and self._persist_backoff >= config.orphan_retries:
            # Linux tcp_probe_timer: an orphan is not probed forever, answered or not.
            self._layer.count("orphans_zero_window_aborted")
            self._abort_timed_out("TCP zero-window probing of a closed connection gave up", now)
            return
        if self._probes_out >= config.data_retries:
            self._layer.count("zero_window_probes_unanswered")  # Linux icsk_probes_out
            self._abort_timed_out("TCP zero-window probes went unanswered", now)
            return
        if self._user_timeout and now - self._persist_started >= self._user_timeout:
            self._layer.count("user_timeouts")
            self._abort_timed_out("TCP user timeout: the peer's window stayed closed", now)
            return
        self._layer.count("window_probes_sent")
        self._persist_backoff += 1
        self._probes_out += 1
        self._emit(self._seq(self._una - 1), self._rcv_nxt, ACK, -1, None, now)
        self._arm_persist(now)

    def _abort_timed_out(self, message: str, now: float) -> None:
        """Give up on a connection whose peer keeps its window closed: RST, TimeoutError."""
        self._send_control(self._seq(self._nxt), RST | ACK, now)
        self._finish(_timeout_error(message, self._soft_error))

    def _arm_keepalive(self, now: float) -> None:
        if self.state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT):
            config = self._config
            base = self._last_received
            interval = (
                config.keepalive_idle if self._keepalive_probes == 0 else config.keepalive_interval
            )
            self._keepalive_deadline = (
                max(base + interval, now) if self._keepalive_probes == 0 else now + interval
            )

    def _keepalive_fire(self, now: float) -> None:
        """RFC 1122 §4.2.3.6: probe an idle connection; give up after the configured count."""
        config = self._config
        if self.state not in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT) or not self._keepalive:
            return
        if self._keepalive_probes == 0 and now < self._last_received + config.keepalive_idle:
            self._keepalive_deadline = self._last_received + config.keepalive_idle
            return
        if self._nxt > self._una:
            self._keepalive_deadline = now + config.keepalive_interval
            return  # the retransmission timer is watching the connection
        # Linux tcp_keepalive_timer: with a user timeout, the silence since the last
        # segment received decides (once a probe went unanswered), not the probe count.
        if (
            self._keepalive_probes
            and self._user_timeout
            and now - self._last_received >= self._user_timeout
        ) or (not self._user_timeout and self._keepalive_probes >= config.keepalive_probes):
            self._layer.count("keepalive_timeouts")
            self._send_control(self._seq(self._nxt), RST | ACK, now)
            self._finish(_timeout_error("TCP keepalive timed out", self._soft_error))
            return
        self._keepalive_probes += 1
        self._layer.count("keepalive_probes_sent")
        self._emit(self._seq(self._una - 1), self._rcv_nxt, ACK, -1, None, now)
        self._keepalive_deadline = now + config.keepalive_interval

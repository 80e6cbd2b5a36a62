"""SEGMENT ARRIVES (RFC 9293 §3.10.7.3-§3.10.7.4) for a connection that exists.

Where to look: header prediction (``_predicted_segment``, the commonest in-order
segment in ESTABLISHED) first; then SYN-SENT (``_syn_sent_arrives``); then, for every
synchronized state, ``segment_arrives`` walks the RFC's steps as sections: PAWS
(RFC 7323 §5), first (sequence acceptability), second (RST, RFC 5961 §3), fourth
(SYN, RFC 5961 §4), fifth (ACK: the handshake-completing ACK of SYN-RECEIVED here,
the rest in ``ack.py``), seventh and eighth (text and FIN: ``receive.py``).
TIME-WAIT reuse by a new SYN (RFC 6191) is decided here too.
"""

from __future__ import annotations

import errno
from typing import Final

from ...wire.seq import seq_diff
from ...wire.tcp import ACK, FIN, RST, SYN, URG, TcpOptions
from .ack import _AckProcessing
from .events import TcpReadable
from .loss_state import NO_LOSS
from .receive import _owned
from .receive_buffer import ReceiveBuffer
from .state import RECEIVES_DATA, TcpState
from .tcb import _SEQ_HALF, _SEQ_MASK, _TS_OPTION_LENGTH, NO_RECEIVE_BUFFER

#: RFC 7323 §5.5: timestamps idle for 24 days are no longer trusted for PAWS.
PAWS_IDLE_LIMIT: Final = 24 * 24 * 3600.0
#: Header prediction looks at segments whose only control bit among these is ACK.
_PREDICTION_MASK: Final = FIN | SYN | RST | ACK | URG


class _Ingress(_AckProcessing):
    """The ingress part of :class:`~.connection.TcpConnection` (see the module docstring)."""

    __slots__ = ()

    def segment_arrives(  # noqa: PLR0917
        self,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        options: TcpOptions | None,
        payload: bytes | memoryview,
        now: float,
    ) -> bool:
        """Process one segment. Returns True when a TIME-WAIT connection should be
        replaced by a new one for this SYN (RFC 9293 §3.10.7.4, RFC 6191)."""
        state = self.state
        if (
            state is TcpState.ESTABLISHED
            and flags & _PREDICTION_MASK == ACK
            and seq == self._rcv_nxt
            and self._predicted_segment(ack, window, options, payload, now)
        ):
            return False
        if state is TcpState.SYN_SENT:
            self._syn_sent_arrives(seq, ack, flags, window, options, payload, now)
            return False
        if state is TcpState.CLOSED:
            return False
        self._last_received = now
        if (
            state is TcpState.SYN_RECEIVED
            and flags & SYN
            and not flags & ACK
            and seq == (self._rcv_nxt - 1) & _SEQ_MASK  # the peer's ISN again
        ):
            # Our SYN-ACK was lost: the peer retransmitted its SYN. Answer again.
            self._layer.count("syn_retransmits_received")
            self._send_syn(now)
            return False
        if (
            state is TcpState.TIME_WAIT
            and flags & SYN
            and not flags & (ACK | RST)
            and self._may_reopen_time_wait(seq, options)
        ):
            return True
        tsval = -1
        if self._ts_ok and options is not None and options.timestamp is not None:
            tsval = options.timestamp[0]
            # RFC 7323 §5.3 R1: PAWS.
            if (
                not flags & RST
                and ((tsval - self._ts_recent) & _SEQ_MASK) >= _SEQ_HALF
                and now - self._ts_recent_time < PAWS_IDLE_LIMIT
            ):
                self._layer.count("drops_paws")
                if self._may_reply_to_invalid(
                    "paws", length=0 if flags & SYN else len(payload) + (flags & FIN), now=now
                ):
                    self._ack_now = True
                    self._layer.mark_dirty(self)
                return False
        length = len(payload)
        seg_len = length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        # --- first: sequence number check (RFC 9293 §3.10.7.4) ---
        wnd = self._rcv_adv - self._rcv_off
        offset = seq_diff(seq, self._rcv_nxt)
        if not self._acceptable(offset, seg_len, wnd):
            if not flags & RST:
                self._layer.count("drops_out_of_window")
                # Duplicate or old data (or FIN) is always re-acknowledged; other segments
                # at most once per invalid_ratelimit (an ACK loop or a flood gets nothing
                # more). As Linux tcp_oow_rate_limited: exempt when it occupies sequence
                # space and carries no SYN.
                if self._may_reply_to_invalid(
                    "out_of_window", length=0 if flags & SYN else seg_len, now=now
                ):
                    self._ack_now = True
                    self._layer.mark_dirty(self)
                if state is TcpState.TIME_WAIT and flags & FIN:
                    # RFC 9293 §3.10.7.4 eighth: a retransmitted FIN restarts the 2 MSL timeout.
                    self._time_wait_deadline = now + 2 * self._config.msl
            else:
                self._layer.count("drops_rst_out_of_window")
            return False
        # --- second: RST (RFC 5961 §3.2) ---
        if flags & RST:
            if offset == 0:
                self._reset_received()
            else:
                self._challenge_ack("rst")
            return False
        # --- fourth: SYN (RFC 5961 §4.2, RFC 9293 §3.10.7.4) ---
        if flags & SYN:
            if state is TcpState.SYN_RECEIVED and self.listener is not None:
                self._layer.count("resets_syn_in_syn_received")
                self._finish(None)
                return False
            self._challenge_ack("syn")
            return False
        # --- fifth: ACK ---
        if not flags & ACK:
            self._layer.count("drops_no_ack")
            return False
        if state is TcpState.SYN_RECEIVED:
            ack_off = self._ack_offset(ack)
            if not 0 < ack_off <= self._nxt:
                self._send_control(ack, RST, now)
                self._layer.count("resets_bad_ack_in_syn_received")
                return False
            if self.listener is not None and not self.listener.enqueue_established(self):
                self._layer.count("drops_accept_queue_full")
                return False
            self._una = 1
            self._sbuf_start = 1
            self._rto_deadline = None
            if options is not None and options.timestamp is not None and self._ts_ok:
                self._rtt_sample_ts(options.timestamp[1], now)
            elif self._retries == 0:
                self._rtt.sample(now - self._syn_time)  # Karn: only an unretransmitted SYN-ACK
            self._retries = 0
            self._retrans_stamp = None
            self._snd_wl1 = self._rcv_offset_of(seq)
            self._snd_wl2 = ack_off
            self._update_send_window(window)
            self._set_state(TcpState.FIN_WAIT_1 if self._fin_queued else TcpState.ESTABLISHED)
            if self.listener is None:
                self._report_connected()
            state = self.state
        if not self._process_ack(seq, ack, window, options, length, now):
            return False
        # RFC 7323 §4.3: remember TSval of the segment that will be acknowledged next, once
        # it is known to be acceptable: a RST, a SYN or an unacceptable ACK must not move
        # it, or PAWS would then drop the good segments (Linux: packetdrill
        # ts_recent/invalid_ack.pkt; tcp_replace_ts_recent after tcp_ack).
        if tsval >= 0 and offset <= 0 and ((tsval - self._ts_recent) & _SEQ_MASK) < _SEQ_HALF:
            self._ts_recent = tsval
            self._ts_recent_time = now
        state = self.state
        if state is TcpState.CLOSED:
            return False
        # --- seventh: segment text ---
        if length or flags & FIN:
            if state in RECEIVES_DATA:
                self._receive_data(offset, payload, bool(flags & FIN), now)
            elif state is TcpState.TIME_WAIT and flags & FIN:
                # RFC 9293 §3.10.7.4 eighth: a retransmitted FIN restarts the 2 MSL timeout.
                self._ack_now = True
                self._time_wait_deadline = now + 2 * self._config.msl
                self._layer.mark_dirty(self)
            else:
                self._ack_now = True  # CLOSE-WAIT, CLOSING, LAST-ACK: ignore text, re-ACK.
                self._layer.mark_dirty(self)
        return False

    def _predicted_segment(
        self,
        ack: int,
        window: int,
        options: TcpOptions | None,
        payload: bytes | memoryview,
        now: float,
    ) -> bool:
        """Header prediction (Jacobson 1990; RFC 9293 §3.10.7.4 in its commonest cases): an
        in-order data segment in ESTABLISHED that changes no window and either acknowledges
        nothing new or acknowledges everything we sent (a request/response exchange), with
        no SACK, PAWS, recovery or window trimming to consider. Returns False (having
        changed nothing) whenever the full processing is needed."""
        length = len(payload)
        if not length:
            return self._predicted_ack(ack, window, options, now)
        if (
            self._ooo
            or self._orphan
            or self._fin_offset is not None
            or (window << self._snd_wscale) != self._snd_wnd
            or self._rcv_off + length > self._rcv_adv
        ):
            return False
        una = self._una
        acks_all = False
        if ack != (self._iss + una) & _SEQ_MASK:
            # The other common case: the peer's answer acknowledges all our data (not a
            # FIN), with no loss being repaired; nothing then remains for loss detection.
            nxt = self._nxt
            if (
                ack != (self._iss + nxt) & _SEQ_MASK
                or nxt <= una
                or self._fin_queued
                or self._recovery is not None
                or (self._loss is not NO_LOSS and self._loss.has_marks())
            ):
                return False
            acks_all = True
        if self._ts_ok:
            if options is None or options.timestamp is None or options.sack_blocks:
                return False
            tsval = options.timestamp[0]
            if ((tsval - self._ts_recent) & _SEQ_MASK) >= _SEQ_HALF:
                return False  # PAWS has to look at it
            self._ts_recent = tsval  # RFC 7323 §4.3: in order, so it is the one to echo
            self._ts_recent_time = now
        elif options is not None:
            return False
        self._layer.predicted_segments += 1  # Linux: TcpExtTCPHPHits
        if acks_all:
            self._ack_new_data(self._nxt, options, now)
            self._stop_persist_if_window_open()
        self._last_received = now
        self._keepalive_probes = 0
        self._snd_wl1 = self._rcv_off  # RFC 9293 §3.10.7.4: window from the newest segment
        self._snd_wl2 = self._una
        rbuf = self._rbuf
        if rbuf is NO_RECEIVE_BUFFER:
            rbuf = self._rbuf = ReceiveBuffer()
        rbuf.append(_owned(payload))
        self._rcv_off += length
        self._rcv_nxt = (self._rcv_nxt + length) & _SEQ_MASK
        pending = self._bytes_since_ack + length
        self._bytes_since_ack = pending
        # RFC 5681 §4.2: every second full-sized segment (which carries TS, RFC 7323 §3).
        if pending >= 2 * self._rcv_mss - (2 * _TS_OPTION_LENGTH if self._ts_ok else 0):
            self._ack_now = True
        elif self._delack_deadline is None:
            self._delack_deadline = now + self._config.delayed_ack_timeout
        layer = self._layer
        if not self._readable_pending:
            self._readable_pending = True
            layer.events.append(TcpReadable(self))
        if self._ack_now or (acks_all and self._sbuf_start + self._sbuf.size > self._nxt):
            layer.mark_dirty(self)  # an ACK owed now, or written data the ACK lets out
        # Otherwise there is nothing to send: the delayed ACK's deadline reaches the
        # timer heap through the layer's reschedule after this segment.
        return True

    def _predicted_ack(self, ack: int, window: int, options: TcpOptions | None, now: float) -> bool:
        """Header prediction for a pure ACK (Jacobson 1990; Linux's "fast path" ACK): in
        ESTABLISHED, in order, SND.UNA advancing within what we sent,
        with no SACK, loss, recovery, retransmission, FIN or PAWS to consider. It does what
        the full path would (RFC 9293 §3.10.7.4 fifth: SND.WL1/WL2 and the window, then
        the new ACK),
        skipping the checks that cannot apply. Returns False (having changed nothing)
        whenever the full processing is needed."""
        una = self._una
        if (
            self._recovery is not None
            or (self._loss is not NO_LOSS and self._loss.has_marks(una))
            or self._fin_queued
            or self._ooo
            or self._orphan
        ):
            return False
        ack_off = una + ((ack - self._iss - una) & _SEQ_MASK)
        if ack_off <= una or ack_off > self._nxt:
            return False  # a duplicate, a window update or an ACK of the future: full path
        if self._ts_ok:
            if options is None or options.timestamp is None or options.sack_blocks:
                return False
            tsval = options.timestamp[0]
            if ((tsval - self._ts_recent) & _SEQ_MASK) >= _SEQ_HALF:
                return False  # PAWS has to look at it
            self._ts_recent = tsval  # RFC 7323 §4.3: in order, so it is the one to echo
            self._ts_recent_time = now
        elif options is not None:
            return False
        layer = self._layer
        layer.predicted_acks += 1  # Linux: TcpExtTCPHPAcks
        self._last_received = now
        self._keepalive_probes = 0
        # In order and acknowledging more: always newer than SND.WL1/WL2 (RFC 9293 §3.10.7.4).
        self._snd_wl1 = self._rcv_off
        self._snd_wl2 = ack_off
        wnd = window << self._snd_wscale
        if wnd != self._snd_wnd:  # _update_send_window inlined
            self._snd_wnd = wnd
            self._max_snd_wnd = max(wnd, self._max_snd_wnd)  # a tie keeps wnd: one object
        self._ack_new_data(ack_off, options, now)
        self._stop_persist_if_window_open()
        layer.mark_dirty(self)
        return True

    @staticmethod
    def _acceptable(offset: int, seg_len: int, wnd: int) -> bool:
        """RFC 9293 §3.10.7.4 table of the four acceptability cases."""
        if seg_len == 0:
            if wnd == 0:
                return offset == 0
            return 0 <= offset < wnd
        if wnd == 0:
            return False
        return 0 <= offset < wnd or 0 <= offset + seg_len - 1 < wnd

    def _may_reopen_time_wait(self, seq: int, options: TcpOptions | None) -> bool:
        """RFC 6191 §2: a new SYN may reuse a TIME-WAIT tuple if it is clearly newer."""
        if self._ts_ok and options is not None and options.timestamp is not None:
            return 0 < ((options.timestamp[0] - self._ts_recent) & _SEQ_MASK) < _SEQ_HALF
        return seq_diff(seq, self._rcv_nxt) > 0

    def _syn_sent_arrives(  # noqa: PLR0917
        self,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        options: TcpOptions | None,
        payload: bytes | memoryview,
        now: float,
    ) -> None:
        """RFC 9293 §3.10.7.3: SYN-SENT."""
        self._last_received = now
        ack_ok = False
        if flags & ACK:
            ack_off = self._ack_offset(ack)
            if not 0 < ack_off <= self._nxt:
                if not flags & RST:
                    self._send_control(ack, RST, now)
                self._layer.count("drops_bad_ack_in_syn_sent")
                return
            ack_ok = True
        if flags & RST:
            if ack_ok:  # RFC 5961 §3.2: in SYN-SENT a RST is valid if its ACK acknowledges our SYN.
                self._layer.count("connections_refused")
                self._finish(ConnectionRefusedError(errno.ECONNREFUSED, "TCP connection refused"))
            return
        if not flags & SYN:
            self._layer.count("drops_no_syn_in_syn_sent")
            return
        self._take_peer_syn(seq, options or TcpOptions(), now)
        if ack_ok:
            self._una = 1
            self._sbuf_start = 1
            self._rto_deadline = None
            self._retries = 0
            self._retrans_stamp = None
            self._snd_wl1 = -1  # the SYN-ACK's receive offset
            self._snd_wl2 = 1
            self._update_send_window(window)
            if options is not None and options.timestamp is not None and self._ts_ok:
                self._rtt_sample_ts(options.timestamp[1], now)
            elif self._retries == 0:
                self._rtt.sample(now - self._syn_time)  # Karn: only an unretransmitted SYN
            self._set_state(TcpState.FIN_WAIT_1 if self._fin_queued else TcpState.ESTABLISHED)
            self._report_connected()
            self._ack_now = True
            if payload or flags & FIN:
                self._receive_data(0, payload, bool(flags & FIN), now)
            self._layer.mark_dirty(self)
        else:
            # Simultaneous open (RFC 9293 §3.5 figure 8): SYN-RECEIVED, send SYN-ACK.
            self._snd_wnd = window
            self._max_snd_wnd = window
            self._set_state(TcpState.SYN_RECEIVED)
            self._rto_deadline = None
            self._send_syn(now)

    def _reset_received(self) -> None:
        """An acceptable RST (RFC 9293 §3.10.7.4 second)."""
        self._layer.count("resets_received")
        state = self.state
        if state is TcpState.SYN_RECEIVED and self.listener is not None:
            self._finish(None)  # passive open: back to LISTEN (the listener keeps listening)
        elif state is TcpState.SYN_RECEIVED:
            self._finish(ConnectionRefusedError(errno.ECONNREFUSED, "TCP connection refused"))
        elif state is TcpState.TIME_WAIT:
            self._finish(None)
        else:
            self._finish(ConnectionResetError(errno.ECONNRESET, "TCP connection reset by peer"))

    def _may_reply_to_invalid(self, reason: str, *, length: int, now: float) -> bool:
        """Whether an invalid segment (out of window, failing PAWS, acknowledging unsent data,
        or drawing a challenge ACK) may be answered now: at most once per
        ``invalid_ratelimit`` per connection (Linux ``tcp_oow_rate_limited``, 500 ms; RFC
        5961 §7). Segments carrying data are always answered, as in Linux: they are not
        part of an ACK loop, and a duplicate needs its duplicate ACK. The refusals are
        counted as ``replies_rate_limited_<reason>``."""
        interval = self._config.invalid_ratelimit
        if length or not interval:
            return True
        if now - self._last_invalid_reply < interval:
            self._layer.count(f"replies_rate_limited_{reason}")
            return False
        self._last_invalid_reply = now
        return True

    def _challenge_ack(self, reason: str) -> None:
        """RFC 5961 §3.2/§4.2/§5.2: answer with an ACK, rate-limited (§7) per connection
        (so one connection under attack neither starves the others nor, through a shared
        counter, leaks whether a guess was in window: CVE-2016-5696) and, as a backstop,
        for the whole stack."""
        if not self._may_reply_to_invalid(f"challenge_{reason}", length=0, now=self._layer.now):
            return
        if self._layer.allow_challenge_ack():
            self._layer.count(f"challenge_acks_{reason}")
            self._send_control(self._seq(self._nxt), ACK, self._layer.now)
        else:
            self._layer.count("challenge_acks_suppressed")

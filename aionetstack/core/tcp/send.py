"""The send side: what may be sent now and when. New data within min(cwnd, the peer's
window) with Nagle (RFC 896) and sender SWS avoidance (RFC 9293 §3.8.6.2.1), TSO
quanta, the FIN after the data, and pure ACKs and control segments.
"""

from __future__ import annotations

from typing import Final

from ...wire.tcp import ACK, FIN, PSH
from .egress import _Egress
from .loss_state import NO_LOSS
from .sent_record import SentRecord
from .state import SENDS_DATA, TcpState
from .tcb import NO_RECORDS

#: Linux's tcp_tso_win_divisor: a segment cut short by the windows goes out at once if it
#: fills at least this fraction (1/3) of the smaller window (see ``_defers``).
_TSO_WIN_DIVISOR: Final = 3


class _SendSide(_Egress):
    """The send part of :class:`~.connection.TcpConnection` (see the module docstring)."""

    __slots__ = ()

    def output(self, now: float) -> None:
        """Send what the windows allow, then a pure ACK if one is still owed."""
        state = self.state
        if state in SENDS_DATA:
            loss = self._loss
            if loss is not NO_LOSS and loss.lost_bytes > loss.retrans_bytes:
                self._retransmit_lost(now)
            self._send_new_data(now)
            if self._tlp_deadline is None and self._nxt > self._una:
                self._arm_tlp(now)
        if self._ack_now and state is not TcpState.CLOSED and state is not TcpState.SYN_SENT:
            self._send_ack(now)

    def _send_new_data(self, now: float) -> None:
        """Send new data within min(cwnd, peer window), with Nagle and SWS avoidance.

        With TSO (``layer.max_segment_payload``) one segment carries up to that many bytes,
        a whole number of MSS, for the device to cut. Segments the bulk path can build
        (:meth:`_bursts`) are collected and emitted together after the loop, in order.
        """
        data_end = self._sbuf_start + self._sbuf.size
        if data_end <= self._nxt and not self._fin_queued:
            return  # nothing written that is not already sent
        # RFC 6691 §2: SACK blocks we carry come out of the payload (as Linux's current MSS).
        mss = self._snd_mss
        if self._ooo:
            mss -= self._sack_option_length()
        quantum = self._layer.max_segment_payload // mss * mss
        quantum = max(quantum, mss)
        window_edge = self._una + self._snd_wnd
        cwnd = self._cc.cwnd
        flight = self._flight()
        records = self._records
        if records is NO_RECORDS:  # nothing outstanding: this connection's own list
            records = self._records = []
        burst: list[int] | None = [] if self._bursts() else None
        nxt = self._nxt
        while True:
            available = data_end - nxt
            if available <= 0 and not (self._fin_queued and nxt == data_end):
                break
            cwnd_room = cwnd - flight
            if available > 0:
                room = window_edge - nxt
                room = min(room, cwnd_room)
                size = available if available < quantum else quantum
                if room < size:
                    if room > 0 and nxt > self._una and self._defers(room, cwnd):
                        break
                    size = room if room > 0 else 0
                if size <= 0:
                    if window_edge - nxt <= 0 and nxt == self._una:
                        self._arm_persist(now)
                    break
                if size < mss and not self._may_send_small(size, available, room, now):
                    break
            else:
                # A FIN alone waits for cwnd only, never for the peer's window (as Linux).
                if cwnd_room <= 0 and flight > 0:
                    break
                size = 0
            send_fin = self._fin_queued and nxt + size == data_end
            end = nxt + size + (1 if send_fin else 0)
            if burst is not None and not send_fin:
                burst.append(nxt)
                burst.append(end)
            else:
                if burst:  # the collected segments go first, in sequence order
                    self._send_burst(burst, now)
                    burst.clear()
                self._transmit(nxt, end, now)
            records.append(SentRecord(nxt, end, now))
            flight += end - nxt
            nxt = self._nxt = end
            if self._rto_deadline is None:
                self._rto_deadline = now + self._rtt.rto
            if send_fin:
                break
        if burst:
            self._send_burst(burst, now)

    def _send_burst(self, bounds: list[int], now: float) -> None:
        """Emit the collected segments: one alone as any other (the list machinery of a
        burst costs more than it saves for one), several together."""
        if len(bounds) == 2:
            self._transmit(bounds[0], bounds[1], now)
        else:
            self._emit_burst(bounds, now)

    def _bursts(self) -> bool:
        """Whether new data may take the bulk path (``_emit_burst``): headers with the
        timestamp option alone and partial checksums, after the SYN, outside recovery
        (which counts what it sends), with no SACK blocks to carry."""
        return (
            self._ts_ok
            and self._recovery is None
            and self._layer.partial_checksums
            and self._nxt > 0
            and not (self._sack_ok and self._ooo)
        )

    def _defers(self, room: int, cwnd: int) -> bool:
        """Hold back a segment the windows cut short while ACKs are still to come: when
        the room is under a third of the smaller window, the next ACK opens a bigger one
        (Linux ``tcp_tso_should_defer`` with ``tcp_tso_win_divisor`` 3; never in recovery).
        ACK clocking would otherwise cut a TSO stream into one small segment per ACK."""
        return self._recovery is None and room * _TSO_WIN_DIVISOR < min(self._snd_wnd, cwnd)

    def _may_send_small(self, size: int, available: int, room: int, now: float) -> bool:
        """Sender SWS avoidance (RFC 9293 §3.8.6.2.1) and Nagle (RFC 1122 §4.2.3.4)."""
        if size == available and (not self._nagle or self._nxt == self._una or self._fin_queued):
            return True  # all queued data goes, and nothing is unacknowledged (or no-delay)
        if self._max_snd_wnd and size >= self._max_snd_wnd // 2:
            return True
        # A window smaller than a segment: wait for it to open (the persist timer covers 0).
        if self._nxt == self._una and room < available:
            self._arm_persist(now)
        return False

    def _transmit(self, start: int, end: int, now: float) -> None:
        """Emit the segment covering offsets [start, end) (SYN/FIN bits derived)."""
        if start == 0:
            self._send_syn(now)
            return
        if self._recovery == "fast":
            self._loss.prr_out += end - start  # its own: fast recovery made it
        data_end = self._sbuf_start + self._sbuf.size
        flags = ACK
        if end > data_end:
            if self._fin_queued:
                flags = ACK | FIN
            stop = data_end
        else:
            stop = end
        parts: tuple[bytes | memoryview, ...] = ()
        length = stop - start if stop > start else 0
        if length:
            if self._layer.partial_checksums:  # gathered by the link: no join of chunks
                parts = self._sbuf.view_parts(start - self._sbuf_start, length)
            else:
                parts = (self._sbuf.view(start - self._sbuf_start, length),)
            if stop == data_end:
                flags |= PSH
        self._emit(self._seq(start), self._rcv_nxt, flags, -1, None, now, parts, length)

    def _send_ack(self, now: float) -> None:
        self._emit(self._seq(self._nxt), self._rcv_nxt, ACK, -1, None, now)

    def _send_control(self, seq: int, flags: int, now: float) -> None:
        """A RST or challenge ACK from this connection's tuple."""
        ack = self._rcv_nxt if flags & ACK else 0
        self._emit(seq, ack, flags, -1 if flags & ACK else 0, None, now)

"""The receive side: segment text and FIN (RFC 9293 §3.10.7.4 seventh and eighth),
the out-of-order queue, the delayed-ACK rule (RFC 5681 §4.2, RFC 1122 §4.2.3.2), and
the window update a read may owe the peer (Linux's ``tcp_cleanup_rbuf`` rule).

Receiving is pulled: bytes stay in the connection until the application reads them,
so the window advertised (``egress.py``) is what is left of the buffer.
"""

from __future__ import annotations

from ...wire.packet_memory import PacketMemory
from ...wire.tcp import ACK, RST
from .events import TcpEofReceived, TcpReadable
from .reassembly import Reassembly
from .receive_buffer import ReceiveBuffer
from .send import _SendSide
from .state import RECEIVES_DATA, TcpState
from .tcb import _SEQ_MASK, _TS_OPTION_LENGTH, NO_RECEIVE_BUFFER


def _owned(payload: bytes | memoryview) -> memoryview | bytes:
    """``payload`` itself when it is ``bytes`` (a small payload, copied out of its packet)
    or views immutable ``bytes`` (the link's packet) or a link's lent ``PacketMemory``
    (never written while viewed), else a copy, so the receive buffer never aliases memory
    that may change."""
    if type(payload) is bytes:
        return payload
    if type(payload) is memoryview and (
        type(payload.obj) is bytes or type(payload.obj) is PacketMemory
    ):
        return payload
    return bytes(payload)


class _ReceiveSide(_SendSide):
    """The receive part of :class:`~.connection.TcpConnection` (see the module docstring)."""

    __slots__ = ()

    def _receive_data(
        self, offset: int, payload: bytes | memoryview, fin: bool, now: float
    ) -> None:
        """Accept in-window text and FIN. ``offset`` is the segment's distance from RCV.NXT."""
        length = len(payload)
        start = self._rcv_off + offset
        end = start + length
        if self._orphan and end > self._rcv_off:
            # Data for a socket nobody can read any more: reset (as Linux does).
            self._layer.count("resets_data_after_close")
            self._send_control(self._seq(self._nxt), RST | ACK, now)
            self._finish(None)
            return
        right_edge = self._rcv_adv
        if end > right_edge:
            # Trim text beyond the window; the FIN is then beyond it too.
            payload = payload[: max(right_edge - start, 0)]
            end = start + len(payload)
            fin = False
        if start < self._rcv_off:
            payload = payload[self._rcv_off - start :]
            start = self._rcv_off
        if fin:
            self._fin_offset = end
        if start == self._rcv_off:
            in_order = len(payload)
            if in_order:
                off_before = start
                rbuf = self._rbuf
                if rbuf is NO_RECEIVE_BUFFER:
                    rbuf = self._rbuf = ReceiveBuffer()
                rbuf.append(_owned(payload))
                self._rcv_off = end
                ooo = self._ooo
                if ooo:
                    self._ack_now = True  # RFC 5681 §4.2: ACK at once when a gap fills
                    ready = ooo.pop_ready(self._rcv_off)
                    if ready is not None:
                        rbuf.append(ready)
                        self._rcv_off += len(ready)
                    if not ooo:
                        self._ooo = None  # idle connections keep no queue
                self._bytes_since_ack += in_order
                # RFC 5681 §4.2: every second full-sized segment (with TS: RFC 7323 §3).
                full = self._rcv_mss - (_TS_OPTION_LENGTH if self._ts_ok else 0)
                if self._bytes_since_ack >= 2 * full:
                    self._ack_now = True
                elif self._delack_deadline is None:
                    self._delack_deadline = now + self._config.delayed_ack_timeout
                self._rcv_nxt = (self._rcv_nxt + self._rcv_off - off_before) & _SEQ_MASK
                if not self._readable_pending and not self._orphan:
                    self._readable_pending = True
                    self._layer.events.append(TcpReadable(self))
            elif length:
                self._ack_now = True  # duplicate text: re-acknowledge at once
                self._layer.count("duplicate_segments_received")
        elif length:
            self._ack_now = True  # RFC 5681 §4.2: out-of-order: immediate (duplicate) ACK
            if self._layer.memory_pressure:
                self._layer.count("drops_out_of_order_memory_pressure")  # Linux tcp_mem
                self._layer.mark_dirty(self)
                return
            ooo = self._ooo
            if ooo is None:
                config = self._config
                ooo = self._ooo = Reassembly(
                    config.out_of_order_limit, config.out_of_order_segments
                )
            pruned = ooo.pruned_ranges
            if ooo.add(start, payload):
                self._layer.count("out_of_order_segments_received")
            else:
                self._layer.count("drops_out_of_order_queue_full")
            if ooo.pruned_ranges != pruned:
                # Linux tcp_prune_ofo_queue (LINUX_MIB_OFOPRUNED): ranges above dropped.
                self._layer.count("out_of_order_ranges_pruned", ooo.pruned_ranges - pruned)
        if self._fin_offset is not None and self._fin_offset == self._rcv_off:
            self._fin_arrived(now)
        self._layer.mark_dirty(self)

    def _fin_arrived(self, now: float) -> None:
        """RFC 9293 §3.10.7.4 eighth: an in-order FIN."""
        self._fin_offset = None
        self._rcv_off += 1
        self._rcv_nxt = (self._rcv_nxt + 1) & _SEQ_MASK
        self._rcv_adv = max(self._rcv_adv, self._rcv_off)
        self._ack_now = True
        if not self._eof_reported:
            self._eof_reported = True
            if not self._orphan:
                self._layer.events.append(TcpEofReceived(self))
        state = self.state
        if state is TcpState.ESTABLISHED or state is TcpState.SYN_RECEIVED:
            self._set_state(TcpState.CLOSE_WAIT)
        elif state is TcpState.FIN_WAIT_1:
            if self._fin_sent() and self._una >= self._fin_end():
                self._enter_time_wait(now)
            else:
                self._set_state(TcpState.CLOSING)
        elif state is TcpState.FIN_WAIT_2:
            self._enter_time_wait(now)

    def _after_read(self) -> None:
        """The app read: clear the readable latch, and send a window update when the window
        grew a lot (RFC 9293 §3.8.6.2.2) and the peer may be waiting for it: what is left
        is at most half the largest window we offered, or under one segment (Linux's
        tcp_cleanup_rbuf rule). A small read early on, while the first window is barely
        used, then goes out with the answer instead of as a pure ACK before it."""
        self._readable_pending = False
        if not self._rbuf.size:
            self._rbuf = NO_RECEIVE_BUFFER  # an idle connection keeps no buffer of its own
        if self.state not in RECEIVES_DATA:
            return
        current = self._rcv_adv - self._rcv_off
        if current >= self._rcv_mss and 2 * current > self._rcv_wnd_max:
            return
        free = self._rbuf_limit - self._rbuf.size
        threshold = min(self._rbuf_limit // 2, self._rcv_mss)
        if free - current >= threshold and free >= 2 * current:
            self._ack_now = True
            self._layer.mark_dirty(self)

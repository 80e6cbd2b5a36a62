"""One TCP connection: the application's interface and the opening calls.

:class:`TcpConnection` is the last of the parts that implement RFC 9293 and its
extensions, one concern per module, each a subclass of the one before it over the
fields of :class:`~.tcb.Tcb` (the order, and why one line: ``tcb.py``; the module map:
``core/tcp/__init__.py``). The connection is sans-I/O: segments go out through
its host's ``emit``, events into the host's queue, and every time-dependent method
takes ``now``.
"""

from __future__ import annotations

import errno

from ...wire.tcp import ACK, RST, TcpOptions
from .ingress import _Ingress
from .options import MAX_WINDOW_FIELD, window_scale_for
from .recovery import check_invariants
from .rtt import RttEstimator
from .send_buffer import SendBuffer
from .state import ABORT_SENDS_RST, APP_CAN_SEND, TcpState
from .tcb import NO_SEND_BUFFER

__all__ = ["TcpConnection", "TcpState", "check_invariants", "window_scale_for"]


class TcpConnection(_Ingress):
    """A TCP connection owned by a :class:`~.layer.TcpLayer`. See the module docstring."""

    __slots__ = ()

    @property
    def readable_bytes(self) -> int:
        """Bytes buffered in order and not yet read."""
        return self._rbuf.size

    @property
    def send_buffer_free(self) -> int:
        """Bytes :meth:`send` would accept now."""
        if self.state not in APP_CAN_SEND or self._fin_queued:
            return 0
        return max(self._sbuf_limit - self._sbuf.size, 0)

    @property
    def send_buffer_used(self) -> int:
        """Bytes written by the app and not yet acknowledged by the peer."""
        return self._sbuf.size

    @property
    def eof_received(self) -> bool:
        """The peer's FIN has arrived in order (no bytes beyond those buffered will come)."""
        return self._eof_reported

    @property
    def snd_mss(self) -> int:
        """The effective send MSS (peer's MSS option, our MTU cap, less the timestamp option)."""
        return self._snd_mss

    @property
    def congestion_window(self) -> int:
        """The congestion controller's cwnd in bytes."""
        return self._cc.cwnd

    @property
    def rtt(self) -> RttEstimator:
        """The RTT estimator (SRTT, RTTVAR, RTO)."""
        return self._rtt

    @property
    def soft_error(self) -> OSError | None:
        """The last ICMP soft error seen (RFC 1122 §4.2.3.9), if any."""
        return self._soft_error

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Queue bytes for sending; returns how many fit in the bounded send buffer.

        Raises BrokenPipeError once the write side is shut down or the connection is over.
        """
        if self.state not in APP_CAN_SEND or self._fin_queued:
            raise BrokenPipeError(errno.EPIPE, "TCP connection is not open for sending")
        sbuf = self._sbuf
        room = self._sbuf_limit - sbuf.size
        if room <= 0:
            self._want_writable = True
            return 0
        if sbuf is NO_SEND_BUFFER:  # the first write: this connection's own buffer
            sbuf = self._sbuf = SendBuffer()
        if len(data) > room:
            sbuf.append(memoryview(data)[:room])
            self._want_writable = True
            accepted = room
        else:
            sbuf.append(data)
            accepted = len(data)
        if accepted:
            self._layer.mark_dirty(self)
        return accepted

    def receive(self, max_bytes: int = -1) -> bytes:
        """Take up to ``max_bytes`` (all when negative) bytes out of the receive buffer."""
        data = self._rbuf.take(max_bytes)
        self._after_read()
        return data

    def receive_chunks(self, enough: int = -1) -> list[bytes | bytearray | memoryview]:
        """Take whole received chunks, oldest first, until they hold at least ``enough``
        bytes (all when negative), neither joined nor cut (``take_whole_chunks``)."""
        chunks = self._rbuf.take_whole_chunks(enough)
        self._after_read()
        return chunks

    def receive_into(self, buffer: bytearray | memoryview) -> int:
        """Copy bytes into ``buffer``; returns how many."""
        count = self._rbuf.take_into(buffer)
        self._after_read()
        return count

    def shutdown_write(self) -> None:
        """Send FIN after all buffered data (half-close, RFC 9293 §3.10.4)."""
        if self._fin_queued:
            return
        state = self.state
        if state is TcpState.SYN_SENT and not self._sbuf:
            self._finish(None)  # RFC 9293 §3.10.4: CLOSE in SYN-SENT deletes the TCB
            return
        if state not in (
            TcpState.SYN_SENT,
            TcpState.SYN_RECEIVED,
            TcpState.ESTABLISHED,
            TcpState.CLOSE_WAIT,
        ):
            return
        self._fin_queued = True
        if state is TcpState.CLOSE_WAIT:
            self._set_state(TcpState.LAST_ACK)
        elif state is TcpState.ESTABLISHED:
            self._set_state(TcpState.FIN_WAIT_1)
        # SYN-SENT/SYN-RECEIVED: FIN-WAIT-1 once established, after the queued data.
        self._layer.mark_dirty(self)

    def close(self) -> None:
        """Close: FIN after buffered data; the layer keeps the connection until it is done.

        Unread received data makes this an abort (RST), as RFC 2525 §2.17 and Linux do.
        """
        if self._app_closed:
            return
        self._app_closed = True
        self._orphan = True
        if self.state is TcpState.CLOSED or self.state is TcpState.TIME_WAIT:
            return
        if self._rbuf or self._ooo:
            self._layer.count("resets_on_close_with_unread_data")
            self.abort()
            return
        if not self._layer.admit_orphan(self):
            self.abort()  # too many orphans already: reset (Linux tcp_max_orphans)
            return
        self.shutdown_write()
        if self.state is TcpState.FIN_WAIT_2:
            self._fin_wait_deadline = self._layer.now + self._config.fin_wait_2_timeout
            self._layer.reschedule(self)

    def abort(self) -> None:
        """Reset the connection now (RST when synchronized) and report ConnectionAbortedError."""
        if self.state is TcpState.CLOSED:
            return
        if self.state in ABORT_SENDS_RST:
            self._send_control(self._seq(self._nxt), RST | ACK, self._layer.now)
        self._app_closed = True
        self._finish(ConnectionAbortedError(errno.ECONNABORTED, "TCP connection aborted locally"))

    @property
    def nodelay(self) -> bool:
        """True when Nagle's algorithm is off (TCP_NODELAY)."""
        return not self._nagle

    def set_nodelay(self, flag: bool) -> None:
        """TCP_NODELAY: True turns Nagle's algorithm (RFC 896) off."""
        self._nagle = not flag
        if flag:
            self._layer.mark_dirty(self)

    def set_keepalive(self, flag: bool) -> None:
        """Turn keepalive probes (RFC 1122 §4.2.3.6) on or off; timings come from config."""
        self._keepalive = flag
        self._keepalive_probes = 0
        self._keepalive_deadline = None
        if flag:
            self._arm_keepalive(self._layer.now)
        self._layer.reschedule(self)

    @property
    def buffered_bytes(self) -> int:
        """Bytes this connection holds: unread, out of order, and unacknowledged or unsent."""
        ooo = self._ooo
        return self._rbuf.size + self._sbuf.size + (ooo.bytes_held if ooo is not None else 0)

    def purge_out_of_order(self) -> int:
        """Drop the out-of-order queue (memory pressure); returns the bytes dropped. The
        peer retransmits them (RFC 2018 §8 allows reneging on SACKed data)."""
        ooo = self._ooo
        if ooo is None:
            return 0
        self._ooo = None
        return ooo.bytes_held

    def fail(self, error: OSError) -> None:
        """End the connection at once with ``error`` and send nothing (its link is gone):
        TcpClosed(error) follows, and the layer forgets it."""
        if self.state is not TcpState.CLOSED:
            self._layer.count("connections_failed_link")
            self._finish(error)

    @property
    def user_timeout(self) -> float:
        """RFC 5482 user timeout in seconds (0: off); see :meth:`set_user_timeout`."""
        return self._user_timeout

    def set_user_timeout(self, seconds: float) -> None:
        """TCP_USER_TIMEOUT (RFC 5482, RFC 9293 §3.8.3): fail with TimeoutError when sent
        data stays unacknowledged, or the peer's window stays closed, this long. 0: off."""
        if seconds < 0:
            raise ValueError(f"user timeout must be >= 0 seconds, got {seconds}")
        self._user_timeout = float(seconds)

    def open_active(self, now: float) -> None:
        """Send our SYN (RFC 9293 §3.10.1 OPEN, active)."""
        self._set_state(TcpState.SYN_SENT)
        self._send_syn(now)

    def open_passive(self, syn_seq: int, window: int, options: TcpOptions, now: float) -> None:
        """A SYN arrived for a listener: enter SYN-RECEIVED and answer with SYN-ACK."""
        self._take_peer_syn(syn_seq, options, now)
        self._snd_wnd = window  # RFC 7323 §2.2: the window in a SYN is never scaled.
        self._max_snd_wnd = window
        self._snd_wl1 = -1  # the SYN's receive offset
        self._set_state(TcpState.SYN_RECEIVED)
        self._send_syn(now)

    def open_from_cookie(  # noqa: PLR0917
        self,
        client_isn: int,
        ack_seq: int,
        window: int,
        mss: int,
        window_scale: int | None,
        sack: bool,
        timestamp: tuple[int, int] | None,
        now: float,
    ) -> None:
        """Build an ESTABLISHED connection from a valid SYN cookie (RFC 4987 §3.6)."""
        options = TcpOptions(
            mss=mss, window_scale=window_scale, sack_permitted=sack, timestamp=timestamp
        )
        self._take_peer_syn(client_isn, options, now)
        self._una = self._nxt = 1
        self._sbuf_start = 1
        self._rcv_adv = self._rcv_wnd_max = min(self._rbuf_limit, MAX_WINDOW_FIELD)
        self._snd_wl1 = self._rcv_offset_of(ack_seq)
        self._snd_wl2 = 1
        self._update_send_window(window)
        self._set_state(TcpState.ESTABLISHED)

    def icmp_error(self, seq: int, error: OSError, now: float) -> None:
        """An ICMP error quoting one of our segments with sequence number ``seq``."""
        offset = self._ack_offset(seq)
        if not self._una <= offset <= self._nxt:
            self._layer.count("icmp_errors_out_of_window")  # RFC 5927 §4.1
            return
        if self.state is TcpState.SYN_SENT and isinstance(error, ConnectionRefusedError):
            self._layer.count("connections_refused_by_icmp")
            self._finish(error)
            return
        self._soft_error = error
        self._layer.count("icmp_soft_errors")

    def mark_accepted(self) -> None:
        """The listener queued this connection for the app: from now on the app hears its end."""
        self._connected_reported = True

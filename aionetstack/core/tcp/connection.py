"""One TCP connection: the RFC 9293 state machine with its send and receive halves.

Every state transition of the stack lives in this module (``_set_state`` is the
one place ``state`` changes). The connection is sans-I/O: segments go out
through its layer's ``emit``, events into the layer's queue, and every
time-dependent method takes ``now``.

Internally the send side counts in *offsets* (unwrapped ints, 0 = our ISN) and
the receive side in offsets from the peer's ISN, so that ordering, SACK
scoreboards and buffers never deal with wrap-around; sequence numbers are
converted only where they meet the wire.
"""

from __future__ import annotations

import enum
import errno
import struct
from bisect import bisect_left
from typing import TYPE_CHECKING, Final

from ...wire.checksum import ones_complement_sum, pseudo_header_sum
from ...wire.tcp import (
    ACK,
    FIN,
    HEADER,
    PSH,
    RST,
    SYN,
    URG,
    TcpOptions,
    build_options,
    seq_diff,
)
from .congestion import CongestionControl, create_congestion_control
from .events import TcpClosed, TcpConnected, TcpEofReceived, TcpReadable, TcpWritable
from .reassembly import Reassembly
from .receive_buffer import ReceiveBuffer
from .rtt import RttEstimator
from .send_buffer import SendBuffer

if TYPE_CHECKING:
    from .layer import TcpLayer, TcpListener

__all__ = ["TcpConnection", "TcpState"]

_SEQ_MASK: Final = 0xFFFFFFFF
_SEQ_HALF: Final = 1 << 31
#: RFC 9293 §3.7.1: the send MSS when the peer sends no MSS option (IPv4 / IPv6).
DEFAULT_MSS_IPV4: Final = 536
DEFAULT_MSS_IPV6: Final = 1220
#: RFC 7323 §2.2: the largest window a 16-bit field carries; §2.3: shift at most 14.
MAX_WINDOW_FIELD: Final = 0xFFFF
MAX_WINDOW_SCALE: Final = 14
#: RFC 6675 §2 DupThresh.
DUP_THRESH: Final = 3
#: RFC 7323 §5.5: timestamps idle for 24 days are no longer trusted for PAWS.
PAWS_IDLE_LIMIT: Final = 24 * 24 * 3600.0
#: Timestamp clock: 1 ms ticks (RFC 7323 §5.4 allows 1 ms .. 1 s).
TS_HZ: Final = 1000
#: RFC 9406 §4.3: N_RTT_SAMPLE, MIN/MAX_RTT_THRESH (s), LOW_SSTHRESH (segments).
HYSTART_RTT_SAMPLES: Final = 8
HYSTART_MIN_RTT_THRESH: Final = 0.004
HYSTART_MAX_RTT_THRESH: Final = 0.016
HYSTART_LOW_SSTHRESH: Final = 16
#: RFC 8985 §7.2: worst-case delayed-ACK time added to the PTO when one segment is in flight.
TLP_DELAYED_ACK_ALLOWANCE: Final = 0.2
#: A floor on the PTO (Linux uses two jiffies, 10 ms at HZ=200 .. 2 ms at HZ=1000).
TLP_MIN_PTO: Final = 0.01
#: Bytes of option space: 12 for NOP NOP TS; SACK adds 2 + 8 per block after NOP NOP.
_TS_OPTION_LENGTH: Final = 12

#: Header prediction looks at segments whose only control bit among these is ACK.
_PREDICTION_MASK: Final = FIN | SYN | RST | ACK | URG
_HEADER_WITH_TS: Final = struct.Struct("!HHIIBBHHHBBBBII")
_TS_OFFSET_BYTE: Final = (32 // 4) << 4
#: A header with the timestamp option alone (RFC 7323 Appendix A layout): 20 + 12 bytes.
_TS_HEADER_LENGTH: Final = 32
_PLAIN_OFFSET_BYTE: Final = (20 // 4) << 4
_SACK_EDGE: Final = struct.Struct("!II")


class TcpState(enum.Enum):
    """RFC 9293 §3.3.2 connection states."""

    # Members compare by identity, so hash them by identity too: the state-set tests on
    # every segment then hash in C instead of calling Enum's Python-level ``__hash__``.
    __hash__ = object.__hash__

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"


_S = TcpState
#: States in which the peer's ISN is known (RFC 9293 §3.10.7.4 "synchronized").
SYNCHRONIZED: Final = frozenset(
    {
        _S.ESTABLISHED,
        _S.FIN_WAIT_1,
        _S.FIN_WAIT_2,
        _S.CLOSE_WAIT,
        _S.CLOSING,
        _S.LAST_ACK,
        _S.TIME_WAIT,
    }
)
#: States that accept segment text (RFC 9293 §3.10.7.4 "seventh").
_RECEIVES_DATA: Final = frozenset({_S.ESTABLISHED, _S.FIN_WAIT_1, _S.FIN_WAIT_2})
#: States in which queued data may still be sent (FIN not yet sent).
_SENDS_DATA: Final = frozenset(
    {_S.ESTABLISHED, _S.CLOSE_WAIT, _S.FIN_WAIT_1, _S.LAST_ACK, _S.CLOSING}
)
#: RFC 9293 §3.10.5 ABORT: the states in which a RST is sent.
_ABORT_SENDS_RST: Final = frozenset(
    {_S.SYN_RECEIVED, _S.ESTABLISHED, _S.FIN_WAIT_1, _S.FIN_WAIT_2, _S.CLOSE_WAIT, _S.CLOSING}
    | {_S.LAST_ACK}
)
#: States in which the application may still queue data.
_APP_CAN_SEND: Final = frozenset({_S.SYN_SENT, _S.SYN_RECEIVED, _S.ESTABLISHED, _S.CLOSE_WAIT})


class _Sent:
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


def _start_of(record: _Sent) -> int:
    return record.start


def _owned(payload: memoryview) -> memoryview | bytes:
    """``payload`` itself when it views immutable ``bytes`` (the usual case: the link's
    packet), else a copy, so the receive buffer never aliases memory that may change."""
    if type(payload) is memoryview and type(payload.obj) is bytes:
        return payload
    return bytes(payload)


def _timeout_error(message: str, cause: OSError | None) -> TimeoutError:
    error = TimeoutError(errno.ETIMEDOUT, message)
    error.__cause__ = cause
    return error


class TcpConnection:
    """A TCP connection owned by a :class:`TcpLayer`. See the module docstring."""

    __slots__ = (
        "_ack_now",
        "_app_closed",
        "_bytes_since_ack",
        "_cc",
        "_closed_reported",
        "_connected_reported",
        "_delack_deadline",
        "_dupacks",
        "_eof_reported",
        "_fack_index",
        "_fin_offset",
        "_fin_queued",
        "_fin_wait_deadline",
        "_head",
        "_highest_sacked",
        "_hs_last_round_min",
        "_hs_round_end",
        "_hs_round_min",
        "_hs_samples",
        "_irs",
        "_iss",
        "_keepalive",
        "_keepalive_deadline",
        "_keepalive_probes",
        "_last_received",
        "_layer",
        "_lost_bytes",
        "_max_snd_wnd",
        "_nagle",
        "_nxt",
        "_ooo",
        "_orphan",
        "_persist_backoff",
        "_persist_deadline",
        "_prr_delivered",
        "_prr_out",
        "_pseudo_sum",
        "_rack_index",
        "_rack_sent_at",
        "_rbuf",
        "_rbuf_limit",
        "_rcv_adv",
        "_rcv_mss",
        "_rcv_nxt",
        "_rcv_off",
        "_rcv_wnd_max",
        "_rcv_wscale",
        "_readable_pending",
        "_records",
        "_recover",
        "_recover_fs",
        "_recovery",
        "_reno_sacked",
        "_retrans_bytes",
        "_retries",
        "_retx_index",
        "_rto_deadline",
        "_rtt",
        "_sack_ok",
        "_sacked_bytes",
        "_sbuf",
        "_sbuf_limit",
        "_sbuf_start",
        "_snd_mss",
        "_snd_wl1",
        "_snd_wl2",
        "_snd_wnd",
        "_snd_wscale",
        "_soft_error",
        "_syn_options",
        "_syn_time",
        "_time_wait_deadline",
        "_tlp_deadline",
        "_tlp_probe_out",
        "_ts_offset",
        "_ts_ok",
        "_ts_recent",
        "_ts_recent_time",
        "_una",
        "_want_writable",
        "heap_deadline",
        "listener",
        "local_address",
        "local_port",
        "remote_address",
        "remote_port",
        "state",
        "user_data",
    )

    def __init__(
        self,
        layer: TcpLayer,
        local_address: bytes,
        local_port: int,
        remote_address: bytes,
        remote_port: int,
        *,
        iss: int,
        ts_offset: int,
        now: float,
    ) -> None:
        config = layer.config
        self._layer = layer
        self.local_address = local_address
        self.local_port = local_port
        self.remote_address = remote_address
        self.remote_port = remote_port
        self.state = TcpState.CLOSED
        self.user_data: object = None
        self.listener: TcpListener | None = None
        #: The deadline this connection currently has in the layer's timer heap.
        self.heap_deadline: float | None = None
        self._pseudo_sum = pseudo_header_sum(local_address, remote_address, 6, 0)
        # --- send side (offsets: 0 is our SYN, data starts at 1) ---
        self._iss = iss
        self._una = 0
        self._nxt = 0
        self._sbuf = SendBuffer()
        self._sbuf_start = 1
        self._sbuf_limit = config.send_buffer
        self._fin_queued = False
        self._snd_wnd = 0
        self._max_snd_wnd = 0
        self._snd_wl1 = 0
        self._snd_wl2 = 0
        self._snd_wscale = 0
        self._snd_mss = DEFAULT_MSS_IPV4 if len(remote_address) == 4 else DEFAULT_MSS_IPV6
        self._records: list[_Sent] = []
        self._head = 0
        self._retx_index = 0
        self._fack_index = 0
        self._sacked_bytes = 0
        self._lost_bytes = 0
        self._retrans_bytes = 0
        self._reno_sacked = 0
        self._highest_sacked = 0
        self._dupacks = 0
        self._rack_sent_at = 0.0
        self._hs_round_end = 0
        self._hs_round_min = float("inf")
        self._hs_last_round_min = float("inf")
        self._hs_samples = 0
        self._rack_index = 0
        self._recovery: str | None = None
        self._prr_delivered = 0
        self._prr_out = 0
        self._recover_fs = 1
        self._recover = 0
        self._retries = 0
        self._rtt = RttEstimator(config.initial_rto, config.min_rto, config.max_rto)
        self._cc: CongestionControl = create_congestion_control(
            config.congestion_control, self._snd_mss
        )
        self._nagle = config.nagle
        self._want_writable = False
        self._soft_error: OSError | None = None
        # --- receive side (offsets: 0 is the byte after the peer's SYN) ---
        self._irs = 0
        self._rcv_nxt = 0
        self._rcv_off = 0
        self._rcv_adv = 0
        #: The largest window (bytes) we have offered (Linux's window_clamp in this role):
        #: a read sends a pure window update only once the peer has used half of it.
        self._rcv_wnd_max = 0
        self._rbuf = ReceiveBuffer()
        self._rbuf_limit = config.receive_buffer
        self._rcv_wscale = window_scale_for(config.receive_buffer) if config.window_scaling else 0
        self._rcv_mss = layer.mss_for(remote_address)
        #: The out-of-order queue, made when the first segment arrives out of order.
        self._ooo: Reassembly | None = None
        self._fin_offset: int | None = None
        self._ack_now = False
        self._bytes_since_ack = 0
        self._readable_pending = False
        self._eof_reported = False
        # --- options negotiated ---
        self._sack_ok = False
        self._ts_ok = False
        self._ts_offset = ts_offset
        self._ts_recent = 0
        self._ts_recent_time = now
        self._syn_options: TcpOptions | None = None
        self._syn_time = now
        # --- timers ---
        self._rto_deadline: float | None = None
        self._delack_deadline: float | None = None
        self._persist_deadline: float | None = None
        self._persist_backoff = 0
        self._keepalive = config.keepalive
        self._keepalive_deadline: float | None = None
        self._keepalive_probes = 0
        self._time_wait_deadline: float | None = None
        self._tlp_deadline: float | None = None
        self._tlp_probe_out = False
        self._fin_wait_deadline: float | None = None
        self._last_received = now
        # --- lifecycle ---
        self._app_closed = False
        self._orphan = False
        self._connected_reported = False
        self._closed_reported = False

    def __repr__(self) -> str:
        return (
            f"<TcpConnection {self.local_port}->{self.remote_port} {self.state.value} "
            f"una={self._una} nxt={self._nxt} rcv={self._rcv_off}>"
        )

    # ==================================================================================
    # Application interface
    # ==================================================================================

    @property
    def readable_bytes(self) -> int:
        """Bytes buffered in order and not yet read."""
        return self._rbuf.size

    @property
    def send_buffer_free(self) -> int:
        """Bytes :meth:`send` would accept now."""
        if self.state not in _APP_CAN_SEND or self._fin_queued:
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
        if self.state not in _APP_CAN_SEND or self._fin_queued:
            raise BrokenPipeError(errno.EPIPE, "TCP connection is not open for sending")
        room = self._sbuf_limit - self._sbuf.size
        if room <= 0:
            self._want_writable = True
            return 0
        if len(data) > room:
            self._sbuf.append(memoryview(data)[:room])
            self._want_writable = True
            accepted = room
        else:
            self._sbuf.append(data)
            accepted = len(data)
        if accepted:
            self._layer.mark_dirty(self)
        return accepted

    def receive(self, max_bytes: int = -1) -> bytes:
        """Take up to ``max_bytes`` (all when negative) bytes out of the receive buffer."""
        data = self._rbuf.take(max_bytes)
        self._after_read()
        return data

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
        if state is _S.SYN_SENT and not self._sbuf:
            self._finish(None)  # RFC 9293 §3.10.4: CLOSE in SYN-SENT deletes the TCB
            return
        if state not in (_S.SYN_SENT, _S.SYN_RECEIVED, _S.ESTABLISHED, _S.CLOSE_WAIT):
            return
        self._fin_queued = True
        if state is _S.CLOSE_WAIT:
            self._set_state(_S.LAST_ACK)
        elif state is _S.ESTABLISHED:
            self._set_state(_S.FIN_WAIT_1)
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
        if self.state is _S.CLOSED or self.state is _S.TIME_WAIT:
            return
        if self._rbuf or self._ooo:
            self._layer.count("resets_on_close_with_unread_data")
            self.abort()
            return
        self.shutdown_write()
        if self.state is _S.FIN_WAIT_2:
            self._fin_wait_deadline = self._layer.now + self._layer.config.fin_wait_2_timeout
            self._layer.reschedule(self)

    def abort(self) -> None:
        """Reset the connection now (RST when synchronized) and report ConnectionAbortedError."""
        if self.state is _S.CLOSED:
            return
        if self.state in _ABORT_SENDS_RST:
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

    # ==================================================================================
    # Opening
    # ==================================================================================

    def open_active(self, now: float) -> None:
        """Send our SYN (RFC 9293 §3.10.1 OPEN, active)."""
        self._set_state(_S.SYN_SENT)
        self._send_syn(now)

    def open_passive(self, syn_seq: int, window: int, options: TcpOptions, now: float) -> None:
        """A SYN arrived for a listener: enter SYN-RECEIVED and answer with SYN-ACK."""
        self._take_peer_syn(syn_seq, options, now)
        self._snd_wnd = window  # RFC 7323 §2.2: the window in a SYN is never scaled.
        self._max_snd_wnd = window
        self._snd_wl1 = syn_seq
        self._set_state(_S.SYN_RECEIVED)
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
        self._snd_wl1 = ack_seq
        self._snd_wl2 = self._seq(1)
        self._update_send_window(window)
        self._set_state(_S.ESTABLISHED)

    def _take_peer_syn(self, seq: int, options: TcpOptions, now: float) -> None:
        """Record the peer's ISN and its SYN options (RFC 9293 §3.10.7.3, RFC 7323 §2/§3)."""
        config = self._layer.config
        self._irs = seq
        self._rcv_nxt = (seq + 1) & _SEQ_MASK
        self._rcv_off = 0
        self._syn_options = options
        if not (config.window_scaling and options.window_scale is not None):
            self._rcv_wscale = 0
            self._snd_wscale = 0
        else:
            self._snd_wscale = options.window_scale
        self._sack_ok = config.sack and options.sack_permitted
        if config.timestamps and options.timestamp is not None:
            self._ts_ok = True
            self._ts_recent = options.timestamp[0]
            self._ts_recent_time = now
        peer_mss = options.mss
        if peer_mss is None:
            peer_mss = DEFAULT_MSS_IPV4 if len(self.remote_address) == 4 else DEFAULT_MSS_IPV6
        mss = min(peer_mss, self._rcv_mss)
        if self._ts_ok:
            # RFC 6691 §2: the MSS excludes options, and we carry TS on every segment.
            mss -= _TS_OPTION_LENGTH
        self._snd_mss = max(mss, 64)
        self._cc.set_mss(self._snd_mss)

    def _send_syn(self, now: float) -> None:
        """Send (or resend) SYN or SYN-ACK with the options RFC 9293 §3.2 / RFC 7323 allow."""
        config = self._layer.config
        peer = self._syn_options
        is_synack = peer is not None
        flags = SYN | ACK if is_synack else SYN
        offer_ts = config.timestamps and (not is_synack or self._ts_ok)
        offer_ws = config.window_scaling and (
            not is_synack or (peer is not None and peer.window_scale is not None)
        )
        offer_sack = config.sack and (not is_synack or self._sack_ok)
        options = build_options(
            mss=self._rcv_mss,
            window_scale=self._rcv_wscale if offer_ws else None,
            sack_permitted=offer_sack,
            timestamp=(self._ts_now(now), self._ts_recent if is_synack else 0)
            if offer_ts
            else None,
        )
        window = self._rcv_wnd_max = min(self._rbuf_limit, MAX_WINDOW_FIELD)
        self._rcv_adv = self._rcv_off + window
        ack = self._rcv_nxt if is_synack else 0
        self._emit(self._iss, ack, flags, window, options, b"", now)
        if self._retries == 0:
            self._syn_time = now
        if self._nxt == 0:
            self._nxt = 1
        if self._rto_deadline is None:
            self._rto_deadline = now + self._rtt.rto

    # ==================================================================================
    # Segment arrival (RFC 9293 §3.10.7)
    # ==================================================================================

    def segment_arrives(  # noqa: PLR0917
        self,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        options: TcpOptions | None,
        payload: memoryview,
        now: float,
    ) -> bool:
        """Process one segment. Returns True when a TIME-WAIT connection should be
        replaced by a new one for this SYN (RFC 9293 §3.10.7.4, RFC 6191)."""
        state = self.state
        if (
            state is _S.ESTABLISHED
            and flags & _PREDICTION_MASK == ACK
            and seq == self._rcv_nxt
            and self._predicted_segment(ack, window, options, payload, now)
        ):
            return False
        if state is _S.SYN_SENT:
            self._syn_sent_arrives(seq, ack, flags, window, options, payload, now)
            return False
        if state is _S.CLOSED:
            return False
        self._last_received = now
        if state is _S.SYN_RECEIVED and flags & SYN and not flags & ACK and seq == self._irs:
            # Our SYN-ACK was lost: the peer retransmitted its SYN. Answer again.
            self._layer.count("syn_retransmits_received")
            self._send_syn(now)
            return False
        if (
            state is _S.TIME_WAIT
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
                self._ack_now = True  # duplicate or old data is always re-acknowledged
                self._layer.mark_dirty(self)
                if state is _S.TIME_WAIT and flags & FIN:
                    # RFC 9293 §3.10.7.4 eighth: a retransmitted FIN restarts the 2 MSL timeout.
                    self._time_wait_deadline = now + 2 * self._layer.config.msl
            else:
                self._layer.count("drops_rst_out_of_window")
            return False
        # RFC 7323 §4.3: remember TSval of the segment that will be acknowledged next.
        if tsval >= 0 and offset <= 0 and ((tsval - self._ts_recent) & _SEQ_MASK) < _SEQ_HALF:
            self._ts_recent = tsval
            self._ts_recent_time = now
        # --- second: RST (RFC 5961 §3.2) ---
        if flags & RST:
            if offset == 0:
                self._reset_received()
            else:
                self._challenge_ack("rst")
            return False
        # --- fourth: SYN (RFC 5961 §4.2, RFC 9293 §3.10.7.4) ---
        if flags & SYN:
            if state is _S.SYN_RECEIVED and self.listener is not None:
                self._layer.count("resets_syn_in_syn_received")
                self._finish(None)
                return False
            self._challenge_ack("syn")
            return False
        # --- fifth: ACK ---
        if not flags & ACK:
            self._layer.count("drops_no_ack")
            return False
        if state is _S.SYN_RECEIVED:
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
            self._snd_wl1 = seq
            self._snd_wl2 = ack
            self._update_send_window(window)
            self._set_state(_S.FIN_WAIT_1 if self._fin_queued else _S.ESTABLISHED)
            if self.listener is None:
                self._report_connected()
            state = self.state
        if not self._process_ack(seq, ack, window, options, length, now):
            return False
        state = self.state
        if state is _S.CLOSED:
            return False
        # --- seventh: segment text ---
        if length or flags & FIN:
            if state in _RECEIVES_DATA:
                self._receive_data(offset, payload, bool(flags & FIN), now)
            elif state is _S.TIME_WAIT and flags & FIN:
                # RFC 9293 §3.10.7.4 eighth: a retransmitted FIN restarts the 2 MSL timeout.
                self._ack_now = True
                self._time_wait_deadline = now + 2 * self._layer.config.msl
                self._layer.mark_dirty(self)
            else:
                self._ack_now = True  # CLOSE-WAIT, CLOSING, LAST-ACK: ignore text, re-ACK.
                self._layer.mark_dirty(self)
        return False

    def _predicted_segment(
        self, ack: int, window: int, options: TcpOptions | None, payload: memoryview, now: float
    ) -> bool:
        """Header prediction (Jacobson 1990; RFC 9293 §3.10.7.4 in its commonest cases): an
        in-order data segment in ESTABLISHED that changes no window and either acknowledges
        nothing new or acknowledges everything we sent (a request/response exchange), with
        no SACK, PAWS, recovery or window trimming to consider. Returns False (having
        changed nothing) whenever the full processing is needed."""
        length = len(payload)
        if (
            not length
            or self._ooo
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
                or self._lost_bytes
                or self._sacked_bytes
                or self._reno_sacked
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
        self._layer.count("predicted_segments")  # Linux: TcpExtTCPHPHits
        if acks_all:
            self._ack_new_data(self._nxt, options, now)
            self._stop_persist_if_window_open()
        self._last_received = now
        self._keepalive_probes = 0
        self._snd_wl1 = self._rcv_nxt  # RFC 9293 §3.10.7.4: window from the newest segment
        self._snd_wl2 = ack
        self._rbuf.append(_owned(payload))
        self._rcv_off += length
        self._rcv_nxt = (self._rcv_nxt + length) & _SEQ_MASK
        pending = self._bytes_since_ack + length
        self._bytes_since_ack = pending
        if pending >= 2 * self._rcv_mss:
            self._ack_now = True  # RFC 5681 §4.2: every second full-sized segment
        elif self._delack_deadline is None:
            self._delack_deadline = now + self._layer.config.delayed_ack_timeout
        layer = self._layer
        if not self._readable_pending:
            self._readable_pending = True
            layer.events.append(TcpReadable(self))
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
        payload: memoryview,
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
            self._snd_wl1 = seq
            self._snd_wl2 = ack
            self._update_send_window(window)
            if options is not None and options.timestamp is not None and self._ts_ok:
                self._rtt_sample_ts(options.timestamp[1], now)
            elif self._retries == 0:
                self._rtt.sample(now - self._syn_time)  # Karn: only an unretransmitted SYN
            self._set_state(_S.FIN_WAIT_1 if self._fin_queued else _S.ESTABLISHED)
            self._report_connected()
            self._ack_now = True
            if payload or flags & FIN:
                self._receive_data(0, payload, bool(flags & FIN), now)
            self._layer.mark_dirty(self)
        else:
            # Simultaneous open (RFC 9293 §3.5 figure 8): SYN-RECEIVED, send SYN-ACK.
            self._snd_wnd = window
            self._max_snd_wnd = window
            self._set_state(_S.SYN_RECEIVED)
            self._rto_deadline = None
            self._send_syn(now)

    def _reset_received(self) -> None:
        """An acceptable RST (RFC 9293 §3.10.7.4 second)."""
        self._layer.count("resets_received")
        state = self.state
        if state is _S.SYN_RECEIVED and self.listener is not None:
            self._finish(None)  # passive open: back to LISTEN (the listener keeps listening)
        elif state is _S.SYN_RECEIVED:
            self._finish(ConnectionRefusedError(errno.ECONNREFUSED, "TCP connection refused"))
        elif state is _S.TIME_WAIT:
            self._finish(None)
        else:
            self._finish(ConnectionResetError(errno.ECONNRESET, "TCP connection reset by peer"))

    def _challenge_ack(self, reason: str) -> None:
        """RFC 5961 §3.2/§4.2/§5.2: answer with an ACK, rate-limited (§7)."""
        if self._layer.allow_challenge_ack():
            self._layer.count(f"challenge_acks_{reason}")
            self._send_control(self._seq(self._nxt), ACK, self._layer.now)
        else:
            self._layer.count("challenge_acks_suppressed")

    # --- ACK processing (RFC 9293 §3.10.7.4 fifth; RFC 5681; RFC 6675) ---------------------

    def _ack_offset(self, ack: int) -> int:
        """Convert an ACK field to an unwrapped send offset (relative to SND.UNA)."""
        return self._una + seq_diff(ack, self._seq(self._una))

    def _process_ack(  # noqa: PLR0917
        self, seq: int, ack: int, window: int, options: TcpOptions | None, length: int, now: float
    ) -> bool:
        """Returns False when the segment must be dropped."""
        ack_off = self._ack_offset(ack)
        una = self._una
        if ack_off > self._nxt:
            # RFC 9293 §3.10.7.4: ACK for something not yet sent: send ACK, drop.
            self._layer.count("drops_ack_too_new")
            self._ack_now = True
            self._layer.mark_dirty(self)
            return False
        if ack_off < una - max(self._max_snd_wnd, 1):
            # RFC 5961 §5.2: too old to be acceptable; challenge.
            self._layer.count("drops_ack_too_old")
            self._challenge_ack("old_ack")
            return False
        self._keepalive_probes = 0
        sack_blocks = options.sack_blocks if options is not None and self._sack_ok else ()
        old_wnd = self._snd_wnd
        delivered_before = una + self._sacked_bytes + self._reno_sacked
        # RFC 9293 §3.10.7.4: update the send window from newer segments only.
        if seq_diff(seq, self._snd_wl1) > 0 or (
            seq == self._snd_wl1 and seq_diff(ack, self._snd_wl2) >= 0
        ):
            self._snd_wl1 = seq
            self._snd_wl2 = ack
            self._update_send_window(window)
        if ack_off > una:
            self._ack_new_data(ack_off, options, now)
        elif ack_off == una and length == 0 and self._nxt > una and self._snd_wnd == old_wnd:
            # RFC 5681 §2 "duplicate acknowledgment".
            self._dupacks += 1
            self._layer.count("duplicate_acks_received")
            if not self._sack_ok and self._recovery is None:
                self._reno_sacked = min(self._reno_sacked + self._snd_mss, self._outstanding() - 1)
            elif not self._sack_ok:
                self._reno_sacked = min(self._reno_sacked + self._snd_mss, self._outstanding())
        if sack_blocks:
            self._process_sack(sack_blocks)
        if self._nxt > self._una:
            self._detect_loss(now)
        if self._recovery == "fast":
            delivered = self._una + self._sacked_bytes + self._reno_sacked - delivered_before
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
        if head < count and records[head].start < ack_off:
            record = records[head]
            cut = ack_off - record.start
            if record.sacked:
                self._sacked_bytes -= cut
            elif record.lost:
                self._lost_bytes -= cut
                if record.retransmitting:
                    self._retrans_bytes -= cut
            record.start = ack_off
        self._head = head
        if head > 256 and head * 2 > len(records):
            del records[:head]
            self._retx_index = max(self._retx_index - head, 0)
            self._fack_index = max(self._fack_index - head, 0)
            self._rack_index = max(self._rack_index - head, 0)
            self._head = 0
        # Trim the send buffer (data offsets start at 1; FIN sits after the data).
        sbuf_start = self._sbuf_start
        data_end = sbuf_start + self._sbuf.size
        data_acked_to = ack_off if ack_off < data_end else data_end
        if data_acked_to > sbuf_start:
            self._sbuf.release(data_acked_to - sbuf_start)
            self._sbuf_start = data_acked_to
        self._una = ack_off
        self._dupacks = 0
        if self._reno_sacked:
            self._reno_sacked = max(self._reno_sacked - acked, 0)
        self._retries = 0
        # RTT: timestamps (RFC 7323 §4.2) or Karn's rule (RFC 6298 §3).
        samples_before = self._rtt.samples
        if self._ts_ok and options is not None and options.timestamp is not None:
            self._rtt_sample_ts(options.timestamp[1], now, since_last_send)
        elif rtt_sample is not None:
            self._rtt.sample(rtt_sample)
        self._rtt.reset_backoff()
        if (
            self._rtt.samples != samples_before
            and self._cc.in_slow_start
            and self._recovery is None
        ):
            self._hystart(ack_off)
        # Congestion control.
        if self._recovery is not None and ack_off >= self._recover:
            if self._recovery == "fast":
                # RFC 6937 §3 / RFC 6675 §5: recovery ends with cwnd = ssthresh.
                self._cc.cwnd = max(self._cc.ssthresh, self._snd_mss)
                self._cc.on_recovery_end(now)
            self._recovery = None
        if self._recovery is None or self._recovery == "loss":
            self._cc.on_ack(acked, flight, now, self._rtt.srtt)
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
            if self.state in _APP_CAN_SEND and not self._fin_queued:
                self._layer.events.append(TcpWritable(self))

    def _hystart(self, ack_off: int) -> None:
        """HyStart++ delay increase (RFC 9406 §4.2): per round trip, compare the smallest
        RTT of this round with the last; a rise of eta ends slow start (ssthresh = cwnd)."""
        if not self._layer.config.hystart:
            return
        sample = self._rtt.latest_rtt
        assert sample is not None
        if ack_off >= self._hs_round_end:  # a new round begins
            self._hs_last_round_min = self._hs_round_min
            self._hs_round_min = float("inf")
            self._hs_samples = 0
            self._hs_round_end = self._nxt
        self._hs_round_min = min(self._hs_round_min, sample)
        self._hs_samples += 1
        last = self._hs_last_round_min
        if (
            self._hs_samples >= HYSTART_RTT_SAMPLES
            and last != float("inf")
            and self._cc.cwnd >= HYSTART_LOW_SSTHRESH * self._snd_mss
        ):
            eta = min(max(last / 8, HYSTART_MIN_RTT_THRESH), HYSTART_MAX_RTT_THRESH)
            if self._hs_round_min >= last + eta:
                self._layer.count("hystart_exits")
                self._cc.ssthresh = self._cc.cwnd

    def _forget(self, record: _Sent) -> None:
        """Remove a cumulatively ACKed record's share from the pipe counters."""
        size = record.end - record.start
        if record.sacked:
            self._sacked_bytes -= size
        elif record.lost:
            self._lost_bytes -= size
            if record.retransmitting:
                self._retrans_bytes -= size

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

    def _update_send_window(self, window: int) -> None:
        wnd = window << self._snd_wscale
        self._snd_wnd = wnd
        self._max_snd_wnd = max(self._max_snd_wnd, wnd)

    def _process_sack(self, blocks: tuple[tuple[int, int], ...]) -> None:
        """Mark SACKed records (RFC 2018 §5, RFC 6675 §4 Update())."""
        records = self._records
        base_seq = self._seq(self._una)
        for left, right in blocks:
            start = self._una + seq_diff(left, base_seq)
            end = self._una + seq_diff(right, base_seq)
            if end <= start or end <= self._una or end > self._nxt:
                continue  # a D-SACK below SND.UNA or garbage: ignore
            index = bisect_left(records, start, lo=self._head, key=_start_of)
            if index > self._head and records[index - 1].end > start:
                index -= 1
            while index < len(records) and records[index].end <= end:
                record = records[index]
                if not record.sacked and record.start >= start:
                    size = record.end - record.start
                    if record.lost:
                        record.lost = False
                        self._lost_bytes -= size
                        if record.retransmitting:
                            self._retrans_bytes -= size
                            record.retransmitting = False
                    record.sacked = True
                    self._sacked_bytes += size
                    self._rack_sent_at = max(self._rack_sent_at, record.sent_at)
                index += 1
            self._highest_sacked = max(self._highest_sacked, end)

    def _detect_loss(self, now: float) -> None:
        """Enter fast recovery on DupThresh evidence (RFC 5681 §3.2, RFC 6675 §5)."""
        if self._sack_ok and self._highest_sacked > self._una:
            self._mark_lost_by_sack()
            self._mark_lost_by_time()
        if self._retrans_bytes:
            self._detect_lost_retransmissions()
        if self._recovery is None and (
            self._dupacks >= DUP_THRESH or self._lost_bytes > self._retrans_bytes
        ):
            self._layer.count("fast_retransmits")
            self._tlp_deadline = None
            self._recovery = "fast"
            self._recover = self._nxt
            # RFC 6937 §3: PRR state at the start of recovery.
            self._prr_delivered = 0
            self._prr_out = 0
            self._recover_fs = max(self._flight_size(), 1)
            self._cc.on_congestion(self._flight_size(), now)
            if self._lost_bytes <= self._retrans_bytes:
                self._mark_head_lost()

    def _proportional_rate_reduction(self, delivered: int) -> None:
        """RFC 6937 §3 (PRR-SSRB): on each ACK in fast recovery, let cwnd = pipe + sndcnt,
        so the window comes down to ssthresh smoothly instead of in one silent step."""
        cc = self._cc
        self._prr_delivered += max(delivered, 0)
        pipe = self._flight()
        ssthresh = cc.ssthresh
        if pipe > ssthresh:
            # Proportional part: ceil(prr_delivered * ssthresh / RecoverFS) - prr_out.
            sndcnt = -(-self._prr_delivered * ssthresh // self._recover_fs) - self._prr_out
        else:
            # Slow-start reduction bound: catch up to ssthresh, at most MSS beyond delivery.
            limit = max(self._prr_delivered - self._prr_out, delivered) + self._snd_mss
            sndcnt = min(ssthresh - pipe, limit)
        cc.cwnd = pipe + max(sndcnt, 0)

    def _mark_lost_by_sack(self) -> None:
        """RFC 6675 §4 IsLost(), in its byte form: a hole is lost once more than
        (DupThresh - 1) * SMSS bytes above it have been SACKed (forward ACK bound)."""
        records = self._records
        threshold = self._highest_sacked - (DUP_THRESH - 1) * self._snd_mss
        index = max(self._fack_index, self._head)
        while index < len(records):
            record = records[index]
            if record.end > threshold:
                break
            if not record.sacked and not record.lost:
                record.lost = True
                self._lost_bytes += record.end - record.start
            index += 1
        self._fack_index = index

    def _mark_lost_by_time(self) -> None:
        """RFC 8985 §6.2 (RACK): an unSACKed segment is lost once a segment sent after it,
        by more than the reordering window (a quarter of min RTT), has been delivered."""
        limit = self._rack_sent_at - (self._rtt.min_rtt or 0.0) / 4
        records = self._records
        index = max(self._rack_index, self._head)
        while index < len(records):
            record = records[index]
            if not (record.sacked or record.lost):
                if record.sent_at >= limit:
                    break
                record.lost = True
                self._lost_bytes += record.end - record.start
                self._retx_index = min(self._retx_index, index)
            index += 1
        self._rack_index = index

    def _detect_lost_retransmissions(self) -> None:
        """RFC 8985 §6.2 in part: a retransmission is lost once a segment sent after it
        (by more than a quarter of min RTT, the reordering window) has been delivered."""
        records = self._records
        limit = self._rack_sent_at - (self._rtt.min_rtt or 0.0) / 4
        end = min(self._retx_index, len(records))
        for index in range(self._head, end):
            record = records[index]
            if record.retransmitting and record.sent_at < limit:
                record.retransmitting = False
                self._retrans_bytes -= record.end - record.start
                self._layer.count("lost_retransmissions_detected")
                self._retx_index = min(self._retx_index, index)

    def _mark_head_lost(self) -> None:
        """Mark the first un-SACKed outstanding record lost (NewReno, RFC 6582 §3.2)."""
        records = self._records
        for index in range(self._head, len(records)):
            record = records[index]
            if record.sacked:
                continue
            if not record.lost:
                record.lost = True
                self._lost_bytes += record.end - record.start
                self._retx_index = min(self._retx_index, index)
            elif not record.retransmitting:
                self._retx_index = min(self._retx_index, index)
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
        pipe = (
            self._nxt
            - self._una
            - self._sacked_bytes
            - self._reno_sacked
            - self._lost_bytes
            + self._retrans_bytes
        )
        return pipe if pipe > 0 else 0

    def _after_ack_state_changes(self, now: float) -> None:
        """FIN acknowledged: FIN-WAIT-1/CLOSING/LAST-ACK transitions (RFC 9293 §3.10.7.4 fifth)."""
        state = self.state
        fin_acked = self._fin_sent() and self._una >= self._fin_end()
        if not fin_acked:
            return
        if state is _S.FIN_WAIT_1:
            self._set_state(_S.FIN_WAIT_2)
            if self._orphan:
                self._fin_wait_deadline = now + self._layer.config.fin_wait_2_timeout
        elif state is _S.CLOSING:
            self._enter_time_wait(now)
        elif state is _S.LAST_ACK:
            self._finish(None)

    # --- receiving text (RFC 9293 §3.10.7.4 seventh/eighth) -------------------------------

    def _receive_data(self, offset: int, payload: memoryview, fin: bool, now: float) -> None:
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
                self._rbuf.append(_owned(payload))
                self._rcv_off = end
                ooo = self._ooo
                if ooo:
                    self._ack_now = True  # RFC 5681 §4.2: ACK at once when a gap fills
                    ready = ooo.pop_ready(self._rcv_off)
                    if ready is not None:
                        self._rbuf.append(ready)
                        self._rcv_off += len(ready)
                    if not ooo:
                        self._ooo = None  # idle connections keep no queue
                self._bytes_since_ack += in_order
                if self._bytes_since_ack >= 2 * self._rcv_mss:
                    self._ack_now = True  # RFC 5681 §4.2: every second full-sized segment
                elif self._delack_deadline is None:
                    self._delack_deadline = now + self._layer.config.delayed_ack_timeout
                self._rcv_nxt = (self._irs + 1 + self._rcv_off) & _SEQ_MASK
                if not self._readable_pending and not self._orphan:
                    self._readable_pending = True
                    self._layer.events.append(TcpReadable(self))
            elif length:
                self._ack_now = True  # duplicate text: re-acknowledge at once
                self._layer.count("duplicate_segments_received")
        elif length:
            self._ack_now = True  # RFC 5681 §4.2: out-of-order: immediate (duplicate) ACK
            if self._ooo is None:
                self._ooo = Reassembly(self._layer.config.out_of_order_limit)
            if self._ooo.add(start, payload):
                self._layer.count("out_of_order_segments_received")
            else:
                self._layer.count("drops_out_of_order_queue_full")
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
        if state is _S.ESTABLISHED or state is _S.SYN_RECEIVED:
            self._set_state(_S.CLOSE_WAIT)
        elif state is _S.FIN_WAIT_1:
            if self._fin_sent() and self._una >= self._fin_end():
                self._enter_time_wait(now)
            else:
                self._set_state(_S.CLOSING)
        elif state is _S.FIN_WAIT_2:
            self._enter_time_wait(now)

    # ==================================================================================
    # Sending
    # ==================================================================================

    def _seq(self, offset: int) -> int:
        return (self._iss + offset) & _SEQ_MASK

    def _data_end(self) -> int:
        """Offset just past the last byte the app has written."""
        return self._sbuf_start + self._sbuf.size

    def _fin_end(self) -> int:
        """Offset just past our FIN (valid once a FIN is queued)."""
        return self._data_end() + 1

    def _fin_sent(self) -> bool:
        return self._fin_queued and self._nxt > self._data_end()

    def output(self, now: float) -> None:
        """Send what the windows allow, then a pure ACK if one is still owed."""
        state = self.state
        if state in _SENDS_DATA:
            if self._lost_bytes > self._retrans_bytes:
                self._retransmit_lost(now)
            self._send_new_data(now)
            if self._tlp_deadline is None and self._nxt > self._una:
                self._arm_tlp(now)
        if self._ack_now and state is not _S.CLOSED and state is not _S.SYN_SENT:
            self._send_ack(now)

    def _retransmit_lost(self, now: float) -> None:
        """RFC 6675 §5 NextSeg() rule 1: retransmit lost segments while pipe < cwnd."""
        records = self._records
        index = max(self._retx_index, self._head)
        cwnd = self._cc.cwnd
        while index < len(records) and self._lost_bytes > self._retrans_bytes:
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
            self._retrans_bytes += record.end - record.start
            self._layer.count("segments_retransmitted")
            index += 1
        self._retx_index = index

    def _send_new_data(self, now: float) -> None:
        """Send new data within min(cwnd, peer window), with Nagle and SWS avoidance.

        With TSO (``layer.max_segment_payload``) one segment carries up to that many bytes,
        a whole number of MSS, for the device to cut.
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
        nxt = self._nxt
        while True:
            available = data_end - nxt
            if available <= 0 and not (self._fin_queued and nxt == data_end):
                return
            cwnd_room = cwnd - flight
            if available > 0:
                room = window_edge - nxt
                room = min(room, cwnd_room)
                size = available if available < quantum else quantum
                if room < size:
                    size = room if room > 0 else 0
                if size <= 0:
                    if window_edge - nxt <= 0 and nxt == self._una:
                        self._arm_persist(now)
                    return
                if size < mss and not self._may_send_small(size, available, room, now):
                    return
            else:
                # A FIN alone waits for cwnd only, never for the peer's window (as Linux).
                if cwnd_room <= 0 and flight > 0:
                    return
                size = 0
            send_fin = self._fin_queued and nxt + size == data_end
            end = nxt + size + (1 if send_fin else 0)
            self._transmit(nxt, end, now)
            records.append(_Sent(nxt, end, now))
            flight += end - nxt
            nxt = self._nxt = end
            if self._rto_deadline is None:
                self._rto_deadline = now + self._rtt.rto
            if send_fin:
                return

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
            self._prr_out += end - start
        data_end = self._sbuf_start + self._sbuf.size
        flags = ACK
        if end > data_end:
            if self._fin_queued:
                flags = ACK | FIN
            stop = data_end
        else:
            stop = end
        payload: bytes | memoryview = b""
        if stop > start:
            payload = self._sbuf.view(start - self._sbuf_start, stop - start)
            if stop == data_end:
                flags |= PSH
        self._emit(self._seq(start), self._rcv_nxt, flags, -1, None, payload, now)

    def _send_ack(self, now: float) -> None:
        self._emit(self._seq(self._nxt), self._rcv_nxt, ACK, -1, None, b"", now)

    def _send_control(self, seq: int, flags: int, now: float) -> None:
        """A RST or challenge ACK from this connection's tuple."""
        ack = self._rcv_nxt if flags & ACK else 0
        self._emit(seq, ack, flags, -1 if flags & ACK else 0, None, b"", now)

    def _advertised_window_field(self, *, initial: bool = False) -> int:
        """The window field: right edge never moves left (RFC 9293 §3.8.6.2.2 / RFC 7323 §2.4),
        and only moves right by at least min(RCV.BUFF/2, MSS) (receiver SWS avoidance)."""
        limit = self._rbuf_limit
        free = limit - self._rbuf.size
        candidate = self._rcv_off + free if free > 0 else self._rcv_off
        advertised = self._rcv_adv
        half = limit // 2
        threshold = half if half < self._rcv_mss else self._rcv_mss
        if (initial or candidate - advertised >= threshold) and candidate > advertised:
            edge = candidate
        else:
            edge = advertised
        scale = self._rcv_wscale
        field = (edge - self._rcv_off + (1 << scale) - 1) >> scale
        return field if field < MAX_WINDOW_FIELD else MAX_WINDOW_FIELD

    def _emit(  # noqa: PLR0917
        self,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        options: bytes | None,
        payload: bytes | memoryview,
        now: float,
    ) -> None:
        """Build one segment (window -1: compute it; options None: TS/SACK as negotiated)."""
        if window < 0:
            window = self._advertised_window_field()
            edge = self._rcv_off + (window << self._rcv_wscale)
            if edge > self._rcv_adv:
                self._rcv_adv = edge
                self._rcv_wnd_max = max(self._rcv_wnd_max, edge - self._rcv_off)
        if options is None:
            blocks = (
                self._sack_block_budget(len(payload))
                if self._sack_ok and self._ooo and flags & ACK
                else 0
            )
            if self._ts_ok and not flags & RST:
                if blocks:
                    options = self._ts_and_sack_options(now, blocks)
                else:
                    partial = self._layer.partial_checksums
                    header = _HEADER_WITH_TS.pack(
                        self.local_port,
                        self.remote_port,
                        seq,
                        ack,
                        _TS_OFFSET_BYTE,
                        flags,
                        window,
                        # Packed at once: the partial sum needs no other header field.
                        self._partial_checksum(_TS_HEADER_LENGTH + len(payload)) if partial else 0,
                        0,
                        1,
                        1,
                        8,
                        10,
                        self._ts_now(now),
                        self._ts_recent,
                    )
                    if partial:
                        segment = header + payload if payload else header
                        self._hand_down(segment, _TS_HEADER_LENGTH, len(payload), flags)
                    else:
                        self._finish_segment(header, payload, flags)
                    return
            elif blocks:
                options = self._sack_options(blocks)
            else:
                options = b""
        header = (
            HEADER.pack(
                self.local_port,
                self.remote_port,
                seq,
                ack,
                (20 + len(options)) << 2,
                flags,
                window,
                0,
                0,
            )
            + options
        )
        self._finish_segment(header, payload, flags)

    def _finish_segment(self, header: bytes, payload: bytes | memoryview, flags: int) -> None:
        """Fill in the checksum and hand the segment to the IP layer.

        With ``layer.partial_checksums`` the field holds only the folded pseudo-header
        sum (Linux CHECKSUM_PARTIAL), for links that complete it (TUN NEEDS_CSUM offload).
        """
        total = len(header) + len(payload)
        if self._layer.partial_checksums:
            checksum = self._partial_checksum(total)
        else:
            partial = self._pseudo_sum + total
            if payload:
                partial = ones_complement_sum(payload, partial)
            checksum = ~ones_complement_sum(header, partial) & 0xFFFF
        if payload:
            segment = b"".join((header[:16], checksum.to_bytes(2, "big"), header[18:], payload))
        else:
            segment = header[:16] + checksum.to_bytes(2, "big") + header[18:]
        self._hand_down(segment, len(header), len(payload), flags)

    def _partial_checksum(self, segment_length: int) -> int:
        """The folded pseudo-header sum that a checksum-offloading link completes."""
        return ones_complement_sum(b"", self._pseudo_sum + segment_length)

    def _hand_down(
        self, segment: bytes, header_length: int, payload_length: int, flags: int
    ) -> None:
        """Account for a finished ``segment`` and emit it."""
        if flags & ACK:
            self._ack_now = False
            self._delack_deadline = None
            self._bytes_since_ack = 0
        layer = self._layer
        layer.count("segments_out")
        if flags & RST:
            layer.count("resets_sent")
        if layer.partial_checksums:
            # A TSO super-segment is cut into pieces that each carry this header's options.
            extra = header_length - 20 - (_TS_OPTION_LENGTH if self._ts_ok else 0)
            size = self._snd_mss - extra if payload_length > self._snd_mss - extra else 0
            layer.emit(self.local_address, self.remote_address, segment, size)
        else:
            layer.emit(self.local_address, self.remote_address, segment)

    def _sack_options(self, count: int) -> bytes:
        assert self._ooo is not None
        blocks = self._ooo.sack_blocks(count)
        base = self._irs + 1
        out = bytearray((1, 1, 5, 2 + 8 * len(blocks)))
        for start, end in blocks:
            out += _SACK_EDGE.pack((base + start) & _SEQ_MASK, (base + end) & _SEQ_MASK)
        return bytes(out)

    def _ts_and_sack_options(self, now: float, count: int) -> bytes:
        ts = struct.pack("!BBBBII", 1, 1, 8, 10, self._ts_now(now), self._ts_recent)
        return ts + self._sack_options(count)

    def _sack_block_budget(self, payload_length: int) -> int:
        """How many SACK blocks this segment can carry (RFC 2018 §3: 4, or 3 beside TS).

        A segment of at most one MSS must stay within it with the blocks added
        (RFC 6691 §2: options come out of the payload): fewer blocks, or none, go
        on a full segment. A TSO super-segment keeps them; the device cuts it smaller.
        """
        assert self._ooo is not None
        count = min(self._ooo.range_count, 3 if self._ts_ok else 4)
        if payload_length and payload_length <= self._snd_mss:
            count = min(count, max((self._snd_mss - payload_length - 4) // 8, 0))
        return count

    def _sack_option_length(self) -> int:
        """Option bytes SACK blocks add to a segment we send now (0 without reordering)."""
        if not self._sack_ok or not self._ooo:
            return 0
        return 4 + 8 * min(self._ooo.range_count, 3 if self._ts_ok else 4)

    def _ts_now(self, now: float) -> int:
        """TSval: a 1 ms clock plus the per-connection offset (RFC 7323 §5.4)."""
        return (int(now * TS_HZ) + self._ts_offset) & _SEQ_MASK

    def _after_read(self) -> None:
        """The app read: clear the readable latch, and send a window update when the window
        grew a lot (RFC 9293 §3.8.6.2.2) and the peer may be waiting for it: what is left
        is at most half the largest window we offered, or under one segment (Linux's
        tcp_cleanup_rbuf rule). A small read early on, while the first window is barely
        used, then goes out with the answer instead of as a pure ACK before it."""
        self._readable_pending = False
        if self.state not in _RECEIVES_DATA:
            return
        current = self._rcv_adv - self._rcv_off
        if current >= self._rcv_mss and 2 * current > self._rcv_wnd_max:
            return
        free = self._rbuf_limit - self._rbuf.size
        threshold = min(self._rbuf_limit // 2, self._rcv_mss)
        if free - current >= threshold and free >= 2 * current:
            self._ack_now = True
            self._layer.mark_dirty(self)

    # ==================================================================================
    # Timers
    # ==================================================================================

    def next_deadline(self) -> float | None:
        """The earliest of this connection's timers."""
        best: float | None = None
        for deadline in (
            self._rto_deadline,
            self._delack_deadline,
            self._persist_deadline,
            self._keepalive_deadline,
            self._time_wait_deadline,
            self._fin_wait_deadline,
            self._tlp_deadline,
        ):
            if deadline is not None and (best is None or deadline < best):
                best = deadline
        return best

    def on_timer(self, now: float) -> None:
        """Run every timer that is due (early or duplicate calls do nothing)."""
        if self._time_wait_deadline is not None and now >= self._time_wait_deadline:
            self._time_wait_deadline = None
            self._layer.count("time_wait_expired")
            self._set_state(_S.CLOSED)
            self._layer.forget(self)
            return
        if self._fin_wait_deadline is not None and now >= self._fin_wait_deadline:
            self._fin_wait_deadline = None
            if self.state is _S.FIN_WAIT_2:
                self._layer.count("orphans_fin_wait_2_timeout")
                self._finish(None)
                return
        if self._tlp_deadline is not None and now >= self._tlp_deadline:
            self._tlp_deadline = None
            self._tail_loss_probe(now)
        if self._rto_deadline is not None and now >= self._rto_deadline:
            self._rto_deadline = None
            self._retransmission_timeout(now)
            if self.state is _S.CLOSED:
                return
        if self._persist_deadline is not None and now >= self._persist_deadline:
            self._persist_deadline = None
            self._persist_probe(now)
            if self.state is _S.CLOSED:
                return
        if self._keepalive_deadline is not None and now >= self._keepalive_deadline:
            self._keepalive_deadline = None
            self._keepalive_fire(now)
            if self.state is _S.CLOSED:
                return
        if self._delack_deadline is not None and now >= self._delack_deadline:
            self._delack_deadline = None
            self._ack_now = True
        self.output(now)
        if self._keepalive and self._keepalive_deadline is None:
            self._arm_keepalive(now)

    def _retransmission_timeout(self, now: float) -> None:
        """RFC 6298 §5.4-5.6: retransmit the earliest segment, back off, restart."""
        state = self.state
        config = self._layer.config
        self._layer.count("retransmission_timeouts")
        self._retries += 1
        if state is _S.SYN_SENT or state is _S.SYN_RECEIVED:
            limit = (
                config.syn_retries
                if state is _S.SYN_SENT or self.listener is None
                else config.synack_retries
            )
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
        if self._retries > config.data_retries:
            self._give_up(now)
            return
        self._cc.on_timeout(self._flight_size(), now)
        self._rtt.back_off()
        records = self._records
        # RFC 2018 §8 / RFC 6675 §5.1: SACKed data at SND.UNA means the receiver reneged.
        reneged = self._head < len(records) and records[self._head].sacked
        for index in range(self._head, len(records)):
            record = records[index]
            if record.sacked and reneged:
                record.sacked = False
                self._sacked_bytes -= record.end - record.start
            if record.sacked:
                continue
            if record.retransmitting:
                record.retransmitting = False
                self._retrans_bytes -= record.end - record.start
            if not record.lost:
                record.lost = True
                self._lost_bytes += record.end - record.start
        if reneged:
            self._highest_sacked = self._una
        self._reno_sacked = 0
        self._dupacks = 0
        self._retx_index = self._head
        self._fack_index = self._head
        self._rack_index = self._head
        self._recovery = "loss"
        self._recover = self._nxt
        self._rto_deadline = now + self._rtt.rto
        self._tlp_deadline = None
        self._retransmit_lost(now)

    def _give_up(self, now: float) -> None:
        self._layer.count("connections_timed_out")
        if self.state is _S.SYN_RECEIVED and self.listener is not None:
            self._finish(None)
            return
        if self.state in SYNCHRONIZED:
            self._send_control(self._seq(self._nxt), RST | ACK, now)
        self._finish(_timeout_error("TCP retransmission limit reached", self._soft_error))

    def _arm_tlp(self, now: float) -> None:
        """RFC 8985 §7.2: schedule a tail loss probe (PTO) if one may be sent."""
        srtt = self._rtt.srtt
        if (
            srtt is None
            or self._recovery is not None
            or self._tlp_probe_out
            or not self._sack_ok
            or not self._layer.config.tail_loss_probe
            or self._nxt <= self._una
            or self.state not in _SENDS_DATA
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
        if self._nxt <= self._una or self._recovery is not None or self.state not in _SENDS_DATA:
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
            self._records.append(_Sent(start, end, now))
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
        if self._nxt != self._una or self._data_end() <= self._nxt or self.state not in _SENDS_DATA:
            self._persist_backoff = 0
            return
        if self._snd_wnd > 0 and self._snd_wnd < self._snd_mss:
            # A small window that Nagle/SWS held back: after the persist timeout, fill it.
            size = min(self._snd_wnd, self._data_end() - self._nxt)
            end = self._nxt + size
            self._transmit(self._nxt, end, now)
            self._records.append(_Sent(self._nxt, end, now))
            self._nxt = end
            self._rto_deadline = now + self._rtt.rto
            return
        self._layer.count("window_probes_sent")
        self._persist_backoff += 1
        self._emit(self._seq(self._una - 1), self._rcv_nxt, ACK, -1, None, b"", now)
        self._arm_persist(now)

    def _arm_keepalive(self, now: float) -> None:
        if self.state in (_S.ESTABLISHED, _S.CLOSE_WAIT):
            config = self._layer.config
            base = self._last_received
            interval = (
                config.keepalive_idle if self._keepalive_probes == 0 else config.keepalive_interval
            )
            self._keepalive_deadline = (
                max(base + interval, now) if self._keepalive_probes == 0 else now + interval
            )

    def _keepalive_fire(self, now: float) -> None:
        """RFC 1122 §4.2.3.6: probe an idle connection; give up after the configured count."""
        config = self._layer.config
        if self.state not in (_S.ESTABLISHED, _S.CLOSE_WAIT) or not self._keepalive:
            return
        if self._keepalive_probes == 0 and now < self._last_received + config.keepalive_idle:
            self._keepalive_deadline = self._last_received + config.keepalive_idle
            return
        if self._nxt > self._una:
            self._keepalive_deadline = now + config.keepalive_interval
            return  # the retransmission timer is watching the connection
        if self._keepalive_probes >= config.keepalive_probes:
            self._layer.count("keepalive_timeouts")
            self._send_control(self._seq(self._nxt), RST | ACK, now)
            self._finish(_timeout_error("TCP keepalive timed out", self._soft_error))
            return
        self._keepalive_probes += 1
        self._layer.count("keepalive_probes_sent")
        self._emit(self._seq(self._una - 1), self._rcv_nxt, ACK, -1, None, b"", now)
        self._keepalive_deadline = now + config.keepalive_interval

    # ==================================================================================
    # ICMP (RFC 1122 §4.2.3.9, RFC 5927)
    # ==================================================================================

    def icmp_error(self, seq: int, error: OSError, now: float) -> None:
        """An ICMP error quoting one of our segments with sequence number ``seq``."""
        offset = self._ack_offset(seq)
        if not self._una <= offset <= self._nxt:
            self._layer.count("icmp_errors_out_of_window")  # RFC 5927 §4.1
            return
        if self.state is _S.SYN_SENT and isinstance(error, ConnectionRefusedError):
            self._layer.count("connections_refused_by_icmp")
            self._finish(error)
            return
        self._soft_error = error
        self._layer.count("icmp_soft_errors")

    # ==================================================================================
    # State changes and the end of a connection
    # ==================================================================================

    def _set_state(self, state: TcpState) -> None:
        """The one place the connection's state changes."""
        self.state = state
        if state is _S.ESTABLISHED:
            self._syn_options = None  # only a SYN-ACK retransmission needed them
            self._layer.count("connections_established")
            if self._keepalive:
                self._arm_keepalive(self._layer.now)

    def _report_connected(self) -> None:
        if not self._connected_reported:
            self._connected_reported = True
            self._layer.events.append(TcpConnected(self))

    def _enter_time_wait(self, now: float) -> None:
        """RFC 9293 §3.4.2 / §3.10.7.4: TIME-WAIT for 2*MSL; the app sees the close now."""
        self._set_state(_S.TIME_WAIT)
        self._rto_deadline = None
        self._persist_deadline = None
        self._keepalive_deadline = None
        self._fin_wait_deadline = None
        self._tlp_deadline = None
        self._time_wait_deadline = now + 2 * self._layer.config.msl
        self._report_closed(None)
        self._layer.mark_dirty(self)

    def _finish(self, error: OSError | None) -> None:
        """Enter CLOSED: stop timers, drop buffers, report once, leave the layer's tables."""
        self._set_state(_S.CLOSED)
        self._rto_deadline = self._delack_deadline = self._persist_deadline = None
        self._keepalive_deadline = self._time_wait_deadline = self._fin_wait_deadline = None
        self._tlp_deadline = None
        self._ack_now = False
        self._sbuf = SendBuffer()
        self._records = []
        self._head = self._retx_index = self._fack_index = self._rack_index = 0
        self._sacked_bytes = self._lost_bytes = self._retrans_bytes = self._reno_sacked = 0
        self._nxt = self._una  # nothing is outstanding any more
        self._report_closed(error)
        self._layer.forget(self)

    def _report_closed(self, error: OSError | None) -> None:
        if self._closed_reported:
            return
        if self.listener is not None and not self._connected_reported:
            return  # a half-open passive connection the app never saw
        self._closed_reported = True
        self._layer.events.append(TcpClosed(self, error))

    def mark_accepted(self) -> None:
        """The listener queued this connection for the app: from now on the app hears its end."""
        self._connected_reported = True


def window_scale_for(buffer: int) -> int:
    """The smallest shift that lets the window field cover ``buffer`` (RFC 7323 §2.3)."""
    scale = 0
    while (MAX_WINDOW_FIELD << scale) < buffer and scale < MAX_WINDOW_SCALE:
        scale += 1
    return scale


def check_invariants(connection: TcpConnection) -> list[str]:
    """Recompute the scoreboard counters from the records (for tests and debugging)."""
    problems = []
    sacked = lost = retrans = 0
    records = connection._records[connection._head :]
    previous_end = connection._una
    for record in records:
        size = record.end - record.start
        if record.start != previous_end:
            problems.append(f"gap/overlap at {record.start} (expected {previous_end})")
        previous_end = record.end
        if record.sacked:
            sacked += size
        elif record.lost:
            lost += size
            if record.retransmitting:
                retrans += size
    if records and previous_end != connection._nxt:
        problems.append(f"records end at {previous_end}, nxt is {connection._nxt}")
    if sacked != connection._sacked_bytes:
        problems.append(f"sacked {connection._sacked_bytes} != {sacked}")
    if lost != connection._lost_bytes:
        problems.append(f"lost {connection._lost_bytes} != {lost}")
    if retrans != connection._retrans_bytes:
        problems.append(f"retrans {connection._retrans_bytes} != {retrans}")
    return problems

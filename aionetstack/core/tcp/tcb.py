"""The transmission control block: every field of one connection, and the one place
its state changes.

``Tcb`` holds the per-connection variables of RFC 9293 §3.3.1 in one slotted layout
(the send side counts in *offsets*: unwrapped ints, 0 is our ISN; the receive side in
offsets from the peer's ISN, so ordering, SACK scoreboards and buffers never see
wrap-around; sequence numbers are converted only at the wire). What most connections
never use lives apart, made on first use: the loss-recovery variables
(:class:`~.loss_state.LossState`, the shared ``NO_LOSS`` until then) and HyStart++'s
rounds (:class:`~.hystart.HyStartRounds`); empty buffers and records are shared
read-only stand-ins (``NO_*`` below). The behaviour lives in parts, one concern per
module, each a subclass of the one before it, so that the class has one line of bases
(what mypyc compiles to one native struct: ``setup.py``): ``Tcb`` <- ``opening`` <-
``timers`` <- ``egress`` <- ``send`` <- ``receive`` <- ``recovery`` <- ``ack`` <-
``ingress`` <- :class:`~.connection.TcpConnection`. A part sees what the parts below
it define; this class declares the rest that they use (the role of
``include/net/tcp.h``): the methods a part calls that a part above it defines, and the
application calls of :class:`~.events.TcpEndpoint`, which the parts hand to events as
``self``. Each raises ``NotImplementedError`` here and the part that owns it overrides it.

A connection talks to its owner through :class:`~.host.TcpHost`, the layer's base class
(concrete, so the compiled build calls it natively), and to its listener through
:class:`AcceptQueue`, a Protocol defined here; neither imports the layer.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from ...wire.checksum import pseudo_header_sum
from ...wire.seq import seq_diff
from ...wire.tcp import ACK, TcpOptions
from .congestion import CongestionControl, create_congestion_control
from .events import TcpClosed, TcpConnected
from .host import TcpHost
from .hystart import HyStartRounds
from .loss_state import NO_LOSS, LossState
from .options import window_scale_for
from .reassembly import Reassembly
from .receive_buffer import ReceiveBuffer
from .rtt import RttEstimator
from .send_buffer import SendBuffer
from .sent_record import SentRecord
from .shared import shared
from .state import TcpState, is_legal_transition

_SEQ_MASK: Final = 0xFFFFFFFF
_SEQ_HALF: Final = 1 << 31
#: RFC 9293 §3.7.1: the send MSS when the peer sends no MSS option (IPv4 / IPv6).
DEFAULT_MSS_IPV4: Final = 536
DEFAULT_MSS_IPV6: Final = 1220
#: Timestamp clock: 1 ms ticks (RFC 7323 §5.4 allows 1 ms .. 1 s).
TS_HZ: Final = 1000
#: Bytes of option space: 12 for NOP NOP TS; SACK adds 2 + 8 per block after NOP NOP.
_TS_OPTION_LENGTH: Final = 12
#: The data-offset byte of a header without options (20 bytes).
_PLAIN_OFFSET_BYTE: Final = (20 // 4) << 4
#: The retransmission records of every connection with none outstanding (read-only: the
#: sending paths make a connection its own list; the ACK that acknowledges everything
#: puts this one back, so an idle connection keeps no records).
NO_RECORDS: Final[list[SentRecord]] = []
#: The send buffer of every connection that has not written yet (never changed: ``send``
#: makes a connection its own at the first write; ``release`` needs bytes held).
NO_SEND_BUFFER: Final = SendBuffer()
#: The receive buffer of every connection holding no unread bytes (never changed: data
#: arriving makes a connection its own; a read that empties it puts this one back).
NO_RECEIVE_BUFFER: Final = ReceiveBuffer()


class AcceptQueue(Protocol):
    """What a passively opened connection needs from its listener (``TcpListener``)."""

    def enqueue_established(self, connection: Any) -> bool:
        """The handshake completed: queue ``connection`` for accept (False: queue full)."""

    def discard(self, connection: Any) -> None:
        """``connection`` ended before it was accepted."""


class Tcb:
    """The fields of one TCP connection and its state changes; see the module docstring."""

    __slots__ = (
        "_ack_now",
        "_app_closed",
        "_bytes_since_ack",
        "_cc",
        "_closed_reported",
        "_config",
        "_connected_reported",
        "_delack_deadline",
        "_eof_reported",
        "_fin_offset",
        "_fin_queued",
        "_fin_wait_deadline",
        "_head",
        "_hs",
        "_iss",
        "_keepalive",
        "_keepalive_deadline",
        "_keepalive_probes",
        "_last_invalid_reply",
        "_last_received",
        "_layer",
        "_loss",
        "_max_snd_wnd",
        "_nagle",
        "_nxt",
        "_ooo",
        "_orphan",
        "_persist_backoff",
        "_persist_deadline",
        "_persist_started",
        "_probes_out",
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
        "_recovery",
        "_retrans_stamp",
        "_retries",
        "_rto_deadline",
        "_rtt",
        "_sack_ok",
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
        "_user_timeout",
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
        layer: TcpHost,
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
        #: The layer's configuration (frozen), one hop away on the paths that read it.
        self._config = config
        self.local_address = local_address
        self.local_port = local_port
        self.remote_address = remote_address
        self.remote_port = remote_port
        self.state = TcpState.CLOSED
        self.user_data: object = None
        self.listener: AcceptQueue | None = None
        #: The deadline this connection currently has in the layer's timer heap.
        self.heap_deadline: float | None = None
        self._pseudo_sum = shared(pseudo_header_sum(local_address, remote_address, 6, 0))
        # --- send side (offsets: 0 is our SYN, data starts at 1) ---
        self._iss = iss
        self._una = 0
        self._nxt = 0
        self._sbuf = NO_SEND_BUFFER  # made at the first write
        self._sbuf_start = 1
        self._sbuf_limit = config.send_buffer
        self._fin_queued = False
        self._snd_wnd = 0
        self._max_snd_wnd = 0
        #: SND.WL1 as a receive offset and SND.WL2 as a send offset (RFC 9293 §3.3.1), so
        #: an idle connection's are the objects it holds in RCV.NXT's and SND.UNA's place.
        self._snd_wl1 = 0
        self._snd_wl2 = 0
        self._snd_wscale = 0
        self._snd_mss = DEFAULT_MSS_IPV4 if len(remote_address) == 4 else DEFAULT_MSS_IPV6
        self._records: list[SentRecord] = NO_RECORDS
        self._head = 0
        #: The loss-recovery variables: shared zeros until the first sign of loss.
        self._loss = NO_LOSS
        self._rack_sent_at = 0.0
        #: HyStart++'s rounds, made at the first RTT sample in slow start.
        self._hs: HyStartRounds | None = None
        self._rack_index = 0
        self._recovery: str | None = None
        self._retries = 0
        self._rtt = RttEstimator(config.initial_rto, config.min_rto, config.max_rto)
        self._cc: CongestionControl = create_congestion_control(
            config.congestion_control, self._snd_mss
        )
        self._nagle = config.nagle
        self._want_writable = False
        self._soft_error: OSError | None = None
        # --- receive side (offsets: 0 is the byte after the peer's SYN) ---
        self._rcv_nxt = 0
        self._rcv_off = 0
        self._rcv_adv = 0
        #: The largest window (bytes) we have offered (Linux's window_clamp in this role):
        #: a read sends a pure window update only once the peer has used half of it.
        self._rcv_wnd_max = 0
        self._rbuf = NO_RECEIVE_BUFFER  # made when data arrives
        self._rbuf_limit = config.receive_buffer
        self._rcv_wscale = window_scale_for(config.receive_buffer) if config.window_scaling else 0
        self._rcv_mss = shared(layer.mss_for(remote_address))
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
        #: When zero-window probing began (None: not probing), for the user timeout.
        self._persist_started: float | None = None
        #: Zero-window probes sent since the peer last answered (Linux icsk_probes_out).
        self._probes_out = 0
        #: Send time of the oldest unacknowledged segment when retransmissions began
        #: (Linux retrans_stamp), for the user timeout; None while nothing is retried.
        self._retrans_stamp: float | None = None
        #: RFC 5482 user timeout of this connection in seconds (0: off).
        self._user_timeout = config.user_timeout
        #: When the last reply to an invalid segment went out (tcp_invalid_ratelimit).
        self._last_invalid_reply = -1e18
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

    def _ack_offset(self, ack: int) -> int:
        """Convert an ACK field to an unwrapped send offset (relative to SND.UNA)."""
        return self._una + seq_diff(ack, self._seq(self._una))

    def _seq(self, offset: int) -> int:
        return (self._iss + offset) & _SEQ_MASK

    def _own_loss(self) -> LossState:
        """This connection's own loss state, made from the shared zeros at the first write."""
        loss = self._loss
        if loss is NO_LOSS:
            loss = self._loss = LossState()
        return loss

    def _rcv_offset_of(self, seq: int) -> int:
        """A sequence number of the peer's as a receive offset (RCV.NXT is at ``_rcv_off``)."""
        diff = seq_diff(seq, self._rcv_nxt)
        return self._rcv_off + diff if diff else self._rcv_off

    def _rcv_base(self) -> int:
        """IRS + 1, the peer's first data byte: RCV.NXT less the receive offset.

        (RCV.NXT and the offset advance together, by the FIN too, so the peer's ISN needs
        no field of its own.)"""
        return (self._rcv_nxt - self._rcv_off) & _SEQ_MASK

    def _data_end(self) -> int:
        """Offset just past the last byte the app has written."""
        return self._sbuf_start + self._sbuf.size

    def _fin_end(self) -> int:
        """Offset just past our FIN (valid once a FIN is queued)."""
        return self._data_end() + 1

    def _fin_sent(self) -> bool:
        return self._fin_queued and self._nxt > self._data_end()

    def _set_state(self, state: TcpState) -> None:
        """The one place the connection's state changes (legal ones: ``state.TRANSITIONS``)."""
        assert is_legal_transition(self.state, state), f"{self.state} -> {state}"
        self.state = state
        if state is TcpState.ESTABLISHED:
            self._syn_options = None  # only a SYN-ACK retransmission needed them
            self._syn_time = 0.0  # one float for everyone: only the handshake reads it
            self._layer.count("connections_established")
            if self._keepalive:
                self._arm_keepalive(self._layer.now)

    def _report_connected(self) -> None:
        if not self._connected_reported:
            self._connected_reported = True
            self._layer.events.append(TcpConnected(self))

    def _enter_time_wait(self, now: float) -> None:
        """RFC 9293 §3.4.2 / §3.10.7.4: TIME-WAIT for 2*MSL; the app sees the close now.

        With ``max_time_wait`` connections in TIME-WAIT already it closes at once instead."""
        if not self._layer.admit_time_wait(self):
            self._send_control(self._seq(self._nxt), ACK, now)  # the peer's FIN is ACKed
            self._finish(None)
            return
        self._set_state(TcpState.TIME_WAIT)
        self._rto_deadline = None
        self._persist_deadline = None
        self._keepalive_deadline = None
        self._fin_wait_deadline = None
        self._tlp_deadline = None
        self._time_wait_deadline = now + 2 * self._config.msl
        self._report_closed(None)
        self._layer.mark_dirty(self)

    def _finish(self, error: OSError | None) -> None:
        """Enter CLOSED: stop timers, drop buffers, report once, leave the layer's tables."""
        self._set_state(TcpState.CLOSED)
        self._rto_deadline = self._delack_deadline = self._persist_deadline = None
        self._keepalive_deadline = self._time_wait_deadline = self._fin_wait_deadline = None
        self._tlp_deadline = None
        self._ack_now = False
        self._sbuf = NO_SEND_BUFFER
        self._records = NO_RECORDS
        self._head = self._rack_index = 0
        self._loss = NO_LOSS
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

    # Defined by the parts above this class (see the module docstring).

    def _arm_keepalive(self, now: float) -> None:
        raise NotImplementedError

    def _challenge_ack(self, reason: str) -> None:
        raise NotImplementedError

    def _may_reply_to_invalid(self, reason: str, *, length: int, now: float) -> bool:
        raise NotImplementedError

    def _emit(  # noqa: PLR0917
        self,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        options: bytes | None,
        now: float,
        parts: tuple[bytes | memoryview, ...] = (),
        payload_length: int = 0,
    ) -> None:
        raise NotImplementedError

    def _flight(self) -> int:
        raise NotImplementedError

    def _flight_size(self) -> int:
        raise NotImplementedError

    def _retransmit_lost(self, now: float) -> None:
        raise NotImplementedError

    def _send_control(self, seq: int, flags: int, now: float) -> None:
        raise NotImplementedError

    def _transmit(self, start: int, end: int, now: float) -> None:
        raise NotImplementedError

    def _ts_now(self, now: float) -> int:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def eof_received(self) -> bool:
        raise NotImplementedError

    @property
    def nodelay(self) -> bool:
        raise NotImplementedError

    def output(self, now: float) -> None:
        raise NotImplementedError

    @property
    def readable_bytes(self) -> int:
        raise NotImplementedError

    def receive(self, max_bytes: int = -1) -> bytes:
        raise NotImplementedError

    def receive_chunks(self, enough: int = -1) -> list[bytes | bytearray | memoryview]:
        raise NotImplementedError

    def receive_into(self, buffer: bytearray | memoryview) -> int:
        raise NotImplementedError

    def send(self, data: bytes | bytearray | memoryview) -> int:
        raise NotImplementedError

    @property
    def send_buffer_free(self) -> int:
        raise NotImplementedError

    @property
    def send_buffer_used(self) -> int:
        raise NotImplementedError

    def set_keepalive(self, flag: bool) -> None:
        raise NotImplementedError

    def set_nodelay(self, flag: bool) -> None:
        raise NotImplementedError

    @property
    def user_timeout(self) -> float:
        raise NotImplementedError

    def set_user_timeout(self, seconds: float) -> None:
        raise NotImplementedError

    def shutdown_write(self) -> None:
        raise NotImplementedError

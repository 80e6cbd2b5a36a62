"""Opening a connection: our SYN or SYN-ACK and the options it offers, and what the
peer's SYN negotiates: MSS (RFC 9293 §3.7.1, RFC 6691), window scale and timestamps
(RFC 7323), SACK permitted (RFC 2018).
"""

from __future__ import annotations

from ...wire.tcp import ACK, SYN, TcpOptions, build_options
from .options import MAX_WINDOW_FIELD
from .shared import shared
from .tcb import _SEQ_MASK, _TS_OPTION_LENGTH, DEFAULT_MSS_IPV4, DEFAULT_MSS_IPV6, Tcb


class _Opening(Tcb):
    """The opening part of :class:`~.connection.TcpConnection` (see the module docstring)."""

    __slots__ = ()

    def _take_peer_syn(self, seq: int, options: TcpOptions, now: float) -> None:
        """Record the peer's ISN and its SYN options (RFC 9293 §3.10.7.3, RFC 7323 §2/§3)."""
        config = self._config
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
        self._snd_mss = shared(max(mss, 64))
        self._cc.set_mss(self._snd_mss)

    def _send_syn(self, now: float) -> None:
        """Send (or resend) SYN or SYN-ACK with the options RFC 9293 §3.2 / RFC 7323 allow."""
        config = self._config
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
        self._emit(self._iss, ack, flags, window, options, now)
        if self._retries == 0:
            self._syn_time = now
        if self._nxt == 0:
            self._nxt = 1
        if self._rto_deadline is None:
            self._rto_deadline = now + self._rtt.rto

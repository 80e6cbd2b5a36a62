"""LISTEN (RFC 9293 §3.10.7.2): listening ports, their SYN and accept queues, and SYN
cookies (RFC 4987 §3.6).

:class:`TcpListener` is one passive open: a bounded SYN queue (connections in
SYN-RECEIVED) and a bounded accept queue (established, not yet accepted). The
:class:`_PassiveOpen` part of :class:`~.layer.TcpLayer` handles segments that reach a
listener: a SYN makes a connection in SYN-RECEIVED, or, when the SYN queue or the
connection table is full, is answered statelessly with a SYN cookie; a bare ACK may
complete a cookie handshake; anything else is dropped or answered with RST.
"""

from __future__ import annotations

import collections
from typing import Final, Protocol

from ...wire.tcp import ACK, FIN, RST, SYN, TcpOptions, build_options
from .connection import TcpConnection
from .events import TcpAccepted
from .host import TcpHost
from .options import window_scale_for
from .secrets import KeyedHashes

__all__ = ["ListenerHost", "TcpListener"]

_SEQ_MASK: Final = 0xFFFFFFFF
#: Cookies are checked only this long after the listener last sent one (Linux
#: TCP_SYNCOOKIE_VALID, tcp_synq_no_recent_overflow: 2 minutes); otherwise a bare ACK gets
#: a RST without a check, so guessing a cookie (2^-24 a try) needs a flood in progress.
SYNCOOKIE_VALID: Final = 120.0

#: A connection's key in the layer's table: (local address, local port, remote address,
#: remote port), addresses packed.
ConnectionKey = tuple[bytes, int, bytes, int]


class ListenerHost(Protocol):
    """What a listener needs from the layer that owns it."""

    events: collections.deque[object]

    def remove_listener(self, listener: TcpListener) -> None:
        """Stop routing SYNs for the listener's address and port to it."""


class TcpListener:
    """A passive open (RFC 9293 §3.10.1 OPEN, passive): a bounded SYN queue and accept queue."""

    __slots__ = (
        "_accept_queue",
        "_half_open",
        "_layer",
        "backlog",
        "is_open",
        "last_cookie_sent",
        "local_address",
        "local_port",
    )

    def __init__(self, layer: ListenerHost, address: bytes | None, port: int, backlog: int) -> None:
        self._layer = layer
        self.local_address = address
        self.local_port = port
        self.backlog = max(backlog, 1)
        self.is_open = True
        self._accept_queue: collections.deque[TcpConnection] = collections.deque()
        self._half_open: set[TcpConnection] = set()
        #: When this listener last answered a SYN with a cookie (None: never).
        self.last_cookie_sent: float | None = None

    def __repr__(self) -> str:
        return f"<TcpListener port={self.local_port} queued={len(self._accept_queue)}>"

    @property
    def pending(self) -> int:
        """Established connections waiting for :meth:`accept`."""
        return len(self._accept_queue)

    @property
    def half_open(self) -> int:
        """Connections in SYN-RECEIVED (the SYN queue)."""
        return len(self._half_open)

    def accept(self) -> TcpConnection | None:
        """The oldest established connection, or None."""
        if self._accept_queue:
            return self._accept_queue.popleft()
        return None

    def close(self) -> None:
        """Stop listening; reset half-open and never-accepted connections."""
        if not self.is_open:
            return
        self.is_open = False
        self._layer.remove_listener(self)
        for connection in list(self._half_open) + list(self._accept_queue):
            connection.abort()
        self._half_open.clear()
        self._accept_queue.clear()

    # --- called by the layer and connections ---

    def accept_queue_full(self) -> bool:
        return len(self._accept_queue) >= self.backlog

    def add_half_open(self, connection: TcpConnection) -> None:
        self._half_open.add(connection)

    def discard(self, connection: TcpConnection) -> None:
        self._half_open.discard(connection)

    def enqueue_established(self, connection: TcpConnection) -> bool:
        """A handshake completed; False (and the ACK is dropped) when the accept queue is full."""
        if not self.is_open or self.accept_queue_full():
            return False
        self._half_open.discard(connection)
        self._accept_queue.append(connection)
        connection.mark_accepted()
        self._layer.events.append(TcpAccepted(self))
        return True


class _PassiveOpen(TcpHost):
    """The LISTEN half of :class:`~.layer.TcpLayer` (see the module docstring).

    It declares what it uses of the layer that :class:`~.host.TcpHost` does not: the
    tables, and four methods the layer defines (each raises ``NotImplementedError`` here
    and ``TcpLayer`` overrides it), so the layer is one line of classes (what mypyc
    compiles: ``aionetstack/compiled.py``).
    """

    _connections: dict[ConnectionKey, TcpConnection]
    _hashes: KeyedHashes

    def _new_connection(
        self, key: ConnectionKey, now: float, iss: int | None = None
    ) -> TcpConnection:
        raise NotImplementedError

    def _ts_offset(self, local: bytes, local_port: int, remote: bytes, remote_port: int) -> int:
        raise NotImplementedError

    def _reset_for_no_owner(  # noqa: PLR0917
        self,
        source: bytes,
        destination: bytes,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        length: int,
    ) -> None:
        raise NotImplementedError

    def _emit_raw(  # noqa: PLR0917
        self,
        source: bytes,
        destination: bytes,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        options: bytes,
    ) -> None:
        raise NotImplementedError

    def _listener_segment(  # noqa: PLR0917
        self,
        listener: TcpListener,
        source: bytes,
        destination: bytes,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        options: TcpOptions | None,
        payload: bytes | memoryview,
        now: float,
    ) -> None:
        """RFC 9293 §3.10.7.2: LISTEN."""
        if flags & RST:
            self.count("drops_rst_to_listener")
            return
        if flags & ACK:
            if not flags & SYN and self._try_cookie(
                listener,
                source,
                destination,
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                options,
                payload,
                now,
            ):
                return
            self._reset_for_no_owner(
                source, destination, sport, dport, seq, ack, flags, len(payload)
            )
            return
        if not flags & SYN:
            self.count("drops_no_syn_to_listener")
            return
        if self.memory_pressure:
            self.count("drops_syn_memory_pressure")  # over memory_limit (Linux tcp_mem)
            return
        syn_options = options if options is not None else TcpOptions()
        if (
            listener.half_open >= self.config.syn_queue_limit
            or len(self._connections) >= self.config.max_connections
        ):
            if not self.config.syn_cookies:
                self.count("drops_syn_queue_full")
                return
            self._send_cookie(listener, source, destination, sport, dport, seq, syn_options, now)
            return
        connection = self._new_connection((destination, dport, source, sport), now)
        connection.listener = listener
        listener.add_half_open(connection)
        connection.open_passive(seq, window, syn_options, now)
        self.count("passive_opens")
        self.reschedule(connection)

    def _send_cookie(  # noqa: PLR0917
        self,
        listener: TcpListener,
        source: bytes,
        destination: bytes,
        sport: int,
        dport: int,
        seq: int,
        options: TcpOptions,
        now: float,
    ) -> None:
        """Answer a SYN statelessly with a SYN-ACK whose ISN is a cookie."""
        config = self.config
        peer_mss = options.mss if options.mss is not None else 536
        mss = min(peer_mss, self.mss_for(source))
        cookie, _encoded_mss = self._hashes.make_cookie(
            destination, dport, source, sport, seq, mss, now
        )
        timestamp = None
        window_scale = None
        sack = False
        if config.timestamps and options.timestamp is not None:
            # Without timestamps, window scaling and SACK are not offered (as Linux).
            if config.window_scaling and options.window_scale is not None:
                window_scale = window_scale_for(config.receive_buffer)
            sack = config.sack and options.sack_permitted
            peer_scale = options.window_scale if config.window_scaling else None
            tsval = self._hashes.encode_cookie_timestamp(
                (int(now * 1000) + self._ts_offset(destination, dport, source, sport)) & _SEQ_MASK,
                peer_scale,
                sack,
            )
            timestamp = (tsval, options.timestamp[0])
        option_bytes = build_options(
            mss=self.mss_for(source),
            window_scale=window_scale,
            sack_permitted=sack,
            timestamp=timestamp,
        )
        window = min(config.receive_buffer, 0xFFFF)
        self.count("syn_cookies_sent")
        listener.last_cookie_sent = now
        self._emit_raw(
            destination,
            source,
            dport,
            sport,
            cookie,
            (seq + 1) & _SEQ_MASK,
            SYN | ACK,
            window,
            option_bytes,
        )

    def _try_cookie(  # noqa: PLR0917
        self,
        listener: TcpListener,
        source: bytes,
        destination: bytes,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        options: TcpOptions | None,
        payload: bytes | memoryview,
        now: float,
    ) -> bool:
        """A bare ACK for a listener: complete a SYN-cookie handshake if the cookie checks out."""
        sent = listener.last_cookie_sent
        if sent is None or now - sent > SYNCOOKIE_VALID:
            self.count("syn_cookies_not_recent")  # no flood lately: not checked, RST
            return False
        client_isn = (seq - 1) & _SEQ_MASK
        cookie = (ack - 1) & _SEQ_MASK
        mss = self._hashes.check_cookie(destination, dport, source, sport, client_isn, cookie, now)
        if mss is None:
            self.count("syn_cookies_failed")
            return False
        if listener.accept_queue_full() or len(self._connections) >= self.config.max_connections:
            self.count("drops_accept_queue_full")
            return True
        window_scale: int | None = None
        sack = False
        timestamp = None
        if options is not None and options.timestamp is not None and self.config.timestamps:
            window_scale, sack = self._hashes.decode_cookie_timestamp(options.timestamp[1])
            timestamp = options.timestamp
        key = (destination, dport, source, sport)
        connection = self._new_connection(key, now, iss=cookie)
        connection.listener = listener
        connection.open_from_cookie(
            client_isn, seq, window, mss, window_scale, sack, timestamp, now
        )
        self.count("syn_cookies_received")
        listener.enqueue_established(connection)
        if len(payload) or flags & FIN:
            connection.segment_arrives(seq, ack, flags, window, options, payload, now)
        self.reschedule(connection)
        return True

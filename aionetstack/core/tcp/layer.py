"""The TCP layer: demultiplexing, ports, the no-owner RST and the timer heap.

The IP layer (or a test harness) drives it with five calls: ``receive_segment``,
``icmp_error``, ``flush``, ``get_timer``/``handle_timer``. Output is batched:
``receive_segment`` only updates state (it emits nothing but RSTs and SYN-ACKs
of stateless replies); ``flush`` sends what became sendable, so ACKs for a batch
of received segments are coalesced.
"""

from __future__ import annotations

import collections
import errno
import heapq
import struct
from collections.abc import Callable
from typing import Final, Protocol

from ...config import TcpConfig
from ...wire.checksum import ones_complement_sum, pseudo_header_sum
from ...wire.error import WireError
from ...wire.tcp import ACK, FIN, HEADER, RST, SYN, TcpOptions, parse_options
from ..counts import Counts, report
from ..output import CallbackOutput, SegmentOutput
from ..randomness import RandomSource
from ..timer_generation import TimerGeneration
from .connection import TcpConnection
from .listener import ConnectionKey, TcpListener, _PassiveOpen
from .secrets import KeyedHashes
from .shared import shared
from .state import TcpState

__all__ = ["TcpInterceptHook", "TcpLayer", "TcpListener"]

_SEQ_MASK: Final = 0xFFFFFFFF
#: How often (seconds of activity) the stack-wide TCP memory is summed (see memory_limit).
MEMORY_CHECK_INTERVAL: Final = 1.0
_TCP_HEADER_LENGTH: Final = 20
#: RFC 792 / RFC 4443: ICMP errors quote at least 8 bytes of the transport header.
_QUOTED_PORTS_SEQ: Final = struct.Struct("!HHI")


class TcpInterceptHook(Protocol):
    """Intercept mode's part in demultiplexing (``core.intercept.Interceptor``)."""

    def covers(self, address: bytes) -> bool:
        """Whether ``address`` is intercepted (not ours: wildcard listeners ignore it)."""

    def tcp_segment(  # noqa: PLR0917
        self, source: bytes, destination: bytes, sport: int, dport: int, seq: int, flags: int,
        window: int, options: TcpOptions | None, now: float,
    ) -> bool:  # fmt: skip
        """A segment nothing owns: True when intercept took it (else the usual RST)."""


class TcpLayer(_PassiveOpen):
    """All TCP connections and listeners of one stack. See the module docstring."""

    def __init__(
        self,
        config: TcpConfig,
        rng: RandomSource,
        *,
        output: SegmentOutput | Callable[..., None],
        events: collections.deque[object],
        ephemeral_ports: tuple[int, int] = (32768, 60999),
        mss_for: Callable[[bytes], int] = lambda remote: 1460,
        partial_checksums: bool = False,
        max_segment_payload: int = 0,
        timer_generation: TimerGeneration | None = None,
    ) -> None:
        self.config = config
        #: Emit segments whose checksum field holds only the pseudo-header sum, for a link
        #: that completes checksums (TUN with IFF_VNET_HDR and NEEDS_CSUM; limits.md §3).
        #: ``output.emit`` is then given ``segment_size``: 0 for a segment the device only
        #: checksums, the send MSS for a TSO super-segment.
        self.partial_checksums = partial_checksums or max_segment_payload > 0
        #: With TSO: the most payload bytes one emitted segment may carry (0: one MSS).
        self.max_segment_payload = max_segment_payload
        #: Where segments go (``core/output.py``): ``emit`` one, ``emit_many`` the
        #: partial-checksum segments of one connection in order (the bulk path). A
        #: callable given instead is ``emit(source, destination, segment[,
        #: segment_size, tail])``, wrapped in a :class:`CallbackOutput`.
        self.output = output if isinstance(output, SegmentOutput) else CallbackOutput(output)
        self.events = events
        self.mss_for = mss_for
        self.now = 0.0
        self._rng = rng
        self._hashes = KeyedHashes(rng)
        self._ephemeral_low, self._ephemeral_high = ephemeral_ports
        self._next_ephemeral = rng.getrandbits(16)
        self._connections: dict[ConnectionKey, TcpConnection] = {}
        self._listeners: dict[tuple[bytes | None, int], TcpListener] = {}
        self._timers: list[tuple[float, int, TcpConnection]] = []
        self._timer_sequence = 0
        #: Bumped with every push: the heap may then have an earlier top (StackCore's
        #: cached deadline, core/timer_generation.py).
        self._timer_generation = timer_generation or TimerGeneration()
        self._dirty: dict[TcpConnection, None] = {}
        #: Connections in TIME-WAIT, and orphans (closed by the app, not in TIME-WAIT),
        #: each capped by config (Linux tcp_max_tw_buckets, tcp_max_orphans).
        self._time_wait: set[TcpConnection] = set()
        self._orphans: set[TcpConnection] = set()
        #: Bytes in TCP buffers at the last check, and whether that was over memory_limit.
        self.memory_in_use = 0
        self.memory_pressure = False
        self._memory_checked = -MEMORY_CHECK_INTERVAL
        #: The counters (``count`` adds to them; the per-segment paths add directly).
        self.stats = Counts()
        self.segments_in = 0
        self.segments_out = 0
        self.predicted_segments = 0
        self.predicted_acks = 0
        self._challenge_tokens = float(config.challenge_ack_limit)
        self._challenge_refill = 0.0
        #: Intercept mode (``core/intercept.py``): asked about segments nothing owns.
        self.interceptor: TcpInterceptHook | None = None
        #: Tests may replace these to pin ISNs / timestamp offsets (e.g. to test wrap-around).
        self.isn_function: Callable[[bytes, int, bytes, int, float], int] = (
            self._hashes.initial_sequence
        )
        self.ts_offset_function: Callable[[bytes, int, bytes, int], int] = self._ts_offset

    # ==================================================================================
    # Counters
    # ==================================================================================

    def count(self, name: str, amount: int = 1) -> None:
        self.stats[name] += amount

    def statistics(self) -> dict[str, int]:
        """netstat -s style counters, plus current table sizes."""
        stats = report(
            self.stats,
            (("segments_in", self.segments_in), ("segments_out", self.segments_out),
             ("predicted_segments", self.predicted_segments),
             ("predicted_acks", self.predicted_acks)),
        )  # fmt: skip
        stats["connections_current"] = len(self._connections)
        stats["listeners_current"] = len(self._listeners)
        stats["time_wait_current"] = len(self._time_wait)
        stats["orphans_current"] = len(self._orphans)
        stats["memory_in_use"] = self.memory_in_use
        return stats

    @property
    def connections(self) -> list[TcpConnection]:
        """Every connection the layer owns (including orphans and TIME-WAIT)."""
        return list(self._connections.values())

    # ==================================================================================
    # Application calls
    # ==================================================================================

    def listen(self, address: bytes | None, port: int, backlog: int = 128) -> TcpListener:
        """Open a listener; OSError(EADDRINUSE) when the port is taken (port 0: ephemeral)."""
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"port must be in 0..65535, got {port}")
        if port == 0:
            port = self._free_listen_port(address)
        for other_address, other_port in self._listeners:
            if other_port == port and (
                other_address is None or address is None or other_address == address
            ):
                raise OSError(errno.EADDRINUSE, f"TCP port {port} is already in use")
        listener = TcpListener(self, address, port, backlog)
        self._listeners[(address, port)] = listener
        return listener

    def remove_listener(self, listener: TcpListener) -> None:
        self._listeners.pop((listener.local_address, listener.local_port), None)

    def connect(
        self,
        local_address: bytes,
        remote_address: bytes,
        remote_port: int,
        now: float,
        *,
        local_port: int = 0,
    ) -> TcpConnection:
        """Active open: send a SYN now; TcpConnected or TcpClosed follows."""
        if len(local_address) != len(remote_address) or len(local_address) not in (4, 16):
            raise ValueError("local and remote addresses must both be 4 or both 16 packed bytes")
        if not 0 < remote_port <= 0xFFFF:
            raise ValueError(f"remote_port must be in 1..65535, got {remote_port}")
        if len(self._connections) >= self.config.max_connections:
            raise OSError(errno.EAGAIN, "too many TCP connections")
        self.now = now
        if local_port == 0:
            local_port = self._pick_ephemeral(local_address, remote_address, remote_port)
        key = (local_address, local_port, remote_address, remote_port)
        if key in self._connections:
            raise OSError(errno.EADDRINUSE, "that TCP 4-tuple is already in use")
        connection = self._new_connection(key, now)
        connection.open_active(now)
        self.reschedule(connection)
        return connection

    def _new_connection(
        self, key: ConnectionKey, now: float, iss: int | None = None
    ) -> TcpConnection:
        local, local_port, remote, remote_port = key
        # The addresses and our port as objects every connection with them shares.
        local = shared(local)
        local_port = shared(local_port)  # a listening port is a fresh int in each SYN
        remote = shared(remote)
        key = (local, local_port, remote, remote_port)
        if iss is None:
            iss = self.isn_function(local, local_port, remote, remote_port, now)
        connection = TcpConnection(
            self,
            local,
            local_port,
            remote,
            remote_port,
            iss=iss & _SEQ_MASK,
            ts_offset=self.ts_offset_function(local, local_port, remote, remote_port) & _SEQ_MASK,
            now=now,
        )
        self._connections[key] = connection
        return connection

    def _ts_offset(self, local: bytes, local_port: int, remote: bytes, remote_port: int) -> int:
        return self._hashes.timestamp_offset(local, remote, local_port, remote_port)

    def _pick_ephemeral(self, local: bytes, remote: bytes, remote_port: int) -> int:
        """RFC 6056 §3.3.3, algorithm 3 (simple hash-based selection)."""
        low, high = self._ephemeral_low, self._ephemeral_high
        count = high - low + 1
        offset = self._hashes.port_offset(local, remote, remote_port)
        listening = {port for (_, port) in self._listeners}
        for attempt in range(count):
            port = low + (self._next_ephemeral + offset + attempt) % count
            if port in listening or (local, port, remote, remote_port) in self._connections:
                continue
            self._next_ephemeral += attempt + 1
            return port
        raise OSError(errno.EADDRNOTAVAIL, "no free ephemeral port for that destination")

    def _free_listen_port(self, address: bytes | None) -> int:
        low, high = self._ephemeral_low, self._ephemeral_high
        count = high - low + 1
        used = {port for (_, port) in self._listeners} | {key[1] for key in self._connections}
        start = self._rng.getrandbits(16)
        for attempt in range(count):
            port = low + (start + attempt) % count
            if port not in used:
                return port
        raise OSError(errno.EADDRINUSE, "no free ephemeral port to listen on")

    # ==================================================================================
    # Segments from the IP layer
    # ==================================================================================

    def receive_segment(
        self, source: bytes, destination: bytes, segment: memoryview, now: float
    ) -> None:
        """One segment addressed to us (checksum already verified). Never raises on bad input."""
        if len(segment) < _TCP_HEADER_LENGTH:
            self._drop_malformed("drops_truncated", now)
            return
        sport, dport, seq, ack, offset, flags, window, _checksum, _urgent = HEADER.unpack_from(
            segment
        )
        header_length = (offset >> 4) << 2
        if header_length < _TCP_HEADER_LENGTH or header_length > len(segment):
            self._drop_malformed("drops_bad_header_length", now)
            return
        # The options as a view whatever ``segment`` is: receive_fields parses a view.
        self.receive_fields(
            source, destination, sport, dport, seq, ack, flags, window,
            memoryview(segment)[_TCP_HEADER_LENGTH:header_length]
            if header_length > _TCP_HEADER_LENGTH else None,
            segment[header_length:], now,
        )  # fmt: skip

    def _drop_malformed(self, reason: str, now: float) -> None:
        self.now = now
        self.segments_in += 1
        self.stats[reason] += 1

    def receive_fields(  # noqa: PLR0917
        self, source: bytes, destination: bytes, sport: int, dport: int, seq: int, ack: int,
        flags: int, window: int, options: TcpOptions | memoryview | None,
        payload: bytes | memoryview, now: float,
    ) -> None:  # fmt: skip
        """One segment addressed to us, its header unpacked (checksum already verified;
        :func:`~aionetstack.wire.plain_tcp4.parse_plain_tcp4`'s fields). ``options``: the
        parsed options, ``None`` (none), or the option bytes to parse. Never raises on bad
        input."""
        self.now = now
        self.segments_in += 1
        if type(options) is memoryview:
            try:
                options = parse_options(options)
            except WireError as error:
                self.stats[f"drops_{error.reason}"] += 1
                return
        connection = self._connections.get((destination, dport, source, sport))
        if connection is not None:
            reopen = connection.segment_arrives(seq, ack, flags, window, options, payload, now)
            if not reopen:
                self.reschedule(connection)
                return
            self.stats["time_wait_reused"] += 1
            connection.on_timer(float("inf"))  # end TIME-WAIT now (RFC 6191)
        listener = self._listeners.get((destination, dport))
        if listener is None:
            listener = self._listeners.get((None, dport))
            interceptor = self.interceptor
            if listener is not None and interceptor is not None and interceptor.covers(destination):
                listener = None  # a wildcard listener serves our addresses, not intercepted ones
        if listener is not None:
            self._listener_segment(
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
            )
            return
        interceptor = self.interceptor
        if interceptor is not None and interceptor.tcp_segment(
            source, destination, sport, dport, seq, flags, window, options, now
        ):
            return
        self._reset_for_no_owner(source, destination, sport, dport, seq, ack, flags, len(payload))

    # --- intercept mode (core/intercept.py) ------------------------------------------------

    def accept_intercepted(  # noqa: PLR0917
        self, local: bytes, local_port: int, remote: bytes, remote_port: int, seq: int,
        window: int, options: TcpOptions, now: float,
    ) -> TcpConnection:  # fmt: skip
        """Open a connection for a SYN intercept held: SYN-RECEIVED, SYN-ACK sent.

        Without a listener it reports as an active open does: ``TcpConnected``
        when the handshake completes, ``TcpClosed`` with the error otherwise.
        ``OSError(EAGAIN)`` when the connection table is full.
        """
        if len(self._connections) >= self.config.max_connections:
            raise OSError(errno.EAGAIN, "too many TCP connections")
        self.now = now
        key = (local, local_port, remote, remote_port)
        if key in self._connections:
            raise OSError(errno.EADDRINUSE, "that TCP 4-tuple is already in use")
        connection = self._new_connection(key, now)
        connection.open_passive(seq, window, options, now)
        self.count("intercepted_opens")
        self.reschedule(connection)
        return connection

    def refuse_intercepted(
        self, local: bytes, local_port: int, remote: bytes, remote_port: int, seq: int
    ) -> None:
        """Answer a held SYN with RST|ACK (RFC 9293 §3.10.7.1), as if nothing listened."""
        self._reset_for_no_owner(remote, local, remote_port, local_port, seq, 0, SYN, 0)

    # --- SYN cookies (RFC 4987 §3.6) -----------------------------------------------------

    # --- replies without a connection ----------------------------------------------------

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
        """RFC 9293 §3.10.7.1: a segment for no connection gets a RST (never one for a RST)."""
        if flags & RST:
            self.count("drops_rst_no_owner")
            return
        self.count("resets_no_owner")
        if flags & ACK:
            self._emit_raw(destination, source, dport, sport, ack, 0, RST, 0, b"")
        else:
            seg_len = length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            self._emit_raw(
                destination, source, dport, sport, 0, (seq + seg_len) & _SEQ_MASK, RST | ACK, 0, b""
            )

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
        header = bytearray(
            HEADER.pack(sport, dport, seq, ack, (20 + len(options)) << 2, flags, window, 0, 0)
        )
        header += options
        initial = pseudo_header_sum(source, destination, 6, len(header))
        if self.partial_checksums:
            checksum = initial
        else:
            checksum = ~ones_complement_sum(header, initial) & 0xFFFF
        header[16:18] = checksum.to_bytes(2, "big")
        self.segments_out += 1
        if flags & RST:
            self.count("resets_sent")
        if self.partial_checksums:
            self.output.emit(source, destination, bytes(header), 0)
        else:
            self.output.emit(source, destination, bytes(header))

    # ==================================================================================
    # ICMP
    # ==================================================================================

    def icmp_error(
        self,
        source: bytes,
        destination: bytes,
        quoted_segment: bytes | bytearray | memoryview,
        error: OSError,
        now: float,
    ) -> None:
        """An ICMP error quoting a segment we sent (RFC 1122 §4.2.3.9, RFC 5927)."""
        self.now = now
        if len(quoted_segment) < 8:
            self.count("icmp_errors_truncated")
            return
        sport, dport, seq = _QUOTED_PORTS_SEQ.unpack_from(quoted_segment)
        connection = self._connections.get((source, sport, destination, dport))
        if connection is None:
            self.count("icmp_errors_no_connection")
            return
        connection.icmp_error(seq, error, now)
        self.reschedule(connection)

    def path_mtu_changed(
        self,
        source: bytes,
        destination: bytes,
        quoted_segment: bytes | bytearray | memoryview,
        mtu: int,
        now: float,
    ) -> None:
        """The path MTU towards ``destination`` fell to ``mtu`` (RFC 1191, RFC 8201).

        The connection whose segment is quoted shrinks its segments at once.
        """
        self.now = now
        if len(quoted_segment) < 8:
            self.count("icmp_errors_truncated")
            return
        sport, dport, seq = _QUOTED_PORTS_SEQ.unpack_from(quoted_segment)
        connection = self._connections.get((source, sport, destination, dport))
        if connection is None:
            self.count("icmp_errors_no_connection")
            return
        connection.path_mtu_changed(seq, mtu, now)
        self.mark_dirty(connection)
        self.reschedule(connection)

    # ==================================================================================
    # Output and timers
    # ==================================================================================

    def mark_dirty(self, connection: TcpConnection) -> None:
        """The connection has something to send at the next :meth:`flush`."""
        self._dirty[connection] = None

    def flush(self, now: float) -> None:
        """Send everything that became sendable since the last flush (one ACK per connection)."""
        self.now = now
        if now - self._memory_checked >= MEMORY_CHECK_INTERVAL:
            self._check_memory(now)
        while self._dirty:
            dirty = self._dirty
            self._dirty = {}
            for connection in dirty:
                connection.output(now)
                self.reschedule(connection)

    def reschedule(self, connection: TcpConnection) -> None:
        """Push the connection's earliest deadline into the heap if it moved earlier."""
        deadline = connection.next_deadline()
        if deadline is None:
            return
        current = connection.heap_deadline
        if current is None or deadline < current:
            connection.heap_deadline = deadline
            self._timer_sequence += 1
            self._timer_generation.count += 1
            heapq.heappush(self._timers, (deadline, self._timer_sequence, connection))

    def get_timer(self) -> float | None:
        """The earliest deadline of any connection (entries may be stale-early: harmless)."""
        timers = self._timers
        while timers:
            deadline, _, connection = timers[0]
            if connection.heap_deadline != deadline:
                heapq.heappop(timers)  # superseded by an earlier entry
                continue
            return deadline
        return None

    def handle_timer(self, now: float) -> None:
        """Run every connection timer due by ``now``; early or repeated calls are harmless."""
        self.now = now
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, connection = heapq.heappop(timers)
            if connection.heap_deadline != deadline:
                continue
            connection.heap_deadline = None
            if connection.state is not TcpState.CLOSED:
                connection.on_timer(now)
            self.reschedule(connection)
        self.flush(now)

    # ==================================================================================
    # Bookkeeping called by connections
    # ==================================================================================

    def forget(self, connection: TcpConnection) -> None:
        """The connection reached CLOSED: drop it from every table."""
        key = (
            connection.local_address,
            connection.local_port,
            connection.remote_address,
            connection.remote_port,
        )
        if self._connections.get(key) is connection:
            del self._connections[key]
        if connection.listener is not None:
            connection.listener.discard(connection)
        connection.heap_deadline = None
        self._dirty.pop(connection, None)
        self._time_wait.discard(connection)
        self._orphans.discard(connection)

    def _check_memory(self, now: float) -> None:
        """Sum the bytes held in TCP buffers (O(connections), at most once a second) and
        enter or leave memory pressure (Linux ``tcp_mem``). Entering it purges every
        out-of-order queue (Linux prunes them under pressure; the peers retransmit)."""
        self._memory_checked = now
        total = 0
        for connection in self._connections.values():
            total += connection.buffered_bytes
        self.memory_in_use = total
        pressure = total > self.config.memory_limit
        if pressure and not self.memory_pressure:
            self.count("memory_pressure_entered")
            for connection in self._connections.values():
                purged = connection.purge_out_of_order()
                if purged:
                    self.count("memory_pressure_out_of_order_purged", purged)
        self.memory_pressure = pressure

    def admit_orphan(self, connection: TcpConnection) -> bool:
        """A connection its application closed may finish as an orphan, unless there are
        ``max_orphans`` already (then the caller resets it: Linux "too many orphaned
        sockets")."""
        if len(self._orphans) >= self.config.max_orphans:
            self.count("orphans_over_limit_reset")
            return False
        self._orphans.add(connection)
        return True

    def admit_time_wait(self, connection: TcpConnection) -> bool:
        """A connection may wait in TIME-WAIT, unless ``max_time_wait`` do already (then it
        closes at once: Linux "time wait bucket table overflow")."""
        self._orphans.discard(connection)
        if len(self._time_wait) >= self.config.max_time_wait:
            self.count("time_wait_overflow")
            return False
        self._time_wait.add(connection)
        return True

    def allow_challenge_ack(self) -> bool:
        """RFC 5961 §7: a token bucket of ``challenge_ack_limit`` per second."""
        limit = float(self.config.challenge_ack_limit)
        elapsed = self.now - self._challenge_refill
        if elapsed > 0:
            self._challenge_tokens = min(limit, self._challenge_tokens + elapsed * limit)
            self._challenge_refill = self.now
        if self._challenge_tokens >= 1.0:
            self._challenge_tokens -= 1.0
            return True
        return False

"""Segment templates for per-state TCP tests.

:class:`ScriptedPeer` puts one :class:`TcpLayer` opposite a hand-driven peer:
the test builds each segment the peer "sends" (flags, seq, ack, window,
options, payload) and reads back, parsed, every segment the layer emitted.
"""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass

from ..config import TcpConfig
from ..core.tcp import TcpConnection, TcpLayer, TcpListener
from ..wire.checksum import internet_checksum, pseudo_header_sum
from ..wire.tcp import ACK, SYN, TcpSegment, build_options, build_tcp, flags_text, parse_tcp
from .clock import ManualClock

__all__ = ["LOCAL", "REMOTE", "Emitted", "ScriptedPeer", "make_segment", "parse_emitted"]

#: Addresses from 198.18.0.0/15 (RFC 2544 benchmarking range), as the project requires.
LOCAL = bytes([198, 18, 0, 1])
REMOTE = bytes([198, 18, 0, 2])


def make_segment(
    source: bytes,
    destination: bytes,
    sport: int,
    dport: int,
    *,
    seq: int = 0,
    ack: int = 0,
    flags: int = ACK,
    window: int = 65535,
    options: bytes = b"",
    payload: bytes = b"",
) -> bytes:
    """Build a segment with a correct checksum over the pseudo-header."""
    return build_tcp(
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        options=options,
        payload=payload,
        source=source,
        destination=destination,
    )


@dataclass(slots=True)
class Emitted:
    """One segment the layer handed to the IP layer, parsed."""

    source: bytes
    destination: bytes
    raw: bytes
    segment: TcpSegment
    #: What the layer passed as ``segment_size`` (-1: a complete checksum; see StackCore.send_ip).
    segment_size: int = -1

    @property
    def flags(self) -> int:
        return self.segment.flags

    @property
    def seq(self) -> int:
        return self.segment.seq

    @property
    def ack(self) -> int:
        return self.segment.ack

    @property
    def payload(self) -> bytes:
        return bytes(self.segment.payload)

    def checksum_ok(self) -> bool:
        initial = pseudo_header_sum(self.source, self.destination, 6, len(self.raw))
        return internet_checksum(self.raw, initial) == 0

    def __repr__(self) -> str:
        s = self.segment
        return (
            f"<{flags_text(s.flags)} seq={s.seq} ack={s.ack} win={s.window} len={len(s.payload)}>"
        )


def parse_emitted(source: bytes, destination: bytes, raw: bytes) -> Emitted:
    return Emitted(source, destination, raw, parse_tcp(raw))


class ScriptedPeer:
    """A TcpLayer at LOCAL and a scripted peer at REMOTE, in virtual time."""

    def __init__(self, config: TcpConfig | None = None, *, seed: int = 1, mss: int = 1460) -> None:
        self.clock = ManualClock(1000.0)
        self.events: collections.deque[object] = collections.deque()
        self.sent: list[Emitted] = []
        self.layer = TcpLayer(
            config or TcpConfig(),
            random.Random(seed),
            output=self._emit,
            events=self.events,
            mss_for=lambda remote: mss,
        )
        self.peer_port = 40000
        self.local_port = 80

    def _emit(
        self,
        source: bytes,
        destination: bytes,
        raw: bytes,
        segment_size: int = -1,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        if tail:  # payload views after the header (partial checksums): as a TUN gathers them
            raw = b"".join((raw, *tail))
        emitted = parse_emitted(source, destination, raw)
        emitted.segment_size = segment_size
        self.sent.append(emitted)

    @property
    def now(self) -> float:
        return self.clock.now

    def take(self) -> list[Emitted]:
        """Flush the layer and return (and forget) everything it emitted since the last take."""
        self.layer.flush(self.clock.now)
        sent, self.sent = self.sent, []
        return sent

    def inject(
        self,
        *,
        seq: int,
        ack: int = 0,
        flags: int = ACK,
        window: int = 65535,
        options: bytes = b"",
        payload: bytes = b"",
        sport: int | None = None,
        dport: int | None = None,
    ) -> list[Emitted]:
        """Deliver one segment from the peer, flush, and return what the layer emitted."""
        raw = make_segment(
            REMOTE,
            LOCAL,
            self.peer_port if sport is None else sport,
            self.local_port if dport is None else dport,
            seq=seq,
            ack=ack,
            flags=flags,
            window=window,
            options=options,
            payload=payload,
        )
        self.layer.receive_segment(REMOTE, LOCAL, memoryview(raw), self.clock.now)
        return self.take()

    def advance(self, seconds: float) -> list[Emitted]:
        """Move time forward, firing timers at their exact deadlines; returns what was emitted."""
        target = self.clock.now + seconds
        while True:
            deadline = self.layer.get_timer()
            if deadline is None or deadline > target:
                break
            self.clock.advance_to(deadline)
            self.layer.handle_timer(self.clock.now)
        self.clock.advance_to(target)
        return self.take()

    def events_of(self, kind: type) -> list[object]:
        return [event for event in self.events if isinstance(event, kind)]

    # --- common openings --------------------------------------------------------------

    def listen(self, backlog: int = 16) -> TcpListener:
        return self.layer.listen(LOCAL, self.local_port, backlog)

    def passive_open(
        self, *, peer_isn: int = 1000, options: bytes | None = None, window: int = 65535
    ) -> tuple[TcpConnection, int]:
        """Listener + SYN + ACK; returns (connection, our ISN)."""
        if options is None:
            options = build_options(mss=1460)
        listener = self.listen()
        (synack,) = self.inject(seq=peer_isn, flags=SYN, options=options, window=window)
        assert synack.flags == SYN | ACK
        self.inject(seq=peer_isn + 1, ack=synack.seq + 1, flags=ACK, window=window)
        connection = listener.accept()
        assert connection is not None
        return connection, synack.seq

    def active_open(
        self, *, peer_isn: int = 5000, options: bytes | None = None, window: int = 65535
    ) -> tuple[TcpConnection, int]:
        """connect() + SYN-ACK from the peer; returns (connection, our ISN)."""
        if options is None:
            options = build_options(mss=1460)
        connection = self.layer.connect(
            LOCAL, REMOTE, self.peer_port, self.clock.now, local_port=self.local_port
        )
        (syn,) = self.take()
        assert syn.flags == SYN
        self.inject(seq=peer_isn, ack=syn.seq + 1, flags=SYN | ACK, options=options, window=window)
        return connection, syn.seq

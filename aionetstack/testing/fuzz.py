"""Fuzzing targets shared by the hypothesis tests and the atheris harnesses.

Two kinds of target:

- :func:`parse_everything` hands the same bytes to every wire parser. Each must
  return or raise :class:`~aionetstack.wire.WireError`, nothing else (and the
  tcpdump-style summariser's inner functions must not raise at all).
- :class:`StackFuzzer` plays the peer of a :class:`~aionetstack.core.stack.StackCore`
  in virtual time (the lwIP ``fuzz3`` / smoltcp ``iface`` pattern). A script of
  bytes is decoded into records (segments built relative to the live sequence
  numbers so in-window states are reachable, raw packets, ICMP errors quoting our
  segments, application calls, clock advances), and after every record it checks
  that no exception escaped, the connections' bookkeeping is consistent, the
  tables stay within their bounds, every connection reported ``TcpClosed`` at most
  once, and (with ``count_work``) that the record cost a bounded number of Python
  lines in the core, a cost that cannot depend on the machine's speed.

A failed check raises :class:`FuzzError` naming the record and the problem.
"""

from __future__ import annotations

import random
import struct
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

from ..config import StackConfig, TcpConfig
from ..core.stack import StackCore
from ..core.tcp import TcpAccepted, TcpClosed, TcpConnection
from ..core.tcp.connection import TcpState, check_invariants
from ..wire import arp, ethernet, icmpv4, icmpv6, ipv4, ipv6, pretty, tcp, udp, vnet
from ..wire.error import WireError
from .clock import ManualClock

__all__ = [
    "PARSERS",
    "FuzzError",
    "StackFuzzer",
    "advance_record",
    "app_record",
    "handshake_record",
    "icmp_record",
    "parse_everything",
    "raw_record",
    "segment_record",
]

_SRC6 = bytes.fromhex("20010002000000000000000000000001")
_DST6 = bytes.fromhex("20010002000000000000000000000002")
_SRC4 = bytes([198, 18, 0, 1])
_DST4 = bytes([198, 18, 0, 2])


def _icmpv6_all(data: bytes) -> object:
    message = icmpv6.parse_icmpv6(data, _SRC6, _DST6, verify_checksum=False)
    if message.type == icmpv6.TYPE_NEIGHBOR_SOLICITATION:
        return icmpv6.parse_neighbor_solicitation(message)
    if message.type == icmpv6.TYPE_NEIGHBOR_ADVERTISEMENT:
        return icmpv6.parse_neighbor_advertisement(message)
    return message


def _tcp_round_trip(data: bytes) -> object:
    """Parse, rebuild and parse again: the second parse must agree with the first."""
    segment = tcp.parse_tcp(data)
    options = segment.options
    rebuilt = tcp.build_tcp(
        segment.source_port, segment.destination_port, segment.seq, segment.ack,
        segment.flags, segment.window, options=bytes(data[20 : segment.header_length]),
        payload=bytes(segment.payload), source=_SRC4, destination=_DST4, urgent=segment.urgent,
    )  # fmt: skip
    again = tcp.parse_tcp(rebuilt)
    if (again.seq, again.ack, again.flags, again.window, bytes(again.payload)) != (
        segment.seq, segment.ack, segment.flags, segment.window, bytes(segment.payload),
    ):  # fmt: skip
        raise AssertionError(f"TCP round trip changed the segment: {segment} -> {again}")
    if again.options != options:
        raise AssertionError("TCP round trip changed the options")
    return again


#: Every wire parser, by name. Each takes bytes and returns or raises WireError.
PARSERS: Final[dict[str, Callable[[bytes], object]]] = {
    "ipv4": ipv4.parse_ipv4,
    "ipv4_no_checksum": lambda data: ipv4.parse_ipv4(data, verify_checksum=False),
    "ipv6": ipv6.parse_ipv6,
    "tcp": tcp.parse_tcp,
    "tcp_round_trip": _tcp_round_trip,
    "tcp_options": tcp.parse_options,
    "udp": udp.parse_udp,
    "udp_checksum": lambda data: udp.parse_udp(
        data, source_address=_SRC4, destination_address=_DST4
    ),
    "icmpv4": lambda data: icmpv4.parse_icmpv4(data, verify_checksum=False),
    "icmpv6": _icmpv6_all,
    "ethernet": ethernet.parse_ethernet,
    "arp": arp.parse_arp,
    "vnet": vnet.parse_vnet_header,
    # The summariser catches everything for its callers; its inner functions must not need it.
    "pretty_packet": lambda data: pretty._summarize_packet(data, False),
    "pretty_vnet_packet": lambda data: pretty._summarize_packet(data, True),
    "pretty_frame": lambda data: pretty._summarize_frame(memoryview(data)),
}


def parse_everything(data: bytes) -> None:
    """Give ``data`` to every parser; anything but WireError propagates (a finding)."""
    for parse in PARSERS.values():
        try:
            parse(data)
        except WireError:
            pass


class FuzzError(AssertionError):
    """A check of :class:`StackFuzzer` failed."""


class _Reader:
    """Reads fixed-size fields from the script; past its end every field reads as zero."""

    __slots__ = ("data", "position")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def more(self) -> bool:
        return self.position < len(self.data)

    def take(self, size: int) -> bytes:
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk.ljust(size, b"\0")

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack("!H", self.take(2))[0]
        return value

    def u32(self) -> int:
        value: int = struct.unpack("!I", self.take(4))[0]
        return value


_CORE_DIR = __file__.rsplit("/", 2)[0] + "/core/"

#: Records a script may hold before the rest is ignored (bounds one run).
MAX_RECORDS: Final = 200
#: Timer firings one clock advance may take before it counts as a timer storm.
MAX_TIMER_FIRINGS: Final = 5000
#: The work bound, in Python lines executed in ``aionetstack/core``: a fixed allowance
#: per record plus one per segment in or out and per timer fired.
WORK_BASE: Final = 4000
WORK_PER_PACKET: Final = 600


class StackFuzzer:
    """One StackCore at 198.18.0.2 (2001:2::2 with ``ipv6``) with a listener on port 80
    and an active connection to the peer's port 8080; the script plays the peer,
    198.18.0.1 (2001:2::1)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        tcp_config: TcpConfig | None = None,
        count_work: bool = False,
        ipv6: bool = False,
    ) -> None:
        self.clock = ManualClock(1000.0)
        config = StackConfig(tcp=tcp_config or TcpConfig(max_connections=64, syn_queue_limit=8))
        #: Our address and the peer's (2001:2::/48 with ``ipv6``, else 198.18.0.0/24).
        self.ipv6 = ipv6
        self.US, self.PEER = (_DST6, _SRC6) if ipv6 else (_DST4, _SRC4)
        interface = "2001:2::2/64" if ipv6 else "198.18.0.2/24"
        self.core = StackCore([interface], rng=random.Random(seed), config=config)
        self.listener = self.core.tcp.listen(self.US, 80, 4)
        self.connections: list[TcpConnection] = []
        self.closed: set[int] = set()
        self.last_out: list[bytes] = []
        self.count_work = count_work
        self.records = 0
        self.max_work = 0
        self._work = 0
        self._connect(8080)
        self._drain()

    # -- running a script ------------------------------------------------------------

    def run(self, script: bytes) -> None:
        """Apply every record of ``script`` (at most MAX_RECORDS), checking after each."""
        reader = _Reader(script)
        while reader.more() and self.records < MAX_RECORDS:
            self.step(reader)

    def apply(self, record: bytes) -> None:
        """Apply one record (as :mod:`encoders <aionetstack.testing.fuzz>` build them)."""
        self.step(_Reader(record))

    def step(self, reader: _Reader) -> None:
        """Decode and apply one record, then check the invariants."""
        self.records += 1
        op = reader.u8() % 10
        packets_in = 0
        self._fired = self._packets_out = 0
        work_before = self._work
        previous = sys.gettrace()
        if self.count_work:
            sys.settrace(self._tracer)
        try:
            packets_in = self._apply(op, reader)
            self._drain()
        except FuzzError:
            raise
        except Exception as error:
            raise FuzzError(f"record {self.records} (op {op}) raised {error!r}") from error
        finally:
            if self.count_work:
                sys.settrace(previous)
        work = self._work - work_before
        self.max_work = max(self.max_work, work)
        if self.count_work:
            allowed = WORK_BASE + WORK_PER_PACKET * (packets_in + self._packets_out + self._fired)
            if work > allowed:
                raise FuzzError(
                    f"record {self.records} (op {op}) took {work} lines of core work, "
                    f"over the bound {allowed}"
                )
        self.check()

    def finish(self, *, settle: float = 3600.0) -> None:
        """Close everything the application holds, let ``settle`` virtual seconds pass,
        and require that no connection is left (the peer stays silent meanwhile)."""
        for connection in self.connections:
            if id(connection) not in self.closed:
                connection.close()
        self.listener.close()
        self._drain()
        self._advance(settle)
        self._drain()
        self.check()
        left = self.core.tcp.connections
        if left:
            states = sorted(str(connection.state) for connection in left)
            raise FuzzError(f"{len(left)} connections left after {settle} s: {states}")

    # -- the records -----------------------------------------------------------------

    def _apply(self, op: int, reader: _Reader) -> int:
        if op == 0:
            return self._segment(reader)
        if op == 1:
            size = reader.u16() % 1600
            self.core.receive_packet(reader.take(size), self.clock.now)
            return 1
        if op == 2:
            return self._icmp_error(reader)
        if op == 9:
            return self._handshake(reader)
        connection = self._pick(reader.u8())
        if op == 3:
            size = reader.u16()
            if connection is not None and id(connection) not in self.closed:
                try:
                    connection.send(bytes(size))
                except BrokenPipeError:
                    pass
        elif op == 4:
            if connection is not None:
                connection.receive(reader.u16())
        elif op == 5:
            how = reader.u8() % 3
            if connection is not None and id(connection) not in self.closed:
                (connection.shutdown_write, connection.close, connection.abort)[how]()
        elif op == 6:
            self._advance(reader.u16() / 1000)
        elif op == 7:
            if len(self.connections) < 32:
                try:
                    self._connect(1 + reader.u16() % 0xFFFF)
                except OSError:
                    pass  # the table is full: refused locally, as documented
        else:
            accepted = self.listener.accept()
            if accepted is not None:
                self.connections.append(accepted)
        return 0

    def _pick(self, index: int) -> TcpConnection | None:
        return self.connections[index % len(self.connections)] if self.connections else None

    def _connect(self, port: int) -> None:
        connection = self.core.tcp.connect(self.US, self.PEER, port, self.clock.now)
        self.connections.append(connection)

    def _segment(self, reader: _Reader) -> int:
        """A TCP segment from the peer, to a known connection or to port 80."""
        target = reader.u8()
        flags = reader.u8()
        seq_mode, seq_delta = reader.u8(), reader.u32()
        ack_mode, ack_delta = reader.u8(), reader.u32()
        window = reader.u16()
        payload = reader.take(reader.u8() % 128 * (1 + reader.u8() % 16))
        options = reader.take(reader.u8() % 11 * 4)
        connection = self._pick(target) if target & 0x80 else None
        if connection is not None:
            sport, dport = connection.remote_port, connection.local_port
            rcv_nxt = connection._rcv_nxt
            snd_una = (connection._iss + connection._una) & 0xFFFFFFFF
        else:
            sport, dport = 40000 + target % 8, 80
            rcv_nxt = snd_una = 0
        # Small deltas around the live numbers (signed 16-bit) unless the mode says raw.
        seq = seq_delta if seq_mode & 1 else rcv_nxt + _signed16(seq_delta)
        ack = ack_delta if ack_mode & 1 else snd_una + _signed16(ack_delta)
        raw = tcp.build_tcp(
            sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, window,
            options=options, payload=payload, source=self.PEER, destination=self.US,
        )  # fmt: skip
        self._deliver_tcp(raw)
        return 1

    def _deliver_tcp(self, raw: bytes) -> None:
        """Wrap a TCP segment from the peer in an IP header and hand it to the core."""
        if self.ipv6:
            packet = ipv6.build_ipv6(ipv6.IPv6Header(self.PEER, self.US, ipv4.PROTO_TCP), raw)
        else:
            packet = ipv4.build_ipv4(ipv4.IPv4Header(self.PEER, self.US, ipv4.PROTO_TCP), raw)
        self.core.receive_packet(packet, self.clock.now)

    def _handshake(self, reader: _Reader) -> int:
        """Complete a handshake the way a well-behaved peer would (so that fuzzing reaches
        the synchronized states quickly): answer a connection in SYN-SENT with a SYN-ACK,
        or open a new connection to port 80 (SYN, then the ACK of the SYN-ACK)."""
        choice = reader.u8()
        option_set = reader.u8()
        mss = (64, 536, 1460, 9000)[option_set & 3]
        options = tcp.build_options(
            mss=mss, sack_permitted=bool(option_set & 4),
            timestamp=(1, 0) if option_set & 8 else None,
            window_scale=(option_set >> 4) % 15 if option_set & 0x80 else None,
        )  # fmt: skip
        window = reader.u16() | 1
        isn = reader.u32()
        pending = [c for c in self.connections if c.state is TcpState.SYN_SENT]
        if pending and choice & 1:
            connection = pending[choice % len(pending)]
            self._send(
                connection.remote_port, connection.local_port, isn,
                connection._iss + 1, tcp.SYN | tcp.ACK, window, options,
            )  # fmt: skip
            return 1
        sport = 41000 + choice % 64
        self._send(sport, 80, isn, 0, tcp.SYN, window, options)
        for packet in self.core.packets_to_send(self.clock.now):
            if isinstance(packet, bytes | bytearray):
                if self.ipv6:
                    _, payload = ipv6.parse_ipv6(packet)
                else:
                    _, payload = ipv4.parse_ipv4(packet)
                segment = tcp.parse_tcp(payload)
                if segment.destination_port == sport and segment.flags == tcp.SYN | tcp.ACK:
                    echoed = segment.options.timestamp
                    ack_options = tcp.build_options(timestamp=(1, echoed[0])) if echoed else b""
                    self._send(sport, 80, isn + 1, segment.seq + 1, tcp.ACK, window, ack_options)
                    return 2
        return 1

    def _send(  # noqa: PLR0917
        self, sport: int, dport: int, seq: int, ack: int, flags: int, window: int, options: bytes
    ) -> None:
        raw = tcp.build_tcp(
            sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, window,
            options=options, source=self.PEER, destination=self.US,
        )  # fmt: skip
        self._deliver_tcp(raw)

    def _icmp_error(self, reader: _Reader) -> int:
        """An ICMP error quoting one of our recent packets, its sequence number shifted."""
        kind = reader.u8()
        shift = _signed16(reader.u16())
        if not self.last_out or self.ipv6:
            return 0  # ICMPv6 errors are not generated yet (IPv4 only)
        quoted = bytearray(self.last_out[kind % len(self.last_out)][:28])
        if len(quoted) >= 28 and quoted[9] == ipv4.PROTO_TCP:
            seq = (int.from_bytes(quoted[24:28], "big") + shift) & 0xFFFFFFFF
            quoted[24:28] = seq.to_bytes(4, "big")
        icmp_type, code = [(3, 1), (3, 3), (3, 4), (11, 0), (3, 13)][kind % 5]
        message = icmpv4.build_error(icmp_type, code, bytes(quoted), next_hop_mtu=576)
        header = ipv4.IPv4Header(self.PEER, self.US, ipv4.PROTO_ICMP)
        self.core.receive_packet(ipv4.build_ipv4(header, message), self.clock.now)
        return 1

    # -- time, output, events ----------------------------------------------------------

    _fired = 0
    _packets_out = 0

    def _advance(self, seconds: float) -> None:
        target = self.clock.now + seconds
        while True:
            deadline = self.core.get_timer()
            if deadline is None or deadline > target:
                break
            self._fired += 1
            if self._fired > MAX_TIMER_FIRINGS:
                raise FuzzError(f"timer storm: over {MAX_TIMER_FIRINGS} firings in {seconds} s")
            self.clock.advance_to(deadline)
            self.core.handle_timer(self.clock.now)
            self._drain()
        self.clock.advance_to(target)

    def _drain(self) -> int:
        """Collect output (kept for ICMP quotes) and events; returns the packets sent."""
        out = self.core.packets_to_send(self.clock.now)
        self._packets_out += len(out)
        if out:
            self.last_out = [bytes(p) for p in out[-8:] if isinstance(p, bytes | bytearray)]
        while (event := self.core.next_event()) is not None:
            if isinstance(event, TcpClosed):
                key = id(event.connection)
                if key in self.closed:
                    raise FuzzError(f"TcpClosed reported twice for {event.connection!r}")
                self.closed.add(key)
            elif isinstance(event, TcpAccepted):
                accepted = self.listener.accept()
                if accepted is not None and len(self.connections) < 64:
                    self.connections.append(accepted)
                elif accepted is not None:
                    accepted.abort()
        return len(out)

    def _tracer(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not frame.f_code.co_filename.startswith(_CORE_DIR):
            return None
        if event == "line":
            self._work += 1
        return self._tracer

    # -- the checks ------------------------------------------------------------------

    def check(self) -> None:
        """Raise FuzzError when a bookkeeping invariant does not hold."""
        tcp_config = self.core.config.tcp
        live = self.core.tcp.connections
        if len(live) > tcp_config.max_connections:
            raise FuzzError(f"{len(live)} connections, over max_connections")
        if self.listener.half_open > tcp_config.syn_queue_limit:
            raise FuzzError("the SYN queue is over its limit")
        for connection in live:
            problems = check_invariants(connection)
            ooo = connection._ooo
            if ooo is not None:
                problems += ooo.check()
            if connection._rbuf.size > tcp_config.receive_buffer + 65536:
                problems.append(f"receive buffer holds {connection._rbuf.size} bytes")
            if problems:
                raise FuzzError(f"record {self.records}: {connection!r}: {problems}")


def _signed16(value: int) -> int:
    value &= 0xFFFF
    return value - 0x10000 if value & 0x8000 else value


# -- records, encoded (for structured generators and hand-written corpus entries) ----------


def segment_record(  # noqa: PLR0917
    target: int, flags: int, seq_delta: int, ack_delta: int, window: int,
    payload_units: int = 0, payload_scale: int = 0, options: bytes = b"",
    *, raw_seq: bool = False, raw_ack: bool = False,
) -> bytes:  # fmt: skip
    """Op 0. ``target`` >= 0x80 picks a known connection (seq/ack deltas from its live
    RCV.NXT and SND.UNA), below it a fresh port to the listener.
    The payload is ``payload_units * (1 + payload_scale)`` bytes; options are padded to 4."""
    options = options[:40]
    options += b"\0" * (-len(options) % 4)
    return (
        bytes((0, target & 0xFF, flags & 0xFF, int(raw_seq)))
        + struct.pack("!I", seq_delta & 0xFFFFFFFF)
        + bytes((int(raw_ack),))
        + struct.pack("!IH", ack_delta & 0xFFFFFFFF, window & 0xFFFF)
        + bytes((payload_units % 128, payload_scale % 16))
        + b"p" * (payload_units % 128 * (1 + payload_scale % 16))
        + bytes((len(options) // 4,))
        + options
    )


def raw_record(packet: bytes) -> bytes:
    """Op 1: a raw IP packet (at most 1599 bytes)."""
    packet = packet[:1599]
    return bytes((1,)) + struct.pack("!H", len(packet)) + packet


def icmp_record(kind: int, shift: int) -> bytes:
    """Op 2: an ICMP error quoting one of our recent packets, its seq shifted by ``shift``."""
    return bytes((2, kind & 0xFF)) + struct.pack("!H", shift & 0xFFFF)


def app_record(action: str, target: int, amount: int = 0) -> bytes:
    """Ops 3-5, 7 and 8: ``send``/``receive`` an amount, ``shutdown``, ``close``, ``abort``,
    ``connect`` (to port ``amount``) and ``accept``."""
    if action == "send":
        return bytes((3, target & 0xFF)) + struct.pack("!H", amount & 0xFFFF)
    if action == "receive":
        return bytes((4, target & 0xFF)) + struct.pack("!H", amount & 0xFFFF)
    if action in ("shutdown", "close", "abort"):
        return bytes((5, target & 0xFF, ("shutdown", "close", "abort").index(action)))
    if action == "connect":
        return bytes((7, target & 0xFF)) + struct.pack("!H", amount & 0xFFFF)
    if action == "accept":
        return bytes((8, target & 0xFF))
    raise ValueError(f"unknown action {action!r}")


def advance_record(milliseconds: int) -> bytes:
    """Op 6: let up to 65.535 virtual seconds pass, firing timers at their deadlines."""
    return bytes((6,)) + struct.pack("!H", min(milliseconds, 0xFFFF))


def handshake_record(choice: int, option_set: int, window: int) -> bytes:
    """Op 9: a well-behaved handshake (see :meth:`StackFuzzer._handshake`)."""
    return bytes((9, choice & 0xFF, option_set & 0xFF)) + struct.pack(
        "!HI", window & 0xFFFF, 1000 + 7919 * choice
    )

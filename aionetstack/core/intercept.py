"""Intercept mode: terminate TCP and UDP flows to addresses that are not our own.

The table holds intercepted networks (both families). The IP layer accepts a
packet whose destination one of them covers as if the address were ours
(:meth:`Interceptor.covers`); TCP and UDP then hand what no connection,
listener or endpoint owns to this module:

* TCP: a SYN (without ACK) to an intercepted address and port becomes a
  :class:`PendingTcpFlow`, and the SYN is *held*: nothing is answered until the
  application calls :meth:`Interceptor.accept` (the handshake completes, the
  connection's local address and port are the original destination) or
  :meth:`Interceptor.reject` (RST, or ICMP port unreachable / administratively
  prohibited). A pending flow not decided within ``pending_timeout`` is
  rejected with RST. Retransmitted SYNs of a pending flow are absorbed; a RST
  from the client cancels it; pending flows are bounded (``max_pending_tcp``:
  excess SYNs are dropped, so the client retries, as gVisor's forwarder does).
* UDP: a datagram to an intercepted address creates one :class:`UdpFlow` per
  (source, destination) the first time; its datagrams queue on the flow
  (bounded, drops counted); replies leave from the original destination; a
  flow idle for ``udp_idle_timeout`` (both ways) ends.
* ICMP echo requests to intercepted addresses are answered when the rule asks.

Sans-I/O like the rest of the core: every call takes ``now``; the driver hears
of new and ended flows through events (below). Nothing a client sends raises
out of here: it is handled or dropped and counted under ``statistics()``.
"""

from __future__ import annotations

import collections
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Protocol

from ..config import InterceptConfig
from ..wire import icmpv4, icmpv6, ipv4, ipv4_send, ipv6, udp
from ..wire.tcp import ACK, FIN, RST, SYN, TcpOptions
from .counts import Counts
from .timer_generation import TimerGeneration

__all__ = [
    "InterceptRule",
    "InterceptedTcp",
    "InterceptedTcpGone",
    "InterceptedUdp",
    "InterceptedUdpClosed",
    "InterceptedUdpReadable",
    "Interceptor",
    "PendingTcpFlow",
    "UdpFlow",
]

#: How a pending TCP flow may be refused: RST (RFC 9293 §3.10.7.1) or an ICMP
#: destination unreachable (RFC 792 code 3 port / 13 administratively prohibited,
#: RFC 4443 §3.1 code 4 / 1) -> (ICMPv4 code, ICMPv6 code).
REJECT_ICMP: Final = {
    "port-unreachable": (icmpv4.CODE_PORT_UNREACHABLE, icmpv6.CODE_PORT_UNREACHABLE),
    "admin-prohibited": (13, icmpv6.CODE_ADMINISTRATIVELY_PROHIBITED),
}
#: Entries kept in the covers() cache before it is emptied (a flood of random
#: destinations cannot grow it beyond this).
_COVER_CACHE_LIMIT: Final = 4096
_SEQ_MASK: Final = 0xFFFFFFFF
#: RFC 1112 / RFC 4291: multicast and the limited broadcast are never intercepted.
_LIMITED_BROADCAST: Final = b"\xff\xff\xff\xff"


class InterceptTcpHost(Protocol):
    """What intercept needs from the TCP layer (``TcpLayer`` satisfies it)."""

    def accept_intercepted(  # noqa: PLR0917
        self, local: bytes, local_port: int, remote: bytes, remote_port: int, seq: int,
        window: int, options: TcpOptions, now: float,
    ) -> object:  # fmt: skip
        """Open a connection for a held SYN: SYN-RECEIVED, SYN-ACK sent."""

    def refuse_intercepted(
        self, local: bytes, local_port: int, remote: bytes, remote_port: int, seq: int
    ) -> None:
        """Answer a held SYN with RST|ACK (RFC 9293 §3.10.7.1)."""


class InterceptRule:
    """One ``Stack.intercept`` call: its networks and which protocols it takes.

    ``user_data`` is the driver's slot (its handlers).
    """

    __slots__ = ("closed", "echo", "networks", "tcp", "udp", "user_data")

    def __init__(
        self,
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
        *,
        tcp: bool,
        udp: bool,
        echo: bool,
    ) -> None:
        self.networks = networks
        self.tcp = tcp
        self.udp = udp
        self.echo = echo
        self.closed = False
        self.user_data: object = None

    def __repr__(self) -> str:
        return f"<InterceptRule {[str(n) for n in self.networks]}>"


class PendingTcpFlow:
    """A SYN held for the application's decision (or the flow it became).

    ``local``/``local_port`` are the original destination, ``remote``/
    ``remote_port`` the client; addresses packed. ``state`` is ``"pending"``,
    then ``"accepted"``, ``"rejected"``, ``"timed_out"`` or ``"cancelled"``
    (the client sent RST, or the rule was closed).
    """

    __slots__ = (
        "deadline", "local", "local_port", "options", "remote", "remote_port", "rule", "seq",
        "state", "user_data", "window",
    )  # fmt: skip

    def __init__(  # noqa: PLR0917
        self, rule: InterceptRule, local: bytes, local_port: int, remote: bytes,
        remote_port: int, seq: int, window: int, options: TcpOptions, deadline: float,
    ) -> None:  # fmt: skip
        self.rule = rule
        self.local = local
        self.local_port = local_port
        self.remote = remote
        self.remote_port = remote_port
        self.seq = seq
        self.window = window
        self.options = options
        self.deadline = deadline
        self.state = "pending"
        self.user_data: object = None

    @property
    def key(self) -> tuple[bytes, int, bytes, int]:
        return (self.local, self.local_port, self.remote, self.remote_port)

    def __repr__(self) -> str:
        return (
            f"<PendingTcpFlow {_text(self.remote)}:{self.remote_port} -> "
            f"{_text(self.local)}:{self.local_port} {self.state}>"
        )


class UdpFlow:
    """Datagrams between one client (``remote``) and one intercepted destination (``local``)."""

    __slots__ = (
        "_interceptor", "closed", "deadline", "local", "local_port", "queue", "readable_reported",
        "remote", "remote_port", "rule", "user_data",
    )  # fmt: skip

    def __init__(  # noqa: PLR0917
        self, interceptor: Interceptor, rule: InterceptRule, local: bytes, local_port: int,
        remote: bytes, remote_port: int, deadline: float,
    ) -> None:  # fmt: skip
        self._interceptor = interceptor
        self.rule = rule
        self.local = local
        self.local_port = local_port
        self.remote = remote
        self.remote_port = remote_port
        self.deadline = deadline
        self.queue: collections.deque[bytes] = collections.deque()
        self.closed = False
        #: An InterceptedUdpReadable is pending (not re-sent until the queue is read empty).
        self.readable_reported = False
        self.user_data: object = None

    @property
    def key(self) -> tuple[bytes, int, bytes, int]:
        return (self.local, self.local_port, self.remote, self.remote_port)

    def receive(self) -> bytes | None:
        """The oldest queued datagram, or None when none is queued."""
        if self.queue:
            return self.queue.popleft()
        self.readable_reported = False
        return None

    def send(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Send one datagram to the client from the original destination."""
        self._interceptor.udp_send(self, data, now)

    def close(self) -> None:
        """End the flow (later datagrams from the client start a new one). Idempotent."""
        self._interceptor.udp_close(self)

    def __repr__(self) -> str:
        return (
            f"<UdpFlow {_text(self.remote)}:{self.remote_port} -> "
            f"{_text(self.local)}:{self.local_port}{' closed' if self.closed else ''}>"
        )


# -- events ----------------------------------------------------------------------


@dataclass(slots=True)
class InterceptedTcp:
    """A SYN is held: the application must accept or reject ``flow``."""

    flow: PendingTcpFlow


@dataclass(slots=True)
class InterceptedTcpGone:
    """A pending flow ended without a decision (``flow.state``: timed_out or cancelled)."""

    flow: PendingTcpFlow


@dataclass(slots=True)
class InterceptedUdp:
    """A new UDP flow; its first datagram is queued on it."""

    flow: UdpFlow


@dataclass(slots=True)
class InterceptedUdpReadable:
    """Datagrams are queued on ``flow`` (at most one pending until the queue is read empty)."""

    flow: UdpFlow


@dataclass(slots=True)
class InterceptedUdpClosed:
    """``flow`` ended: idle too long, or its rule was closed. Not sent for ``flow.close()``."""

    flow: UdpFlow


# -- the table ---------------------------------------------------------------------


class Interceptor:
    """Intercepted networks and their flows, for one stack. See the module docstring."""

    def __init__(
        self,
        config: InterceptConfig,
        *,
        events: collections.deque[object],
        send_ip: Callable[[bytes, bytes, int, bytes], None],
        tcp: InterceptTcpHost,
        own_addresses: frozenset[bytes] = frozenset(),
        timer_generation: TimerGeneration | None = None,
    ) -> None:
        self.config = config
        #: Bumped when a held SYN or a new UDP flow brings a deadline (core/timer_generation.py).
        self._timer_generation = timer_generation or TimerGeneration()
        #: The stack's own (and broadcast) addresses: never intercepted, even inside a
        #: network that is (0.0.0.0/0 included), so their listeners and RSTs stay as they are.
        self._own = own_addresses
        self._events = events
        self._send_ip = send_ip
        self._tcp = tcp
        self._rules: list[InterceptRule] = []
        #: (family length, network int, mask int, rule), longest prefix first.
        self._table: list[tuple[int, int, int, InterceptRule]] = []
        self._cache: dict[bytes, InterceptRule | None] = {}
        #: Pending TCP flows in creation order (their deadlines ascend with it).
        self._pending: collections.OrderedDict[tuple[bytes, int, bytes, int], PendingTcpFlow]
        self._pending = collections.OrderedDict()
        #: UDP flows, least recently active first.
        self._udp: collections.OrderedDict[tuple[bytes, int, bytes, int], UdpFlow]
        self._udp = collections.OrderedDict()
        self.stats = Counts()

    # -- rules -------------------------------------------------------------------

    def add(
        self, networks: Iterable[str], *, tcp: bool = True, udp: bool = True, echo: bool = True
    ) -> InterceptRule:
        """Intercept ``networks`` ("198.19.0.0/16", "2001:2:0:1::/64" ...).

        ``ValueError`` for a network that does not parse, a host part that is
        set, or one that overlaps a network already intercepted.
        """
        if isinstance(networks, str):
            raise TypeError("networks must be a list of prefixes, not one string")
        parsed: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for text in networks:
            if not isinstance(text, str):
                raise TypeError(f"a network must be a string like '198.19.0.0/16', got {text!r}")
            try:
                parsed.append(ipaddress.ip_network(text))
            except ValueError as error:
                raise ValueError(f"bad network {text!r}: {error}") from None
        if not parsed:
            raise ValueError("networks must name at least one prefix")
        for index, network in enumerate(parsed):
            others = [n for rule in self._rules for n in rule.networks] + parsed[:index]
            for other in others:
                if other.version == network.version and network.overlaps(other):
                    raise ValueError(f"{network} overlaps {other}, already intercepted")
        rule = InterceptRule(parsed, tcp=tcp, udp=udp, echo=echo)
        self._rules.append(rule)
        self._rebuild()
        return rule

    def remove(self, rule: InterceptRule, now: float) -> None:
        """Stop intercepting ``rule``'s networks: its pending SYNs are answered with RST
        (flows reported gone, state ``cancelled``) and its UDP flows end (reported closed).
        Connections already accepted stay. Idempotent."""
        if rule.closed:
            return
        rule.closed = True
        self._rules.remove(rule)
        self._rebuild()
        for flow in [f for f in self._pending.values() if f.rule is rule]:
            self._refuse(flow, "cancelled")
            self._events.append(InterceptedTcpGone(flow))
        for udp_flow in [f for f in self._udp.values() if f.rule is rule]:
            self._end_udp(udp_flow)
            self._events.append(InterceptedUdpClosed(udp_flow))

    def _rebuild(self) -> None:
        table = []
        for rule in self._rules:
            for network in rule.networks:
                length = 4 if network.version == 4 else 16
                table.append((
                    length, int(network.network_address), int(network.netmask), rule,
                    network.prefixlen,
                ))  # fmt: skip
        table.sort(key=lambda entry: -entry[4])
        self._table = [entry[:4] for entry in table]
        self._cache.clear()

    def rule_for(self, address: bytes) -> InterceptRule | None:
        """The rule intercepting ``address`` (a packed unicast address), or None."""
        cache = self._cache
        if address in cache:
            return cache[address]
        rule = None
        if (
            self._table
            and address != _LIMITED_BROADCAST
            and address not in self._own
            and not _is_multicast(address)
        ):
            length = len(address)
            value = int.from_bytes(address, "big")
            for family, network, mask, candidate in self._table:
                if family == length and value & mask == network:
                    rule = candidate
                    break
        if len(cache) >= _COVER_CACHE_LIMIT:
            cache.clear()
        cache[address] = rule
        return rule

    def covers(self, address: bytes) -> bool:
        """Whether packets to ``address`` are taken as if it were ours."""
        return bool(self._table) and self.rule_for(address) is not None

    def answers_echo(self, address: bytes) -> bool:
        """Whether ICMP echo requests to ``address`` are answered (from ``address``)."""
        if not self._table:
            return False
        rule = self.rule_for(address)
        return rule is not None and rule.echo

    # -- TCP ------------------------------------------------------------------------

    def tcp_segment(  # noqa: PLR0917
        self, source: bytes, destination: bytes, sport: int, dport: int, seq: int, flags: int,
        window: int, options: TcpOptions | None, now: float,
    ) -> bool:  # fmt: skip
        """A segment no connection or listener owns. True when intercept took it.

        False (the TCP layer answers RST as usual) for a destination not
        intercepted or without a TCP handler, and for a segment that is
        neither a SYN nor about a pending flow.
        """
        if not self._table:
            return False
        rule = self.rule_for(destination)
        if rule is None or not rule.tcp:
            return False
        stats = self.stats
        key = (destination, dport, source, sport)
        flow = self._pending.get(key)
        if flow is not None:
            if flags & RST:
                stats["tcp_pending_cancelled_by_client"] += 1
                del self._pending[key]
                flow.state = "cancelled"
                self._events.append(InterceptedTcpGone(flow))
            elif flags & SYN and not flags & ACK:
                # gVisor's forwarder and Linux's SYN queue do the same: one flow per
                # 4-tuple; the newest SYN is the one the client waits on.
                stats["tcp_syn_retransmits_absorbed"] += 1
                flow.seq = seq
                flow.window = window
                flow.options = options if options is not None else TcpOptions()
            else:
                stats["tcp_pending_dropped_not_syn"] += 1
            return True
        if flags & (ACK | RST | FIN) or not flags & SYN:
            return False  # RFC 9293 §3.10.7.1: the TCP layer resets (or drops a RST)
        if len(self._pending) >= self.config.max_pending_tcp:
            stats["tcp_syns_dropped_pending_full"] += 1
            return True  # dropped: the client retransmits (gVisor: ForwardMaxInFlightDrop)
        if dport == 0 or sport == 0:
            stats["tcp_syns_dropped_port_zero"] += 1
            return True
        flow = PendingTcpFlow(
            rule, destination, dport, source, sport, seq, window,
            options if options is not None else TcpOptions(), now + self.config.pending_timeout,
        )  # fmt: skip
        self._pending[key] = flow
        self._timer_generation.count += 1
        stats["tcp_flows_intercepted"] += 1
        self._events.append(InterceptedTcp(flow))
        return True

    def accept(self, flow: PendingTcpFlow, now: float) -> object:
        """Complete the handshake of a pending flow: returns the TCP connection
        (SYN-RECEIVED; it reports ``TcpConnected`` or ``TcpClosed`` as an active
        open does). ``ValueError`` unless the flow is still pending; the TCP
        layer's ``OSError`` when its table is full (the flow is then rejected).
        """
        self._take(flow)
        try:
            connection = self._tcp.accept_intercepted(
                flow.local, flow.local_port, flow.remote, flow.remote_port, flow.seq,
                flow.window, flow.options, now,
            )  # fmt: skip
        except OSError:
            self.stats["tcp_accept_failed"] += 1
            self._tcp.refuse_intercepted(
                flow.local, flow.local_port, flow.remote, flow.remote_port, flow.seq
            )
            flow.state = "rejected"
            raise
        flow.state = "accepted"
        self.stats["tcp_flows_accepted"] += 1
        return connection

    def reject(self, flow: PendingTcpFlow, now: float, *, icmp: str | None = None) -> None:
        """Refuse a pending flow: RST, or ``icmp`` one of :data:`REJECT_ICMP`'s names.

        ``ValueError`` unless the flow is still pending or ``icmp`` is unknown.
        """
        if icmp is not None and icmp not in REJECT_ICMP:
            raise ValueError(f"icmp must be one of {sorted(REJECT_ICMP)} or None, got {icmp!r}")
        self._take(flow)
        if icmp is None:
            self._refuse(flow, "rejected")
            self.stats["tcp_flows_rejected"] += 1
            return
        flow.state = "rejected"
        self.stats["tcp_flows_rejected_icmp"] += 1
        self._send_unreachable(flow, *REJECT_ICMP[icmp])

    def _take(self, flow: PendingTcpFlow) -> None:
        if flow.state != "pending":
            raise ValueError(f"the flow is {flow.state}, no longer pending")
        self._pending.pop(flow.key, None)

    def _refuse(self, flow: PendingTcpFlow, state: str) -> None:
        self._pending.pop(flow.key, None)
        flow.state = state
        self._tcp.refuse_intercepted(
            flow.local, flow.local_port, flow.remote, flow.remote_port, flow.seq
        )

    def _send_unreachable(self, flow: PendingTcpFlow, code4: int, code6: int) -> None:
        """An ICMP destination unreachable quoting the SYN as the client sent it (its
        addresses, ports and sequence number: what the client matches on, RFC 5927 §4.1)."""
        segment = _syn_quote(flow)
        if len(flow.local) == 4:
            packet = (
                ipv4_send.simple_ipv4_header(flow.remote, flow.local, 6, len(segment), 64, 0)
                + segment
            )
            message = icmpv4.build_error(icmpv4.TYPE_DESTINATION_UNREACHABLE, code4, packet)
            self._send_ip(flow.local, flow.remote, ipv4.PROTO_ICMP, message)
        else:
            packet = ipv6.build_ipv6(ipv6.IPv6Header(flow.remote, flow.local, 6), segment)
            message = icmpv6.build_error(
                icmpv6.TYPE_DESTINATION_UNREACHABLE, code6, packet, flow.local, flow.remote
            )
            self._send_ip(flow.local, flow.remote, icmpv6.PROTO_ICMPV6, message)

    @property
    def pending_tcp(self) -> int:
        """SYNs held now."""
        return len(self._pending)

    # -- UDP --------------------------------------------------------------------------

    def udp_datagram(  # noqa: PLR0917
        self, source: bytes, destination: bytes, sport: int, dport: int,
        data: bytes | memoryview, now: float,
    ) -> bool:  # fmt: skip
        """A datagram to an address that may be intercepted. True when intercept took it
        (queued or dropped and counted); False to let UDP answer port unreachable."""
        if not self._table:
            return False
        rule = self.rule_for(destination)
        if rule is None or not rule.udp:
            return False
        stats = self.stats
        key = (destination, dport, source, sport)
        flow = self._udp.get(key)
        if flow is None:
            if dport == 0 or sport == 0:
                stats["udp_dropped_port_zero"] += 1
                return True
            if len(self._udp) >= self.config.max_udp_flows:
                stats["udp_dropped_flows_full"] += 1
                return True
            flow = UdpFlow(self, rule, destination, dport, source, sport, now)
            self._udp[key] = flow
            self._timer_generation.count += 1
            stats["udp_flows_intercepted"] += 1
            self._events.append(InterceptedUdp(flow))
        else:
            self._udp.move_to_end(key)
        flow.deadline = now + self.config.udp_idle_timeout
        stats["udp_datagrams_received"] += 1
        if len(flow.queue) >= self.config.udp_queue_limit:
            stats["udp_dropped_queue_full"] += 1
            return True
        flow.queue.append(bytes(data))
        if not flow.readable_reported:
            flow.readable_reported = True
            self._events.append(InterceptedUdpReadable(flow))
        return True

    def udp_send(self, flow: UdpFlow, data: bytes | bytearray | memoryview, now: float) -> None:
        """One datagram to the client, from the original destination address and port.

        ``OSError(EBADF)`` once the flow is closed; ``OSError(EMSGSIZE)`` for one
        larger than an IP datagram holds.
        """
        if flow.closed:
            raise OSError(9, "the UDP flow is closed")  # EBADF
        limit = 0xFFFF - udp.UDP_HEADER_LENGTH - (20 if len(flow.local) == 4 else 0)
        if len(data) > limit:
            raise OSError(90, f"datagram of {len(data)} bytes exceeds the {limit} UDP holds")
        datagram = udp.build_udp(flow.local_port, flow.remote_port, data, flow.local, flow.remote)
        self._send_ip(flow.local, flow.remote, ipv4.PROTO_UDP, datagram)
        self.stats["udp_datagrams_sent"] += 1
        flow.deadline = now + self.config.udp_idle_timeout
        if flow.key in self._udp:
            self._udp.move_to_end(flow.key)

    def udp_close(self, flow: UdpFlow) -> None:
        """End ``flow`` at the application's request (no event). Idempotent."""
        if not flow.closed:
            self.stats["udp_flows_closed"] += 1
            self._end_udp(flow)

    def _end_udp(self, flow: UdpFlow) -> None:
        flow.closed = True
        flow.queue.clear()
        if self._udp.get(flow.key) is flow:
            del self._udp[flow.key]

    @property
    def udp_flows(self) -> int:
        """UDP flows open now."""
        return len(self._udp)

    # -- timers ------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest pending-SYN or UDP idle deadline."""
        deadline = None
        if self._pending:
            deadline = next(iter(self._pending.values())).deadline
        if self._udp:
            udp_deadline = next(iter(self._udp.values())).deadline
            if deadline is None or udp_deadline < deadline:
                deadline = udp_deadline
        return deadline

    def handle_timer(self, now: float) -> None:
        """Reject SYNs held too long (RST) and end idle UDP flows."""
        pending = self._pending
        while pending:
            flow = next(iter(pending.values()))
            if flow.deadline > now:
                break
            self.stats["tcp_pending_timed_out"] += 1
            self._refuse(flow, "timed_out")
            self._events.append(InterceptedTcpGone(flow))
        flows = self._udp
        while flows:
            udp_flow = next(iter(flows.values()))
            if udp_flow.deadline > now:
                break
            self.stats["udp_flows_expired"] += 1
            self._end_udp(udp_flow)
            self._events.append(InterceptedUdpClosed(udp_flow))

    # -- statistics ---------------------------------------------------------------------

    def count(self, name: str, amount: int = 1) -> None:
        """Add to a named counter (drivers count handler errors here)."""
        self.stats[name] += amount

    @property
    def used(self) -> bool:
        """Whether intercept was ever used (statistics() shows it then)."""
        return bool(self._rules or self.stats)

    def statistics(self) -> dict[str, int]:
        """Counters plus the table sizes now (``tcp_pending_current``, ``udp_flows_current``)."""
        result = dict(self.stats)
        result["tcp_pending_current"] = len(self._pending)
        result["udp_flows_current"] = len(self._udp)
        result["networks_current"] = len(self._table)
        return result


def _is_multicast(address: bytes) -> bool:
    if len(address) == 4:
        return 224 <= address[0] <= 239
    return address[0] == 0xFF


def _syn_quote(flow: PendingTcpFlow) -> bytes:
    """The TCP header of the client's SYN as far as an ICMP quote needs it (ports and
    sequence number: the first 8 bytes, RFC 792), padded to a 20-byte header."""
    return (
        flow.remote_port.to_bytes(2, "big") + flow.local_port.to_bytes(2, "big")
        + (flow.seq & _SEQ_MASK).to_bytes(4, "big") + bytes(4) + bytes([5 << 4, SYN])
        + (flow.window & 0xFFFF).to_bytes(2, "big") + bytes(4)
    )  # fmt: skip


def _text(address: bytes) -> str:
    return str(ipaddress.ip_address(address))

"""Intercept mode in the sans-I/O core, in virtual time, with hand-built packets.

The client 198.18.0.1 talks to addresses in 198.19.0.0/16 that a StackCore at
198.18.0.2 intercepts; every packet out is parsed with dpkt.
"""

from __future__ import annotations

import random
import tracemalloc

import dpkt
import pytest

from aionetstack.config import InterceptConfig, StackConfig
from aionetstack.core.intercept import (
    InterceptedTcp,
    InterceptedTcpGone,
    InterceptedUdp,
    InterceptedUdpClosed,
    InterceptedUdpReadable,
    PendingTcpFlow,
    UdpFlow,
)
from aionetstack.core.stack import StackCore
from aionetstack.core.tcp.events import TcpConnected
from aionetstack.testing.segments import make_segment
from aionetstack.wire import icmpv4, ipv4, ipv6, udp
from aionetstack.wire.tcp import ACK, RST, SYN, build_options

US = bytes([198, 18, 0, 2])
CLIENT = bytes([198, 18, 0, 1])
TARGET = bytes([198, 19, 7, 7])
CLIENT6 = bytes.fromhex("20010002000000000000000000000001")
TARGET6 = bytes.fromhex("20010002000100000000000000000009")


def make_core(**intercept: object) -> StackCore:
    config = StackConfig(intercept=InterceptConfig(**intercept))  # type: ignore[arg-type]
    core = StackCore(["198.18.0.2/24", "2001:2::2/64"], rng=random.Random(1), config=config)
    core.intercept.add(["198.19.0.0/16", "2001:2:1::/48"])
    return core


def syn(
    sport: int = 40000, dport: int = 80, *, seq: int = 1000, destination: bytes = TARGET,
    source: bytes = CLIENT, flags: int = SYN,
) -> bytes:  # fmt: skip
    segment = make_segment(
        source, destination, sport, dport, seq=seq, flags=flags,
        options=build_options(mss=1460),
    )  # fmt: skip
    if len(destination) == 16:
        return ipv6.build_ipv6(ipv6.IPv6Header(source, destination, 6), segment)
    return ipv4.build_ipv4(ipv4.IPv4Header(source, destination, 6), segment)


def events(core: StackCore) -> list[object]:
    found = []
    while (event := core.next_event()) is not None:
        found.append(event)
    return found


def tcp_out(core: StackCore, now: float) -> list[dpkt.tcp.TCP]:
    result = []
    for raw in core.packets_to_send(now):
        ip = dpkt.ip.IP(bytes(raw))  # type: ignore[arg-type]
        assert isinstance(ip.data, dpkt.tcp.TCP), ip.data
        result.append(ip)
    return result


def test_syn_is_held_until_accept_then_synack_from_the_original_destination() -> None:
    core = make_core()
    core.receive_packet(syn(), 1.0)
    assert core.packets_to_send(1.0) == []  # held: nothing answered
    [event] = events(core)
    assert isinstance(event, InterceptedTcp)
    flow = event.flow
    assert (flow.local, flow.local_port, flow.remote, flow.remote_port) == (
        TARGET, 80, CLIENT, 40000)  # fmt: skip
    connection = core.intercept.accept(flow, 2.0)
    [synack] = tcp_out(core, 2.0)
    assert (synack.src, synack.dst) == (TARGET, CLIENT)
    assert synack.data.flags == SYN | ACK and synack.data.ack == 1001
    assert (synack.data.sport, synack.data.dport) == (80, 40000)
    ack = make_segment(CLIENT, TARGET, 40000, 80, seq=1001, ack=synack.data.seq + 1, flags=ACK)
    core.receive_packet(ipv4.build_ipv4(ipv4.IPv4Header(CLIENT, TARGET, 6), ack), 2.1)
    [connected] = events(core)
    assert isinstance(connected, TcpConnected) and connected.connection is connection
    stats = core.statistics()["intercept"]
    assert stats["tcp_flows_accepted"] == 1 and stats["tcp_pending_current"] == 0


def test_ipv6_syn_is_intercepted_too() -> None:
    core = make_core()
    core.receive_packet(syn(destination=TARGET6, source=CLIENT6), 1.0)
    [event] = events(core)
    assert isinstance(event, InterceptedTcp) and event.flow.local == TARGET6
    core.intercept.accept(event.flow, 1.0)
    [out] = core.packets_to_send(1.0)
    ip6 = dpkt.ip6.IP6(bytes(out))  # type: ignore[arg-type]
    assert (ip6.src, ip6.dst) == (TARGET6, CLIENT6) and ip6.data.flags == SYN | ACK


def test_retransmitted_syn_is_absorbed() -> None:
    core = make_core()
    for now in (1.0, 2.0, 4.0):
        core.receive_packet(syn(), now)
    assert len(events(core)) == 1
    assert core.packets_to_send(4.0) == []
    stats = core.statistics()["intercept"]
    assert stats["tcp_syn_retransmits_absorbed"] == 2 and stats["tcp_pending_current"] == 1


def test_reject_answers_rst_ack() -> None:
    core = make_core()
    core.receive_packet(syn(seq=5000), 1.0)
    [event] = events(core)
    core.intercept.reject(event.flow, 1.0)
    [rst] = tcp_out(core, 1.0)
    assert (rst.src, rst.dst) == (TARGET, CLIENT)
    assert rst.data.flags == RST | ACK and rst.data.ack == 5001
    assert event.flow.state == "rejected"
    with pytest.raises(ValueError, match="no longer pending"):
        core.intercept.accept(event.flow, 1.0)


@pytest.mark.parametrize(("how", "code"), [("port-unreachable", 3), ("admin-prohibited", 13)])
def test_reject_with_icmp_quotes_the_syn(how: str, code: int) -> None:
    core = make_core()
    core.receive_packet(syn(seq=5000), 1.0)
    [event] = events(core)
    core.intercept.reject(event.flow, 1.0, icmp=how)
    [out] = core.packets_to_send(1.0)
    ip = dpkt.ip.IP(bytes(out))  # type: ignore[arg-type]
    assert (ip.src, ip.dst, ip.p) == (TARGET, CLIENT, ipv4.PROTO_ICMP)
    message = icmpv4.parse_icmpv4(bytes(ip.data), verify_checksum=True)
    assert (message.type, message.code) == (icmpv4.TYPE_DESTINATION_UNREACHABLE, code)
    quoted = dpkt.ip.IP(message.payload)
    assert (quoted.src, quoted.dst) == (CLIENT, TARGET)
    assert message.payload[20:28] == (40000).to_bytes(2, "big") + (80).to_bytes(2, "big") + (
        5000).to_bytes(4, "big")  # fmt: skip
    with pytest.raises(ValueError, match="icmp must be"):
        core.intercept.reject(event.flow, 1.0, icmp="nonsense")


def test_timeout_rejects_with_rst() -> None:
    core = make_core(pending_timeout=5.0)
    core.receive_packet(syn(), 1.0)
    [_event] = events(core)
    assert core.get_timer() == 6.0
    core.handle_timer(5.9)
    assert core.packets_to_send(5.9) == []
    core.handle_timer(6.0)
    [rst] = tcp_out(core, 6.0)
    assert rst.data.flags == RST | ACK
    [gone] = events(core)
    assert isinstance(gone, InterceptedTcpGone) and gone.flow.state == "timed_out"
    assert core.statistics()["intercept"]["tcp_pending_timed_out"] == 1
    assert core.get_timer() is None


def test_client_rst_cancels_the_pending_flow() -> None:
    core = make_core()
    core.receive_packet(syn(), 1.0)
    events(core)
    core.receive_packet(syn(seq=1001, flags=RST), 1.5)
    [gone] = events(core)
    assert isinstance(gone, InterceptedTcpGone) and gone.flow.state == "cancelled"
    assert core.packets_to_send(1.5) == []


def test_pending_flows_are_bounded_and_excess_syns_dropped() -> None:
    core = make_core(max_pending_tcp=10)
    for port in range(20):
        core.receive_packet(syn(sport=30000 + port), 1.0)
    assert len(events(core)) == 10
    assert core.packets_to_send(1.0) == []  # dropped silently: the clients retry
    stats = core.statistics()["intercept"]
    assert stats["tcp_syns_dropped_pending_full"] == 10 and stats["tcp_pending_current"] == 10


def test_syn_flood_to_random_addresses_keeps_memory_flat() -> None:
    """5,000 SYNs to random addresses and ports: the table stays at its bound, the
    timeout empties it, and memory returns to where it was."""
    core = make_core(max_pending_tcp=256, pending_timeout=1.0)
    rng = random.Random(7)

    def packets(count: int) -> list[bytes]:
        return [
            syn(rng.randrange(1024, 65536), rng.randrange(1, 65536),
                destination=bytes([198, 19, rng.randrange(256), rng.randrange(1, 255)]))
            for _ in range(count)
        ]  # fmt: skip

    def flood(batch: list[bytes], start: float) -> None:
        for index, packet in enumerate(batch):
            now = start + index / len(batch)
            core.receive_packet(packet, now)
            if index % 500 == 0:
                core.handle_timer(now)
            events(core)
            assert core.intercept.pending_tcp <= 256
        core.handle_timer(start + 10)
        core.packets_to_send(start + 10)
        events(core)

    flood(packets(5000), 0.0)  # warm up caches and counters
    second = packets(5000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        flood(second, 100.0)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert core.intercept.pending_tcp == 0
    assert after - before < 200_000, after - before
    stats = core.statistics()["intercept"]
    assert stats["tcp_syns_dropped_pending_full"] > 0


def test_wildcard_listener_does_not_take_intercepted_syns() -> None:
    core = make_core()
    core.tcp.listen(None, 80)
    core.receive_packet(syn(), 1.0)
    [event] = events(core)
    assert isinstance(event, InterceptedTcp)
    assert core.packets_to_send(1.0) == []


def test_destination_not_intercepted_is_dropped_as_before() -> None:
    core = make_core()
    core.receive_packet(syn(destination=bytes([198, 18, 1, 9])), 1.0)
    assert events(core) == [] and core.packets_to_send(1.0) == []
    assert core.statistics()["ip"]["dropped_not_for_us"] == 1


def test_non_syn_without_flow_gets_rst() -> None:
    core = make_core()
    core.receive_packet(syn(flags=ACK, seq=7), 1.0)
    [rst] = tcp_out(core, 1.0)
    assert rst.data.flags & RST


def test_removing_the_rule_resets_pending_and_stops_intercepting() -> None:
    core = make_core()
    rule = core.intercept.add(["198.20.0.0/24"])
    core.receive_packet(syn(destination=bytes([198, 20, 0, 5])), 1.0)
    [_event] = events(core)
    core.intercept.remove(rule, 2.0)
    [rst] = tcp_out(core, 2.0)
    assert rst.data.flags == RST | ACK
    assert isinstance(events(core)[0], InterceptedTcpGone)
    core.receive_packet(syn(destination=bytes([198, 20, 0, 5])), 3.0)
    assert core.statistics()["ip"]["dropped_not_for_us"] == 1


# -- UDP ---------------------------------------------------------------------------


def datagram(
    data: bytes, *, sport: int = 5000, dport: int = 53, destination: bytes = TARGET
) -> bytes:
    body = udp.build_udp(sport, dport, data, CLIENT, destination)
    return ipv4.build_ipv4(ipv4.IPv4Header(CLIENT, destination, ipv4.PROTO_UDP), body)


def test_udp_flow_per_source_and_destination_with_replies_from_destination() -> None:
    core = make_core()
    core.receive_packet(datagram(b"one"), 1.0)
    core.receive_packet(datagram(b"two"), 1.1)
    core.receive_packet(datagram(b"other", dport=54), 1.2)
    found = events(core)
    flows = [e.flow for e in found if isinstance(e, InterceptedUdp)]
    assert [(f.local_port, f.remote_port) for f in flows] == [(53, 5000), (54, 5000)]
    assert sum(isinstance(e, InterceptedUdpReadable) for e in found) == 2
    first = flows[0]
    assert (first.receive(), first.receive(), first.receive()) == (b"one", b"two", None)
    first.send(b"answer", 1.3)
    [out] = core.packets_to_send(1.3)
    ip = dpkt.ip.IP(bytes(out))  # type: ignore[arg-type]
    assert (ip.src, ip.dst, ip.data.sport, ip.data.dport, ip.data.data) == (
        TARGET, CLIENT, 53, 5000, b"answer")  # fmt: skip
    udp.parse_udp(bytes(ip.data), source_address=TARGET, destination_address=CLIENT)


def test_udp_queue_is_bounded_and_drops_counted() -> None:
    core = make_core(udp_queue_limit=4)
    for index in range(10):
        core.receive_packet(datagram(b"%d" % index), 1.0)
    [new, readable] = events(core)
    assert isinstance(new, InterceptedUdp) and isinstance(readable, InterceptedUdpReadable)
    assert list(new.flow.queue) == [b"0", b"1", b"2", b"3"]
    assert core.statistics()["intercept"]["udp_dropped_queue_full"] == 6


def test_udp_flows_are_bounded() -> None:
    core = make_core(max_udp_flows=3)
    for port in range(5):
        core.receive_packet(datagram(b"x", sport=6000 + port), 1.0)
    assert sum(isinstance(e, InterceptedUdp) for e in events(core)) == 3
    assert core.statistics()["intercept"]["udp_dropped_flows_full"] == 2


def test_idle_udp_flow_expires_and_activity_keeps_it() -> None:
    core = make_core(udp_idle_timeout=60.0)
    core.receive_packet(datagram(b"a"), 0.0)
    flow: UdpFlow = events(core)[0].flow  # type: ignore[attr-defined]
    flow.send(b"reply", 30.0)  # activity either way restarts the idle clock
    core.handle_timer(60.0)
    assert not flow.closed
    assert core.get_timer() == 90.0
    core.handle_timer(90.0)
    assert flow.closed
    [closed] = events(core)
    assert isinstance(closed, InterceptedUdpClosed) and closed.flow is flow
    assert core.statistics()["intercept"]["udp_flows_current"] == 0
    with pytest.raises(OSError):
        flow.send(b"late", 91.0)
    core.receive_packet(datagram(b"again"), 100.0)
    assert isinstance(events(core)[0], InterceptedUdp)


def test_udp_to_intercepted_address_without_udp_handler_is_port_unreachable() -> None:
    core = make_core()
    core.intercept.add(["198.20.0.0/24"], udp=False)
    core.receive_packet(datagram(b"x", destination=bytes([198, 20, 0, 1])), 1.0)
    [out] = core.packets_to_send(1.0)
    ip = dpkt.ip.IP(bytes(out))  # type: ignore[arg-type]
    assert ip.p == ipv4.PROTO_ICMP and ip.data.code == icmpv4.CODE_PORT_UNREACHABLE


def test_echo_to_intercepted_address_is_answered_from_it() -> None:
    core = make_core()
    request = icmpv4.build_echo(reply=False, identifier=1, sequence=2, payload=b"hi")
    core.receive_packet(ipv4.build_ipv4(ipv4.IPv4Header(CLIENT, TARGET, 1), request), 1.0)
    [out] = core.packets_to_send(1.0)
    ip = dpkt.ip.IP(bytes(out))  # type: ignore[arg-type]
    assert (ip.src, ip.dst, ip.data.type) == (TARGET, CLIENT, icmpv4.TYPE_ECHO_REPLY)


def test_multicast_and_broadcast_are_never_intercepted() -> None:
    core = StackCore(["198.18.0.2/24"], rng=random.Random(1))
    core.intercept.add(["0.0.0.0/0"])
    assert core.intercept.covers(TARGET)
    assert not core.intercept.covers(bytes([224, 0, 0, 1]))
    assert not core.intercept.covers(b"\xff\xff\xff\xff")


def test_pending_flow_repr_names_both_ends() -> None:
    core = make_core()
    core.receive_packet(syn(), 1.0)
    flow: PendingTcpFlow = events(core)[0].flow  # type: ignore[attr-defined]
    assert "198.18.0.1:40000 -> 198.19.7.7:80" in repr(flow)


def test_own_addresses_are_never_intercepted() -> None:
    """Even inside an intercepted network our own address keeps its listeners and RSTs."""
    core = StackCore(["198.18.0.2/24"], rng=random.Random(1))
    core.intercept.add(["198.18.0.0/15"])
    assert core.intercept.covers(bytes([198, 18, 0, 9]))
    assert not core.intercept.covers(US)
    listener = core.tcp.listen(None, 80)
    core.receive_packet(syn(destination=US), 1.0)
    [synack] = tcp_out(core, 1.0)
    assert synack.data.flags == SYN | ACK and listener.half_open == 1
    core.receive_packet(syn(destination=US, dport=81), 1.0)
    [rst] = tcp_out(core, 1.0)
    assert rst.data.flags & RST
    assert events(core) == []


def test_icmpv6_port_unreachable_comes_from_the_intercepted_address() -> None:
    core = make_core()
    core.intercept.add(["2001:2:2::/48"], udp=False)
    target = bytes.fromhex("20010002000200000000000000000007")
    body = udp.build_udp(5000, 53, b"x", CLIENT6, target)
    core.receive_packet(ipv6.build_ipv6(ipv6.IPv6Header(CLIENT6, target, 17), body), 1.0)
    [out] = core.packets_to_send(1.0)
    ip6 = dpkt.ip6.IP6(bytes(out))  # type: ignore[arg-type]
    assert (ip6.src, ip6.dst, ip6.nxt) == (target, CLIENT6, 58)
    assert (ip6.data.type, ip6.data.code) == (1, 4)  # destination unreachable, port

"""StackCore's IPv6 and ICMPv6 behaviour (RFC 8200, RFC 4443), driven sans-I/O."""

from __future__ import annotations

import errno
import ipaddress
import random
import struct

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.core.events import (
    EchoReplyReceived,
    EchoUnreachable,
    UdpDatagramReceived,
    UdpErrorReceived,
)
from aionetstack.core.stack import StackCore
from aionetstack.wire import icmpv6, ipv6, udp

US = ipaddress.IPv6Address("2001:2::2").packed
PEER = ipaddress.IPv6Address("2001:2::1").packed
FAR = ipaddress.IPv6Address("2001:2:0:1::9").packed
US4 = bytes([198, 18, 0, 2])
NOW = 100.0


def make_core(**kwargs: object) -> StackCore:
    return StackCore(
        ["198.18.0.2/24", "2001:2::2/64"],
        rng=random.Random(1),
        **kwargs,  # type: ignore[arg-type]
    )


def packet(payload: bytes, *, next_header: int = icmpv6.PROTO_ICMPV6, source: bytes = PEER,
           destination: bytes = US) -> bytes:  # fmt: skip
    return ipv6.build_ipv6(ipv6.IPv6Header(source, destination, next_header), payload)


def echo_request(identifier: int = 7, sequence: int = 1, data: bytes = b"hello") -> bytes:
    return packet(icmpv6.build_echo(
        PEER, US, reply=False, identifier=identifier, sequence=sequence, payload=data
    ))  # fmt: skip


def test_echo_request_is_answered() -> None:
    core = make_core()
    core.receive_packet(echo_request(0x1234, 9, b"payload!"), NOW)
    [out] = core.packets_to_send(NOW)
    ip = dpkt.ip6.IP6(out)
    assert (ip.src, ip.dst, ip.nxt) == (US, PEER, icmpv6.PROTO_ICMPV6)
    _, payload = ipv6.parse_ipv6(out)
    message = icmpv6.parse_icmpv6(payload, US, PEER)  # checksum verified
    assert message.type == icmpv6.TYPE_ECHO_REPLY
    assert (message.identifier, message.sequence, message.payload) == (0x1234, 9, b"payload!")
    assert core.statistics()["icmp6"]["echo_replies_sent"] == 1


def test_echo_reply_becomes_an_event_with_the_hop_limit() -> None:
    core = make_core()
    core.send_echo_request(PEER, 5, 6, b"abc")
    [request] = core.packets_to_send(NOW)
    assert dpkt.ip6.IP6(request).src == US
    reply = icmpv6.build_echo(PEER, US, reply=True, identifier=5, sequence=6, payload=b"abc")
    raw = bytearray(packet(reply))
    raw[7] = 63
    core.receive_packet(bytes(raw), NOW)
    assert core.next_event() == EchoReplyReceived(PEER, 5, 6, b"abc", 63)


def test_bad_icmpv6_checksum_is_dropped_and_counted() -> None:
    core = make_core()
    raw = bytearray(echo_request())
    raw[-1] ^= 0xFF
    core.receive_packet(bytes(raw), NOW)
    assert core.packets_to_send(NOW) == []
    assert core.statistics()["icmp6"]["dropped_bad_checksum"] == 1


def test_udp_over_ipv6_both_ways_and_port_unreachable() -> None:
    core = make_core()
    endpoint = core.udp.bind(None, 5353)
    datagram = udp.build_udp(4000, 5353, b"question", PEER, US)
    core.receive_packet(packet(datagram, next_header=17), NOW)
    event = core.next_event()
    assert isinstance(event, UdpDatagramReceived) and event.data == b"question"
    assert event.source == PEER
    endpoint.sendto(b"answer", (PEER, 4000))
    [out] = core.packets_to_send(NOW)
    header, payload = ipv6.parse_ipv6(out)
    assert header.source == US and header.next_header == 17
    _, data = udp.parse_udp(payload, source_address=US, destination_address=PEER)
    assert bytes(data) == b"answer"
    # Nobody on port 9: ICMPv6 destination unreachable, code 4 (port), quoting the packet.
    stray = packet(udp.build_udp(4000, 9, b"x", PEER, US), next_header=17)
    core.receive_packet(stray, NOW)
    [error] = core.packets_to_send(NOW)
    _, payload = ipv6.parse_ipv6(error)
    message = icmpv6.parse_icmpv6(payload, US, PEER)
    assert (message.type, message.code) == (1, 4) and message.payload == stray


def test_udp_over_ipv6_with_zero_checksum_is_dropped() -> None:
    core = make_core()
    core.udp.bind(None, 5353)
    datagram = bytearray(udp.build_udp(4000, 5353, b"q", PEER, US))
    datagram[6:8] = b"\0\0"
    core.receive_packet(packet(bytes(datagram), next_header=17), NOW)
    assert core.next_event() is None
    assert core.statistics()["udp"]["dropped_missing_checksum"] == 1


def test_unknown_next_header_gets_parameter_problem_pointing_at_it() -> None:
    core = make_core()
    core.receive_packet(packet(b"\0" * 8, next_header=253), NOW)
    [out] = core.packets_to_send(NOW)
    _, payload = ipv6.parse_ipv6(out)
    message = icmpv6.parse_icmpv6(payload, US, PEER)
    assert (message.type, message.code, message.body) == (4, 1, 6)
    # After a destination options header, the pointer names that header's field.
    options = bytes([253, 0]) + bytes(6)
    core.receive_packet(packet(options + b"\0" * 8, next_header=60), NOW + 1)
    [out] = core.packets_to_send(NOW + 1)
    message = icmpv6.parse_icmpv6(ipv6.parse_ipv6(out)[1], US, PEER)
    assert (message.type, message.code, message.body) == (4, 1, 40)


def test_extension_headers_are_walked_to_the_upper_layer_within_bounds() -> None:
    core = make_core()
    core.udp.bind(None, 5353)
    datagram = udp.build_udp(4000, 5353, b"q", PEER, US)
    chain = bytes([60, 0]) + bytes(6) + bytes([17, 0]) + bytes(6)  # hop-by-hop, dest opts
    core.receive_packet(packet(chain + datagram, next_header=0), NOW)
    assert isinstance(core.next_event(), UdpDatagramReceived)
    too_many = b"".join(bytes([60, 0]) + bytes(6) for _ in range(9))
    core.receive_packet(packet(too_many[:-8] + bytes([17, 0]) + bytes(6) + datagram,
                               next_header=60), NOW)  # fmt: skip
    assert core.next_event() is None
    assert core.statistics()["ip6"]["dropped_too_many_extension_headers"] == 1


def test_routing_header_with_segments_left_is_refused() -> None:
    core = make_core()
    routing = bytes([17, 2, 0, 1]) + bytes(4) + PEER
    core.receive_packet(packet(routing + bytes(8), next_header=43), NOW)
    [out] = core.packets_to_send(NOW)
    message = icmpv6.parse_icmpv6(ipv6.parse_ipv6(out)[1], US, PEER)
    assert (message.type, message.code, message.body) == (4, 0, 42)


def test_no_error_about_an_icmpv6_error_or_to_multicast() -> None:
    core = make_core()
    error = icmpv6.build_error(1, 4, bytes(48), PEER, US)
    core.receive_packet(packet(error + b"", next_header=icmpv6.PROTO_ICMPV6), NOW)
    core.receive_packet(packet(bytes(8), next_header=253, destination=bytes.fromhex(
        "ff020000000000000000000000000001")), NOW)  # fmt: skip
    assert core.packets_to_send(NOW) == []


def test_errors_are_rate_limited() -> None:
    core = make_core()
    for _ in range(60):
        core.receive_packet(packet(bytes(8), next_header=253), NOW)
    assert len(core.packets_to_send(NOW)) == 50  # the burst
    assert core.statistics()["icmp6"]["errors_rate_limited"] == 10


def test_destination_unreachable_quoting_our_udp_reaches_the_connected_endpoint() -> None:
    core = make_core()
    endpoint = core.udp.bind(None, 0, (PEER, 4444))
    endpoint.sendto(b"hi")
    [sent] = core.packets_to_send(NOW)
    error = icmpv6.build_error(1, 4, sent, PEER, US)
    core.receive_packet(packet(error), NOW)
    event = core.next_event()
    assert isinstance(event, UdpErrorReceived) and isinstance(event.error, ConnectionRefusedError)


def test_error_quoting_an_echo_request_fails_that_ping() -> None:
    core = make_core(gateway=["2001:2::1"])
    core.send_echo_request(FAR, 3, 4, b"")
    [sent] = core.packets_to_send(NOW)
    error = icmpv6.build_error(1, 0, sent, PEER, US)
    core.receive_packet(packet(error), NOW)
    event = core.next_event()
    assert isinstance(event, EchoUnreachable) and event.destination == FAR
    assert event.error.errno == errno.ENETUNREACH and (event.identifier, event.sequence) == (3, 4)


def test_source_selection_and_gateways_per_family() -> None:
    core = StackCore(
        ["198.18.0.2/24", "2001:2::2/64", "2001:2:0:5::2/64"],
        gateway=["198.18.0.1", "2001:2:0:5::1"], rng=random.Random(1),
    )  # fmt: skip
    assert core.routes.route(PEER).source == US
    assert core.routes.route(FAR).next_hop == ipaddress.IPv6Address("2001:2:0:5::1").packed
    assert core.routes.route(FAR).source == ipaddress.IPv6Address("2001:2:0:5::2").packed
    assert core.routes.route(bytes([198, 19, 0, 1])).source == US4
    kinds = [(e.network, e.via, e.kind) for e in core.route_entries()]
    assert ("::/0", "2001:2:0:5::1", "default") in kinds
    assert ("2001:2::/64", None, "connected") in kinds


def test_no_route_is_enetunreach_in_the_family_without_gateway() -> None:
    core = make_core(gateway="198.18.0.1")
    with pytest.raises(OSError) as caught:
        core.send_echo_request(FAR, 1, 1, b"")
    assert caught.value.errno == errno.ENETUNREACH


def test_two_gateways_of_one_family_are_refused() -> None:
    with pytest.raises(ValueError, match="one default gateway per family"):
        make_core(gateway=["2001:2::1", "2001:2::3"])


def test_ipv6_needs_mtu_1280() -> None:
    with pytest.raises(ValueError, match="1280"):
        make_core(mtu=1200)


def test_large_echo_is_fragmented_and_reassembled_by_a_peer() -> None:
    sender = make_core()
    receiver = StackCore(["2001:2::1/64"], rng=random.Random(2))
    sender.send_echo_request(PEER, 1, 2, bytes(range(256)) * 32)  # 8,192 bytes
    fragments = sender.packets_to_send(NOW)
    assert len(fragments) == 6 and all(len(f) <= 1500 for f in fragments)
    assert all(dpkt.ip6.IP6(f).nxt == ipv6.NEXT_HEADER_FRAGMENT for f in fragments)
    for fragment in reversed(fragments):
        receiver.receive_packet(fragment, NOW)
    replies = receiver.packets_to_send(NOW)
    assert len(replies) == 6  # the reply is as large: fragmented again
    for reply in replies:
        sender.receive_packet(reply, NOW)
    event = sender.next_event()
    assert isinstance(event, EchoReplyReceived) and event.payload == bytes(range(256)) * 32


def test_reassembly_timeout_sends_time_exceeded_if_the_first_fragment_came() -> None:
    sender = make_core()
    receiver = StackCore(["2001:2::1/64"], rng=random.Random(2))
    sender.send_echo_request(PEER, 1, 2, bytes(3000))
    first, _, _ = sender.packets_to_send(NOW)
    receiver.receive_packet(first, NOW)
    assert receiver.get_timer() == NOW + 60
    receiver.handle_timer(NOW + 59.9)
    assert receiver.packets_to_send(NOW + 59.9) == []
    receiver.handle_timer(NOW + 60)
    [error] = receiver.packets_to_send(NOW + 60)
    message = icmpv6.parse_icmpv6(ipv6.parse_ipv6(error)[1], PEER, US)
    assert (message.type, message.code) == (3, 1)


def test_tiny_first_fragment_is_refused() -> None:
    core = make_core()
    core.udp.bind(None, 5353)
    fragment = struct.pack("!BBHI", 17, 0, 1, 99) + bytes(4)  # 4 bytes: no UDP header
    core.receive_packet(packet(fragment, next_header=ipv6.NEXT_HEADER_FRAGMENT), NOW)
    assert core.statistics()["ip6"]["dropped_tiny_first_fragment"] == 1
    [error] = core.packets_to_send(NOW)  # RFC 7112 §5: parameter problem, code 3, pointer 0
    message = icmpv6.parse_icmpv6(ipv6.parse_ipv6(error)[1], US, PEER)
    assert (message.type, message.code, message.body) == (4, 3, 0)
    # A destination options header before the UDP header is fine if both are in it.
    chain = bytes([17, 0]) + bytes(6) + udp.build_udp(4000, 5353, bytes(16), PEER, US)[:8]
    core.receive_packet(packet(struct.pack("!BBHI", 60, 0, 1, 100) + chain,
                               next_header=ipv6.NEXT_HEADER_FRAGMENT), NOW)  # fmt: skip
    assert core.statistics()["ip6"]["dropped_tiny_first_fragment"] == 1


def test_packet_too_big_lowers_the_path_mtu_with_the_floor_and_ages_back() -> None:
    core = make_core()
    core.send_echo_request(PEER, 1, 1, bytes(1400))
    [sent] = core.packets_to_send(NOW)
    too_big = icmpv6.build_error(2, 0, sent, PEER, US, body=1000)  # below 1280: floor
    core.receive_packet(packet(too_big), NOW)
    assert core.path_mtu(PEER) == 1280
    core.send_echo_request(PEER, 1, 2, bytes(1400))
    fragments = core.packets_to_send(NOW)
    assert [len(f) <= 1280 for f in fragments] == [True, True]
    core.handle_timer(NOW + 601)
    assert core.path_mtu(PEER) == 1500


def test_packet_too_big_quoting_someone_else_is_ignored() -> None:
    core = make_core()
    forged = packet(bytes(100), source=FAR, destination=PEER)
    core.receive_packet(packet(icmpv6.build_error(2, 0, forged, PEER, US, body=1280)), NOW)
    assert core.path_mtu(PEER) == 1500
    assert core.statistics()["icmp6"]["dropped_not_ours"] == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_ipv6_packets_never_raise(data: bytes) -> None:
    core = make_core()
    core.receive_packet(bytes([0x60]) + data, NOW)
    core.receive_packet(ipv6.build_ipv6(ipv6.IPv6Header(PEER, US, data[0] if data else 0),
                                        data[1:]), NOW)  # fmt: skip
    core.packets_to_send(NOW)

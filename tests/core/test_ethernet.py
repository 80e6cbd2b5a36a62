"""The Ethernet layer (ARP, RFC 826; ND, RFC 4861) and the neighbour cache, sans-I/O."""

from __future__ import annotations

import errno
import ipaddress
import random

import dpkt
import pytest

from aionetstack.core.ethernet import EthernetHost
from aionetstack.core.events import EchoReplyReceived, EchoUnreachable
from aionetstack.core.neighbour import INCOMPLETE, REACHABLE, STALE, NeighbourCache
from aionetstack.core.stack import StackCore
from aionetstack.wire import arp, ethernet, icmpv4, icmpv6, ipv4, ipv6

US_MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")
US4, PEER4 = bytes([198, 18, 1, 2]), bytes([198, 18, 1, 1])
US6 = ipaddress.IPv6Address("2001:2:1::2").packed
PEER6 = ipaddress.IPv6Address("2001:2:1::1").packed
ROUTER_LL = ipaddress.IPv6Address("fe80::1").packed
NOW = 5.0


def host() -> EthernetHost:
    core = StackCore(["198.18.1.2/24", "2001:2:1::2/64"], rng=random.Random(1))
    return EthernetHost(core, US_MAC)


def frame(payload: bytes, kind: int, destination: bytes = US_MAC) -> bytes:
    return ethernet.build_ethernet(destination, PEER_MAC, kind, payload)


def nd_packet(message: bytes, source: bytes, destination: bytes, hop: int = 255) -> bytes:
    header = ipv6.IPv6Header(source, destination, icmpv6.PROTO_ICMPV6, hop)
    return frame(
        ipv6.build_ipv6(header, message),
        ethernet.ETHERTYPE_IPV6,
        ethernet.ipv6_multicast_mac(destination) if destination[0] == 0xFF else US_MAC,
    )


def test_arp_request_for_us_is_answered_and_the_sender_learned() -> None:
    eth = host()
    request = arp.build_arp_request(PEER_MAC, PEER4, US4)
    eth.receive_packet(frame(request, ethernet.ETHERTYPE_ARP, ethernet.BROADCAST_MAC), NOW)
    [out] = eth.packets_to_send(NOW)
    header, payload = ethernet.parse_ethernet(out)
    reply = arp.parse_arp(payload)
    assert (header.destination, header.ethertype) == (PEER_MAC, ethernet.ETHERTYPE_ARP)
    assert (reply.sender_hardware, reply.sender_protocol) == (US_MAC, US4)
    assert (reply.target_hardware, reply.target_protocol) == (PEER_MAC, PEER4)
    assert eth.neighbours.entries()[PEER4] == (STALE, PEER_MAC)


def test_arp_for_someone_else_is_not_answered() -> None:
    eth = host()
    request = arp.build_arp_request(PEER_MAC, PEER4, bytes([198, 18, 1, 77]))
    eth.receive_packet(frame(request, ethernet.ETHERTYPE_ARP, ethernet.BROADCAST_MAC), NOW)
    assert eth.packets_to_send(NOW) == []
    assert PEER4 not in eth.neighbours.entries()


def test_ping_waits_for_arp_then_goes_to_the_resolved_mac() -> None:
    eth = host()
    eth.core.send_echo_request(PEER4, 1, 1, b"x")
    [request] = eth.packets_to_send(NOW)
    header, payload = ethernet.parse_ethernet(request)
    assert header.destination == ethernet.BROADCAST_MAC
    assert arp.parse_arp(payload).target_protocol == PEER4
    assert eth.neighbours.state(PEER4) == INCOMPLETE
    reply = arp.build_arp_reply(arp.parse_arp(payload), PEER_MAC)
    eth.receive_packet(frame(reply, ethernet.ETHERTYPE_ARP), NOW)
    [ping] = eth.packets_to_send(NOW)
    header, payload = ethernet.parse_ethernet(ping)
    assert header.destination == PEER_MAC and dpkt.ip.IP(bytes(payload)).dst == PEER4
    assert eth.neighbours.state(PEER4) == REACHABLE


def test_unanswered_arp_is_retried_then_given_up() -> None:
    eth = host()
    eth.core.send_echo_request(PEER4, 1, 1, b"x")
    assert len(eth.packets_to_send(NOW)) == 1
    for step in (1, 2):
        eth.handle_timer(NOW + step)
        assert len(eth.packets_to_send(NOW + step)) == 1  # another request
    eth.handle_timer(NOW + 3)
    assert eth.packets_to_send(NOW + 3) == []
    assert eth.neighbours.state(PEER4) is None
    event = eth.next_event()  # the ping hears EHOSTUNREACH, as from Linux
    assert isinstance(event, EchoUnreachable) and event.error.errno == errno.EHOSTUNREACH
    stats = eth.core.statistics()["ethernet"]
    assert stats["neighbour_resolutions_failed"] == 1 and stats["neighbour_dropped_unresolved"] == 1


def test_neighbour_solicitation_is_answered_with_our_mac() -> None:
    eth = host()
    solicitation = icmpv6.build_neighbor_solicitation(
        icmpv6.NeighborSolicitation(US6, PEER_MAC), PEER6, icmpv6.solicited_node_address(US6)
    )
    eth.receive_packet(nd_packet(solicitation, PEER6, icmpv6.solicited_node_address(US6)), NOW)
    [out] = eth.packets_to_send(NOW)
    header, payload = ethernet.parse_ethernet(out)
    assert header.destination == PEER_MAC
    ip, upper = ipv6.parse_ipv6(payload)
    assert ip.hop_limit == 255 and (ip.source, ip.destination) == (US6, PEER6)
    advertisement = icmpv6.parse_neighbor_advertisement(icmpv6.parse_icmpv6(upper, US6, PEER6))
    assert advertisement.solicited and advertisement.override
    assert advertisement.target_link_address == US_MAC
    assert eth.neighbours.entries()[PEER6] == (STALE, PEER_MAC)


def test_nd_with_a_hop_limit_below_255_is_dropped() -> None:
    eth = host()
    solicitation = icmpv6.build_neighbor_solicitation(
        icmpv6.NeighborSolicitation(US6, PEER_MAC), PEER6, icmpv6.solicited_node_address(US6)
    )
    eth.receive_packet(
        nd_packet(solicitation, PEER6, icmpv6.solicited_node_address(US6), hop=64), NOW
    )
    assert eth.packets_to_send(NOW) == []
    assert eth.core.statistics()["ethernet"]["dropped_nd_invalid"] == 1


def test_ping6_resolves_by_solicitation_and_advertisement() -> None:
    eth = host()
    eth.core.send_echo_request(PEER6, 1, 2, b"y")
    [solicit] = eth.packets_to_send(NOW)
    header, payload = ethernet.parse_ethernet(solicit)
    group = icmpv6.solicited_node_address(PEER6)
    assert header.destination == ethernet.ipv6_multicast_mac(group)
    ip, _ = ipv6.parse_ipv6(payload)
    assert ip.destination == group and ip.hop_limit == 255
    advertisement = icmpv6.build_neighbor_advertisement(
        icmpv6.NeighborAdvertisement(PEER6, solicited=True, override=True,
                                     target_link_address=PEER_MAC), PEER6, US6)  # fmt: skip
    eth.receive_packet(nd_packet(advertisement, PEER6, US6), NOW)
    [ping] = eth.packets_to_send(NOW)
    header, payload = ethernet.parse_ethernet(ping)
    assert header.destination == PEER_MAC
    reply = icmpv6.build_echo(PEER6, US6, reply=True, identifier=1, sequence=2, payload=b"y")
    eth.receive_packet(frame(ipv6.build_ipv6(ipv6.IPv6Header(PEER6, US6, 58), reply),
                             ethernet.ETHERTYPE_IPV6), NOW)  # fmt: skip
    assert isinstance(eth.next_event(), EchoReplyReceived)


def test_router_advertisement_sets_the_default_router_and_on_link_prefix() -> None:
    eth = host()
    prefix = bytes([3, 4, 64, 0xC0]) + (3600).to_bytes(4, "big") * 2 + bytes(4)
    prefix += ipaddress.IPv6Address("2001:2:9::").packed
    source_option = bytes([1, 1]) + PEER_MAC
    body = (64 << 24) | 1800  # hop limit 64, router lifetime 1800 s
    message = icmpv6.build_icmpv6(
        icmpv6.Icmpv6Message(134, 0, body, bytes(8) + source_option + prefix),
        ROUTER_LL, bytes.fromhex("ff020000000000000000000000000001"),
    )  # fmt: skip
    eth.receive_packet(nd_packet(message, ROUTER_LL, bytes.fromhex(
        "ff020000000000000000000000000001")), NOW)  # fmt: skip
    routes = eth.core.routes
    assert routes.gateway(6) == ROUTER_LL
    far = ipaddress.IPv6Address("2001:db8::1").packed
    assert routes.route(far).next_hop == ROUTER_LL
    on_link = ipaddress.IPv6Address("2001:2:9::5").packed
    assert routes.route(on_link).next_hop == on_link
    assert eth.neighbours.entries()[ROUTER_LL] == (STALE, PEER_MAC)


def test_frames_for_other_stations_and_garbage_are_dropped() -> None:
    eth = host()
    other = bytes.fromhex("020000000099")
    packet = ipv4.build_ipv4(ipv4.IPv4Header(PEER4, US4, 1),
                             icmpv4.build_echo(reply=False, identifier=1, sequence=1))  # fmt: skip
    eth.receive_packet(frame(packet, ethernet.ETHERTYPE_IPV4, other), NOW)
    eth.receive_packet(b"\x01\x02", NOW)
    stats = eth.core.statistics()["ethernet"]
    assert stats["dropped_not_for_us"] == 1 and stats["dropped_truncated"] == 1
    assert eth.packets_to_send(NOW) == []


def test_neighbour_cache_is_bounded_and_queues_are_short() -> None:
    cache = NeighbourCache(max_entries=4, queue_length=2)
    for n in range(10):
        cache.resolve(bytes([10, 0, 0, n]), b"p", NOW)
    assert len(cache) == 4 and cache.stats["evicted"] == 6
    address = bytes([10, 0, 0, 9])
    for _ in range(3):
        cache.resolve(address, b"q", NOW)
    assert cache.stats["dropped_queue_full"] == 2
    assert cache.confirm(address, PEER_MAC, NOW) == [b"q", b"q"]
    assert cache.resolve(address, b"r", NOW).mac == PEER_MAC
    assert cache.resolve(address, b"r", NOW + 31).mac == PEER_MAC
    assert cache.state(address) == STALE
    with pytest.raises(ValueError):
        NeighbourCache(max_entries=0)

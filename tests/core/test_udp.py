"""UDP in StackCore: binding, demultiplexing, port unreachable, ICMP errors."""

from __future__ import annotations

import errno
import random

import dpkt
import pytest

from aionetstack.core.events import UdpDatagramReceived, UdpErrorReceived
from aionetstack.core.stack import StackCore
from aionetstack.wire import icmpv4, ipv4, udp

US = bytes([198, 18, 0, 2])
PEER = bytes([198, 18, 0, 1])
NOW = 5.0


def make_core() -> StackCore:
    return StackCore(["198.18.0.2/24"], rng=random.Random(3))


def datagram(dst_port: int, data: bytes, *, src_port: int = 4000, destination: bytes = US) -> bytes:
    payload = udp.build_udp(src_port, dst_port, data, PEER, destination)
    return ipv4.build_ipv4(ipv4.IPv4Header(PEER, destination, ipv4.PROTO_UDP), payload)


def test_datagram_reaches_the_bound_endpoint() -> None:
    core = make_core()
    endpoint = core.udp.bind(None, 9000)
    core.receive_packet(datagram(9000, b"hi there"), NOW)
    assert core.next_event() == UdpDatagramReceived(endpoint, b"hi there", PEER, 4000)


def test_send_builds_a_checksummed_datagram() -> None:
    core = make_core()
    endpoint = core.udp.bind(None, 9000)
    endpoint.sendto(b"payload", (PEER, 53))
    [out] = core.packets_to_send(NOW)
    ip = dpkt.ip.IP(out)
    assert (ip.src, ip.dst, ip.data.sport, ip.data.dport, ip.data.data) == (
        US,
        PEER,
        9000,
        53,
        b"payload",
    )
    _, data = udp.parse_udp(ip.data.pack(), source_address=US, destination_address=PEER)
    assert bytes(data) == b"payload"


def test_closed_port_answers_port_unreachable() -> None:
    core = make_core()
    original = datagram(9999, b"x")
    core.receive_packet(original, NOW)
    [out] = core.packets_to_send(NOW)
    icmp = dpkt.ip.IP(out).data
    assert (icmp.type, icmp.code) == (
        icmpv4.TYPE_DESTINATION_UNREACHABLE,
        icmpv4.CODE_PORT_UNREACHABLE,
    )
    assert core.statistics()["udp"]["no_port"] == 1


def test_broadcast_to_closed_port_is_silent() -> None:
    core = make_core()
    core.receive_packet(datagram(9999, b"x", destination=bytes([198, 18, 0, 255])), NOW)
    assert core.packets_to_send(NOW) == []


def test_bad_checksum_is_dropped_and_counted() -> None:
    core = make_core()
    core.udp.bind(None, 9000)
    raw = bytearray(datagram(9000, b"abcd"))
    raw[-1] ^= 0x01
    core.receive_packet(bytes(raw), NOW)
    assert core.next_event() is None
    assert core.statistics()["udp"]["dropped_bad_checksum"] == 1


def test_partial_checksums_are_not_verified_on_offload_links() -> None:
    core = StackCore(["198.18.0.2/24"], rng=random.Random(3), receive_checksums_partial=True)
    core.udp.bind(None, 9000)
    raw = bytearray(datagram(9000, b"abcd"))
    raw[20 + 6 : 20 + 8] = b"\x12\x34"  # a pseudo-header-only sum, as the kernel hands over
    core.receive_packet(bytes(raw), NOW)
    assert isinstance(core.next_event(), UdpDatagramReceived)


def test_port_in_use_and_ephemeral_ports() -> None:
    core = make_core()
    core.udp.bind(None, 9000)
    with pytest.raises(OSError) as caught:
        core.udp.bind(US, 9000)
    assert caught.value.errno == errno.EADDRINUSE
    ports = {core.udp.bind().local_port for _ in range(50)}
    assert len(ports) == 50 and all(32768 <= p <= 60999 for p in ports)


def test_connected_endpoint_filters_sources_and_gets_icmp_errors() -> None:
    core = make_core()
    endpoint = core.udp.bind(None, 0, remote=(PEER, 7))
    core.receive_packet(datagram(endpoint.local_port, b"stranger", src_port=8), NOW)
    assert core.next_event() is None
    endpoint.sendto(b"ping")
    [sent] = core.packets_to_send(NOW)
    error = icmpv4.build_error(
        icmpv4.TYPE_DESTINATION_UNREACHABLE, icmpv4.CODE_PORT_UNREACHABLE, sent
    )
    core.receive_packet(ipv4.build_ipv4(ipv4.IPv4Header(PEER, US, ipv4.PROTO_ICMP), error), NOW)
    event = core.next_event()
    assert isinstance(event, UdpErrorReceived) and event.endpoint is endpoint
    assert isinstance(event.error, ConnectionRefusedError)


def test_datagram_over_the_mtu_is_fragmented_and_over_ip_limit_refused() -> None:
    core = make_core()
    endpoint = core.udp.bind()
    endpoint.sendto(bytes(1472), (PEER, 9))  # exactly one 1500-byte packet fits
    assert len(core.packets_to_send(NOW)) == 1
    endpoint.sendto(bytes(1473), (PEER, 9))
    first, second = core.packets_to_send(NOW)
    assert len(first) == 1500 and len(second) == 21  # the 1,481st byte of UDP alone
    with pytest.raises(OSError) as caught:
        endpoint.sendto(bytes(65508), (PEER, 9))
    assert caught.value.errno == errno.EMSGSIZE


def test_closed_endpoint_frees_its_port() -> None:
    core = make_core()
    endpoint = core.udp.bind(None, 9000)
    endpoint.close()
    core.udp.bind(None, 9000)
    with pytest.raises(OSError):
        endpoint.sendto(b"x", (PEER, 9))

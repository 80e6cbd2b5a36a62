"""StackCore's IPv4 and ICMP behaviour, driven sans-I/O with hand-built packets."""

from __future__ import annotations

import errno
import random

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.core.events import EchoReplyReceived, EchoUnreachable
from aionetstack.core.stack import StackCore
from aionetstack.wire import icmpv4, ipv4

US = bytes([198, 18, 0, 2])
PEER = bytes([198, 18, 0, 1])
FAR = bytes([198, 19, 7, 7])
NOW = 100.0


def make_core(**kwargs: object) -> StackCore:
    return StackCore(["198.18.0.2/24"], rng=random.Random(1), **kwargs)  # type: ignore[arg-type]


def packet(
    payload: bytes, *, source: bytes = PEER, destination: bytes = US,
    protocol: int = ipv4.PROTO_ICMP, ttl: int = 64,
) -> bytes:  # fmt: skip
    return ipv4.build_ipv4(ipv4.IPv4Header(source, destination, protocol, ttl=ttl), payload)


def echo_request(identifier: int = 7, sequence: int = 1, data: bytes = b"hello") -> bytes:
    return packet(
        icmpv4.build_echo(reply=False, identifier=identifier, sequence=sequence, payload=data)
    )


def test_echo_request_is_answered_with_the_same_identifier_sequence_and_data() -> None:
    core = make_core()
    core.receive_packet(echo_request(0x1234, 9, b"payload!"), NOW)
    [out] = core.packets_to_send(NOW)
    ip = dpkt.ip.IP(out)
    assert (ip.src, ip.dst, ip.p) == (US, PEER, ipv4.PROTO_ICMP)
    assert isinstance(ip.data, dpkt.icmp.ICMP) and ip.data.type == icmpv4.TYPE_ECHO_REPLY
    assert (ip.data.data.id, ip.data.data.seq, ip.data.data.data) == (0x1234, 9, b"payload!")
    # dpkt recomputes nothing on parse: check both checksums independently.
    _, payload = ipv4.parse_ipv4(out)
    icmpv4.parse_icmpv4(payload, verify_checksum=True)
    assert core.statistics()["icmp"]["echo_replies_sent"] == 1


def test_packets_to_send_empties_the_outbox() -> None:
    core = make_core()
    core.receive_packet(echo_request(), NOW)
    assert len(core.packets_to_send(NOW)) == 1
    assert core.packets_to_send(NOW) == []


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda p: p[:10], "dropped_truncated"),
        (lambda p: p[:10] + bytes([p[10] ^ 0xFF]) + p[11:], "dropped_bad_checksum"),
        (lambda p: bytes([0x35]) + p[1:], "dropped_bad_version"),
        (lambda p: bytes([0x44]) + p[1:], "dropped_bad_header_length"),
        (lambda p: p[:-4], "dropped_truncated"),
        (lambda p: b"", "dropped_truncated"),
    ],
)
def test_malformed_packets_are_dropped_and_counted(mangle, reason) -> None:  # type: ignore[no-untyped-def]
    core = make_core()
    core.receive_packet(mangle(echo_request()), NOW)
    assert core.packets_to_send(NOW) == []
    assert core.statistics()["ip"][reason] == 1


def test_ipv6_to_a_stack_without_ipv6_addresses_is_not_for_us() -> None:
    core = make_core()
    core.receive_packet(bytes([0x60]) + bytes(39), NOW)
    assert core.statistics()["ip6"]["dropped_not_for_us"] == 1


def test_ttl_zero_is_dropped() -> None:
    core = make_core()
    core.receive_packet(
        packet(icmpv4.build_echo(reply=False, identifier=1, sequence=1), ttl=0), NOW
    )
    assert core.packets_to_send(NOW) == []
    assert core.statistics()["ip"]["dropped_bad_ttl"] == 1


def test_packets_for_other_hosts_are_not_forwarded() -> None:
    core = make_core()
    core.receive_packet(packet(b"x" * 8, destination=FAR), NOW)
    assert core.packets_to_send(NOW) == []
    assert core.statistics()["ip"]["dropped_not_for_us"] == 1


@pytest.mark.parametrize("source", [US, bytes([127, 0, 0, 1]), bytes([224, 0, 0, 1]), bytes(4)])
def test_martian_sources_are_dropped(source: bytes) -> None:
    core = make_core()
    core.receive_packet(
        packet(icmpv4.build_echo(reply=False, identifier=1, sequence=1), source=source), NOW
    )
    assert core.packets_to_send(NOW) == []
    assert core.statistics()["ip"]["dropped_bad_source"] == 1


def test_options_are_skipped() -> None:
    core = make_core()
    message = icmpv4.build_echo(reply=False, identifier=3, sequence=4, payload=b"opt")
    header = ipv4.IPv4Header(
        PEER, US, ipv4.PROTO_ICMP, options=b"\x01\x01\x01\x00"
    )  # NOP NOP NOP EOL
    core.receive_packet(ipv4.build_ipv4(header, message), NOW)
    [out] = core.packets_to_send(NOW)
    assert dpkt.ip.IP(out).data.data.data == b"opt"


def test_broadcast_echo_is_ignored_like_linux() -> None:
    core = make_core()
    message = icmpv4.build_echo(reply=False, identifier=3, sequence=4)
    core.receive_packet(packet(message, destination=bytes([198, 18, 0, 255])), NOW)
    assert core.packets_to_send(NOW) == []
    assert core.statistics()["icmp"]["echo_requests_ignored"] == 1


def test_unknown_protocol_gets_protocol_unreachable_quoting_the_packet() -> None:
    core = make_core()
    original = packet(b"\x00" * 12, protocol=253)
    core.receive_packet(original, NOW)
    [out] = core.packets_to_send(NOW)
    icmp = dpkt.ip.IP(out).data
    assert (icmp.type, icmp.code) == (
        icmpv4.TYPE_DESTINATION_UNREACHABLE,
        icmpv4.CODE_PROTOCOL_UNREACHABLE,
    )
    assert bytes(icmp.data)[4:] == original  # unused word, then the quote


def test_no_icmp_error_about_an_icmp_error() -> None:
    core = make_core()
    error = icmpv4.build_error(
        icmpv4.TYPE_DESTINATION_UNREACHABLE, 3, packet(b"x" * 8, source=US, destination=PEER)
    )
    # An ICMP error with a bad type (unknown message) — answer nothing either way.
    core.receive_packet(packet(error), NOW)
    assert core.packets_to_send(NOW) == []


def test_icmp_errors_are_rate_limited() -> None:
    from aionetstack.config import IpConfig, StackConfig

    core = make_core(config=StackConfig(ip=IpConfig(icmp_error_rate=10, icmp_error_burst=3)))
    for _ in range(5):
        core.receive_packet(packet(b"\x00" * 8, protocol=253), NOW)
    assert len(core.packets_to_send(NOW)) == 3
    core.receive_packet(packet(b"\x00" * 8, protocol=253), NOW + 0.15)  # one token back
    assert len(core.packets_to_send(NOW + 0.15)) == 1
    assert core.statistics()["icmp"]["errors_rate_limited"] == 2


def test_echo_reply_becomes_an_event() -> None:
    core = make_core()
    reply = icmpv4.build_echo(reply=True, identifier=5, sequence=6, payload=b"abc")
    core.receive_packet(packet(reply, ttl=61), NOW)
    assert core.next_event() == EchoReplyReceived(PEER, 5, 6, b"abc", 61)
    assert core.next_event() is None


def test_icmp_error_quoting_our_echo_request_reaches_its_waiter() -> None:
    core = make_core()
    core.send_echo_request(PEER, 0x4242, 17, b"data")
    [ours] = core.packets_to_send(NOW)
    error = icmpv4.build_error(
        icmpv4.TYPE_DESTINATION_UNREACHABLE, icmpv4.CODE_HOST_UNREACHABLE, ours
    )
    core.receive_packet(packet(error), NOW)
    event = core.next_event()
    assert isinstance(event, EchoUnreachable)
    assert (event.identifier, event.sequence, event.destination) == (0x4242, 17, PEER)
    assert event.error.errno == errno.EHOSTUNREACH


def test_icmp_error_quoting_someone_elses_packet_is_ignored() -> None:
    core = make_core()
    foreign = packet(
        icmpv4.build_echo(reply=False, identifier=1, sequence=1), source=FAR, destination=PEER
    )
    error = icmpv4.build_error(icmpv4.TYPE_DESTINATION_UNREACHABLE, 1, foreign)
    core.receive_packet(packet(error), NOW)
    assert core.next_event() is None
    assert core.statistics()["icmp"]["dropped_not_ours"] == 1


def test_off_link_destination_needs_a_gateway() -> None:
    core = make_core()
    with pytest.raises(OSError) as caught:
        core.send_echo_request(FAR, 1, 1, b"")
    assert caught.value.errno == errno.ENETUNREACH
    routed = StackCore(["198.18.0.2/24"], gateway="198.18.0.1", rng=random.Random(1))
    routed.send_echo_request(FAR, 1, 1, b"")
    [out] = routed.packets_to_send(NOW)
    assert dpkt.ip.IP(out).dst == FAR  # L3 link: the next hop is implicit


def test_gateway_must_be_on_link() -> None:
    with pytest.raises(ValueError, match="not on any"):
        StackCore(["198.18.0.2/24"], gateway="198.19.0.1", rng=random.Random(1))


@pytest.mark.parametrize("bad", ["198.18.0.300/24", "nonsense", "224.0.0.1/4", ""])
def test_bad_addresses_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        StackCore([bad], rng=random.Random(1))


def test_send_over_the_mtu_is_fragmented_and_over_65535_refused() -> None:
    core = make_core(mtu=576)
    core.send_echo_request(PEER, 1, 1, bytes(600))
    first, second = core.packets_to_send(NOW)
    one, two = dpkt.ip.IP(first), dpkt.ip.IP(second)
    assert len(first) == 572 and one.mf and not one.df and one.offset == 0  # 552 = 69 x 8
    assert not two.mf and two.offset * 8 == 552 and len(two.data) == 608 - 552
    assert one.id == two.id
    with pytest.raises(ValueError, match="exceeds 65535"):
        core.send_echo_request(PEER, 1, 1, bytes(65535 - 28 + 1))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    core = make_core()
    core.receive_packet(data, NOW)
    core.packets_to_send(NOW)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
def test_corrupted_valid_packets_never_raise(position: int, value: int) -> None:
    core = make_core()
    data = bytearray(echo_request(data=bytes(64)))
    data[position % len(data)] = value
    core.receive_packet(bytes(data), NOW)
    for out in core.packets_to_send(NOW):
        ipv4.parse_ipv4(out)  # whatever we emit is well-formed

"""tcpdump-style one-line summaries: exact lines for known packets, never an exception."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.wire import arp, ethernet, icmpv4, icmpv6, ipv4, ipv6, udp, vnet
from aionetstack.wire.pretty import summarize_frame, summarize_packet

SETTINGS = settings(max_examples=400, deadline=None)
HOST = bytes([198, 18, 0, 2])
PEER = bytes([198, 18, 0, 1])
HOST6 = bytes.fromhex("fd00" + "00" * 13 + "02")
PEER6 = bytes.fromhex("fd00" + "00" * 13 + "01")
LINK_LOCAL = bytes.fromhex("fe80" + "00" * 13 + "02")
TARGET = bytes.fromhex("fe80" + "00" * 13 + "01")
HOST_MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")
# RFC 9293 §3.1 fixed header, built here by hand (wire/tcp.py is not used).
TCP_FIXED = struct.Struct("!HHIIBBHHH")


def v4(protocol: int, payload: bytes, **fields: object) -> bytes:
    return ipv4.build_ipv4(ipv4.IPv4Header(HOST, PEER, protocol, **fields), payload)  # type: ignore[arg-type]


def v6(
    next_header: int, payload: bytes, source: bytes = HOST6, destination: bytes = PEER6
) -> bytes:
    return ipv6.build_ipv6(ipv6.IPv6Header(source, destination, next_header), payload)


def tcp(flags: int, sequence: int, acknowledgment: int = 0, payload: bytes = b"", *,
        window: int = 65535, options: bytes = b"") -> bytes:  # fmt: skip
    offset = (20 + len(options)) // 4
    header = TCP_FIXED.pack(40000, 80, sequence, acknowledgment, offset << 4, flags, window, 0, 0)
    return header + options + payload


def test_icmp_echo_request() -> None:
    echo = icmpv4.build_echo(reply=False, identifier=1, sequence=2, payload=bytes(56))
    assert summarize_packet(v4(1, echo)) == (
        "198.18.0.2 > 198.18.0.1: ICMP echo request, id 1, seq 2, length 64"
    )


def test_icmp_echo_reply() -> None:
    echo = icmpv4.build_echo(reply=True, identifier=7, sequence=9, payload=b"")
    assert summarize_packet(v4(1, echo)).endswith(": ICMP echo reply, id 7, seq 9, length 8")


def test_icmp_errors() -> None:
    quote = v4(17, udp.build_udp(5000, 80, b"", HOST, PEER))
    need_frag = icmpv4.build_error(3, 4, quote, next_hop_mtu=1400)
    assert summarize_packet(v4(1, need_frag)) == (
        "198.18.0.2 > 198.18.0.1: ICMP destination unreachable, need to frag (mtu 1400), length 36"
    )
    port = icmpv4.build_error(3, 3, quote)
    assert "ICMP destination unreachable, port unreachable, length 36" in summarize_packet(
        v4(1, port)
    )
    expired = icmpv4.build_error(11, 0, quote)
    assert "ICMP time exceeded in-transit, length 36" in summarize_packet(v4(1, expired))
    other = icmpv4.build_icmpv4(icmpv4.IcmpMessage(13, 0))
    assert "ICMP type 13, code 0, length 8" in summarize_packet(v4(1, other))


def test_udp() -> None:
    datagram = udp.build_udp(5000, 80, b"hello world!", HOST, PEER)
    assert summarize_packet(v4(17, datagram)) == "198.18.0.2.5000 > 198.18.0.1.80: UDP, length 12"


def test_tcp_syn() -> None:
    line = summarize_packet(v4(6, tcp(0x02, 1000)))
    assert line == "198.18.0.2.40000 > 198.18.0.1.80: Flags [S], seq 1000, win 65535, length 0"


def test_tcp_syn_ack_with_options() -> None:
    mss = bytes.fromhex("020405b4")
    line = summarize_packet(v4(6, tcp(0x12, 5000, 1001, window=64240, options=mss)))
    assert line.endswith(": Flags [S.], seq 5000, ack 1001, win 64240, length 0")


def test_tcp_data_shows_the_sequence_range() -> None:
    line = summarize_packet(v4(6, tcp(0x18, 1001, 5001, b"x" * 12, window=502)))
    assert line.endswith(": Flags [P.], seq 1001:1013, ack 5001, win 502, length 12")


def test_tcp_sequence_range_wraps() -> None:
    line = summarize_packet(v4(6, tcp(0x11, 0xFFFF_FFFF, 1, b"ab")))
    assert "Flags [F.], seq 4294967295:1, ack 1," in line


def test_tcp_all_and_no_flags() -> None:
    assert "Flags [FSRP.UEW]" in summarize_packet(v4(6, tcp(0xFF, 0)))
    assert "Flags [none]" in summarize_packet(v4(6, tcp(0x00, 0)))


def test_tcp_malformed() -> None:
    assert summarize_packet(v4(6, b"\x00" * 10)) == (
        "198.18.0.2 > 198.18.0.1: TCP [malformed: 10 bytes, truncated]"
    )
    bad_offset = bytearray(tcp(0x10, 1))
    bad_offset[12] = 0x40  # data offset 4 words: below the minimum of 5
    assert "TCP [malformed: data offset 16" in summarize_packet(v4(6, bytes(bad_offset)))
    bad_offset[12] = 0xF0  # 60 bytes of header in a 20-byte segment
    assert "TCP [malformed: data offset 60" in summarize_packet(v4(6, bytes(bad_offset)))


def test_unknown_protocol() -> None:
    assert summarize_packet(v4(47, b"gre!")) == "198.18.0.2 > 198.18.0.1: ip-proto-47 4"


def test_ipv4_fragments() -> None:
    first = v4(17, bytes(32), identification=77, dont_fragment=False, more_fragments=True)
    assert summarize_packet(first) == "198.18.0.2 > 198.18.0.1: UDP (frag 77:32@0+)"
    last = v4(6, bytes(8), identification=77, dont_fragment=False, fragment_offset=1480)
    assert summarize_packet(last) == "198.18.0.2 > 198.18.0.1: TCP (frag 77:8@1480)"


def test_bad_ip_checksum_is_flagged() -> None:
    packet = bytearray(v4(17, udp.build_udp(1, 2, b"", HOST, PEER)))
    packet[8] -= 1
    assert summarize_packet(bytes(packet)) == (
        "198.18.0.2.1 > 198.18.0.1.2: UDP, length 0 [bad ip cksum]"
    )


def test_malformed_ip() -> None:
    echo = v4(1, icmpv4.build_echo(reply=False, identifier=1, sequence=2))
    assert summarize_packet(echo[:24]) == (
        "198.18.0.2 > 198.18.0.1: IP [malformed: total length 28 > 24 bytes received]"
    )
    assert summarize_packet(echo[:5]).startswith("IP [malformed: ")
    assert summarize_packet(b"") == "[malformed: empty packet]"
    assert summarize_packet(b"\x50" * 30) == "IP [malformed: version 5]"
    assert summarize_packet(v4(17, b"\x00\x01")) == (
        "198.18.0.2 > 198.18.0.1: UDP [malformed: UDP datagram of 2 bytes is shorter than a header]"
    )


def test_ipv6_echo_and_udp() -> None:
    echo = icmpv6.build_echo(HOST6, PEER6, reply=False, identifier=1, sequence=2, payload=bytes(56))
    assert summarize_packet(v6(58, echo)) == (
        "fd00::2 > fd00::1: ICMP6, echo request, id 1, seq 2, length 64"
    )
    datagram = udp.build_udp(5000, 53, b"q" * 20, HOST6, PEER6)
    assert summarize_packet(v6(17, datagram)) == "fd00::2.5000 > fd00::1.53: UDP, length 20"


def test_ipv6_extension_headers_and_fragment() -> None:
    hop_by_hop = bytes.fromhex("11 00 0104 00000000")
    datagram = udp.build_udp(1, 2, b"", HOST6, PEER6)
    assert summarize_packet(v6(0, hop_by_hop + datagram)) == "fd00::2.1 > fd00::1.2: UDP, length 0"
    fragment = bytes.fromhex("11 00 05c9 0000002a")
    assert summarize_packet(v6(44, fragment + bytes(16))) == (
        "fd00::2 > fd00::1: UDP (frag 42:16@1480+)"
    )
    assert summarize_packet(v6(0, hop_by_hop[:5])) == (
        "fd00::2 > fd00::1: IP6 [malformed: extension header of 8 bytes truncated]"
    )


def test_neighbor_discovery() -> None:
    solicited = icmpv6.solicited_node_address(TARGET)
    solicitation = icmpv6.build_neighbor_solicitation(
        icmpv6.NeighborSolicitation(TARGET, HOST_MAC), LINK_LOCAL, solicited
    )
    assert summarize_packet(v6(58, solicitation, LINK_LOCAL, solicited)) == (
        "fe80::2 > ff02::1:ff00:1: ICMP6, neighbor solicitation, who has fe80::1, length 32"
    )
    advertisement = icmpv6.build_neighbor_advertisement(
        icmpv6.NeighborAdvertisement(TARGET, solicited=True, target_link_address=PEER_MAC),
        TARGET,
        LINK_LOCAL,
    )
    assert summarize_packet(v6(58, advertisement, TARGET, LINK_LOCAL)) == (
        "fe80::1 > fe80::2: ICMP6, neighbor advertisement, tgt is fe80::1, length 32"
    )
    broken = icmpv6.build_icmpv6(icmpv6.Icmpv6Message(135, 0, 0, b"short"), LINK_LOCAL, TARGET)
    assert "ICMP6 [malformed: neighbour discovery message too short]" in summarize_packet(
        v6(58, broken, LINK_LOCAL, TARGET)
    )


def test_icmpv6_errors() -> None:
    too_big = icmpv6.build_error(2, 0, bytes(48), PEER6, HOST6, body=1280)
    assert summarize_packet(v6(58, too_big, PEER6, HOST6)) == (
        "fd00::1 > fd00::2: ICMP6, packet too big, mtu 1280, length 56"
    )
    unreachable = icmpv6.build_error(1, 4, bytes(48), PEER6, HOST6)
    assert "ICMP6, destination unreachable, port unreachable, length 56" in summarize_packet(
        v6(58, unreachable, PEER6, HOST6)
    )
    expired = icmpv6.build_error(3, 1, bytes(48), PEER6, HOST6)
    assert "ICMP6, time exceeded reassembly, length 56" in summarize_packet(
        v6(58, expired, PEER6, HOST6)
    )


def test_vnet_header_prefix() -> None:
    header = vnet.VnetHeader(1, vnet.VIRTIO_NET_HDR_GSO_TCPV4, 40, 1460, 20, 16)
    packet = vnet.build_vnet_header(header) + v4(6, tcp(0x10, 1, 1, bytes(2920)))
    assert summarize_packet(packet, vnet_header=True).endswith(
        "length 2920 [vnet needs csum 20+16, gso tcpv4 size 1460 hdr 40]"
    )
    plain = vnet.VNET_HEADER_NONE + v4(47, b"")
    assert summarize_packet(plain, vnet_header=True) == "198.18.0.2 > 198.18.0.1: ip-proto-47 0"
    assert summarize_packet(b"\x00" * 5, vnet_header=True).startswith("vnet [malformed: ")


def test_frames() -> None:
    request = arp.build_arp_request(HOST_MAC, HOST, PEER)
    frame = ethernet.build_ethernet(
        ethernet.BROADCAST_MAC, HOST_MAC, ethernet.ETHERTYPE_ARP, request
    )
    assert summarize_frame(frame) == (
        "02:00:00:00:00:02 > ff:ff:ff:ff:ff:ff, ARP, Request who-has 198.18.0.1 tell 198.18.0.2,"
        " length 28"
    )
    reply = arp.build_arp_reply(arp.parse_arp(request), PEER_MAC)
    frame = ethernet.build_ethernet(HOST_MAC, PEER_MAC, ethernet.ETHERTYPE_ARP, reply)
    assert summarize_frame(frame).endswith(
        ", ARP, Reply 198.18.0.1 is-at 02:00:00:00:00:01, length 28"
    )
    echo = v4(1, icmpv4.build_echo(reply=False, identifier=1, sequence=2))
    frame = ethernet.build_ethernet(PEER_MAC, HOST_MAC, ethernet.ETHERTYPE_IPV4, echo, pad=True)
    assert summarize_frame(frame) == (
        "02:00:00:00:00:02 > 02:00:00:00:00:01, "
        "198.18.0.2 > 198.18.0.1: ICMP echo request, id 1, seq 2, length 8"
    )
    tagged = PEER_MAC + HOST_MAC + bytes.fromhex("8100 0064 88b5") + b"xyz"
    assert summarize_frame(tagged) == (
        "02:00:00:00:00:02 > 02:00:00:00:00:01, vlan 100, ethertype 0x88b5, length 3"
    )
    assert summarize_frame(b"\x00" * 3).startswith("Ethernet [malformed: ")
    bad_arp = ethernet.build_ethernet(PEER_MAC, HOST_MAC, ethernet.ETHERTYPE_ARP, b"\x00" * 28)
    assert summarize_frame(bad_arp).endswith(", ARP [malformed: ARP for hardware 0/protocol 0x0]")


def assert_summary(line: str) -> None:
    assert isinstance(line, str)
    assert line
    assert "internal error" not in line, line


VALID_PACKETS = [
    v4(1, icmpv4.build_echo(reply=False, identifier=1, sequence=2, payload=b"abc")),
    v4(6, tcp(0x18, 1, 2, b"data", options=bytes.fromhex("01010101"))),
    v4(17, udp.build_udp(5000, 80, b"hello", HOST, PEER)),
    v6(0, bytes.fromhex("3a 00 0104 00000000") + icmpv6.build_echo(
        HOST6, PEER6, reply=True, identifier=1, sequence=2)),
    v6(58, icmpv6.build_neighbor_solicitation(icmpv6.NeighborSolicitation(TARGET, HOST_MAC),
                                              HOST6, PEER6)),
    v6(44, bytes.fromhex("06 00 0001 00000001") + tcp(0x02, 7)),
]  # fmt: skip


@SETTINGS
@given(data=st.binary(max_size=120), vnet_header=st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, vnet_header: bool) -> None:
    assert_summary(summarize_packet(data, vnet_header=vnet_header))
    assert_summary(summarize_frame(data))


@SETTINGS
@given(
    version=st.sampled_from([0x45, 0x46, 0x60]),
    protocol=st.sampled_from([1, 6, 17, 58, 0, 43, 44, 60, 99]),
    rest=st.binary(max_size=100),
)
def test_plausible_headers_never_raise(version: int, protocol: int, rest: bytes) -> None:
    if version == 0x60:
        data = bytes((0x60, 0, 0, 0)) + len(rest).to_bytes(2, "big") + bytes((protocol, 64))
        data += HOST6 + PEER6 + rest
    else:
        data = bytes((version, 0)) + (20 + len(rest)).to_bytes(2, "big") + bytes(4)
        data += bytes((64, protocol, 0, 0)) + HOST + PEER + rest
    assert_summary(summarize_packet(data))


@SETTINGS
@given(index=st.integers(0, len(VALID_PACKETS) - 1), cut=st.integers(0, 200),
       bit=st.integers(0, 8 * 200))  # fmt: skip
def test_mutated_packets_never_raise(index: int, cut: int, bit: int) -> None:
    packet = VALID_PACKETS[index]
    assert "malformed" not in summarize_packet(packet)
    flipped = bytearray(packet)
    flipped[(bit // 8) % len(packet)] ^= 1 << (bit % 8)
    for candidate in (packet[: cut % (len(packet) + 1)], bytes(flipped)):
        assert_summary(summarize_packet(candidate))
        frame = ethernet.build_ethernet(PEER_MAC, HOST_MAC, ethernet.ETHERTYPE_IPV4, candidate)
        assert_summary(summarize_frame(frame))


def test_summaries_accept_any_buffer_type() -> None:
    packet = VALID_PACKETS[2]
    expected = summarize_packet(packet)
    assert summarize_packet(bytearray(packet)) == expected
    assert summarize_packet(memoryview(b"xx" + packet)[2:]) == expected

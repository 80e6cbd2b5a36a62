"""tcpdump-style one-line summaries of packets, for logs and test failure output.

``summarize_packet`` takes an IPv4 or IPv6 packet, ``summarize_frame`` an
Ethernet frame. Neither ever raises: what does not parse is summarised as far
as it goes and then marked ``[malformed: why]``. Checksums are not verified,
except that a wrong IPv4 header checksum is flagged. TCP is read from its
fixed header here so that this module stands on its own.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final

from . import arp, ethernet, icmpv4, icmpv6, ipv4, ipv6, udp, vnet
from .checksum import internet_checksum
from .error import WireError

__all__ = ["summarize_frame", "summarize_packet"]

_PROTO_TCP: Final = 6
_PROTO_UDP: Final = 17
_PROTO_ICMP: Final = 1
_PROTO_ICMPV6: Final = 58
_PROTOCOL_NAMES: Final = {
    _PROTO_TCP: "TCP",
    _PROTO_UDP: "UDP",
    _PROTO_ICMP: "ICMP",
    _PROTO_ICMPV6: "ICMP6",
}

#: RFC 9293 §3.1: ports, sequence, acknowledgment, offset, flags, window, checksum, urgent.
_TCP_FIXED: Final = struct.Struct("!HHIIBBHHH")
_TCP_FIXED_LENGTH: Final = 20
_TCP_FLAG_ACK: Final = 0x10
#: Letters in tcpdump's order; the ACK bit shows as ".".
_TCP_FLAG_LETTERS: Final = (
    (0x01, "F"),
    (0x02, "S"),
    (0x04, "R"),
    (0x08, "P"),
    (0x10, "."),
    (0x20, "U"),
    (0x40, "E"),
    (0x80, "W"),
)
_SEQUENCE_MODULUS: Final = 1 << 32

_ICMP_UNREACHABLE_CODES: Final = {
    icmpv4.CODE_NET_UNREACHABLE: "net unreachable",
    icmpv4.CODE_HOST_UNREACHABLE: "host unreachable",
    icmpv4.CODE_PROTOCOL_UNREACHABLE: "protocol unreachable",
    icmpv4.CODE_PORT_UNREACHABLE: "port unreachable",
    icmpv4.CODE_FRAGMENTATION_NEEDED: "need to frag",
}
_ICMPV6_UNREACHABLE_CODES: Final = {
    icmpv6.CODE_NO_ROUTE: "no route",
    icmpv6.CODE_ADMINISTRATIVELY_PROHIBITED: "administratively prohibited",
    icmpv6.CODE_ADDRESS_UNREACHABLE: "address unreachable",
    icmpv6.CODE_PORT_UNREACHABLE: "port unreachable",
}
_GSO_NAMES: Final = {
    vnet.VIRTIO_NET_HDR_GSO_TCPV4: "tcpv4",
    vnet.VIRTIO_NET_HDR_GSO_UDP: "udp",
    vnet.VIRTIO_NET_HDR_GSO_TCPV6: "tcpv6",
    vnet.VIRTIO_NET_HDR_GSO_UDP_L4: "udp_l4",
}

_Bytes = bytes | bytearray | memoryview


def summarize_packet(data: _Bytes, *, vnet_header: bool = False) -> str:
    """Return a one-line summary of an IPv4 or IPv6 packet; never raises.

    With ``vnet_header`` the packet starts with a 10-byte virtio_net_hdr,
    summarised in brackets at the end.
    """
    try:
        return _summarize_packet(data, vnet_header)
    except Exception as error:  # a summary must never take a log line down with it
        return f"[malformed: internal error {type(error).__name__}]"


def summarize_frame(data: _Bytes) -> str:
    """Return a one-line summary of an Ethernet frame and its payload; never raises."""
    try:
        return _summarize_frame(memoryview(data))
    except Exception as error:  # as above
        return f"[malformed: internal error {type(error).__name__}]"


def _malformed(error: WireError | str) -> str:
    return f"[malformed: {error}]"


def _summarize_packet(data: _Bytes, vnet_header: bool) -> str:
    view = memoryview(data)
    suffix = ""
    if vnet_header:
        try:
            suffix = _describe_vnet(vnet.parse_vnet_header(view))
        except WireError as error:
            return f"vnet {_malformed(error)}"
        view = view[vnet.VNET_HEADER_LENGTH :]
    if len(view) == 0:
        return _malformed("empty packet") + suffix
    version = view[0] >> 4
    if version == 4:
        return _summarize_ipv4(view) + suffix
    if version == 6:
        return _summarize_ipv6(view) + suffix
    return f"IP {_malformed(f'version {version}')}{suffix}"


def _describe_vnet(header: vnet.VnetHeader) -> str:
    parts = []
    if header.needs_checksum:
        parts.append(f"needs csum {header.csum_start}+{header.csum_offset}")
    if header.is_gso:
        name = _GSO_NAMES.get(header.gso_type & ~vnet.VIRTIO_NET_HDR_GSO_ECN, "?")
        parts.append(f"gso {name} size {header.gso_size} hdr {header.hdr_len}")
    return f" [vnet {', '.join(parts)}]" if parts else ""


def _summarize_ipv4(view: memoryview) -> str:
    try:
        header, payload = ipv4.parse_ipv4(view, verify_checksum=False)
    except WireError as error:
        if len(view) >= ipv4.IPV4_HEADER_LENGTH:
            ends = f"{ipaddress.IPv4Address(bytes(view[12:16]))} > "
            ends += f"{ipaddress.IPv4Address(bytes(view[16:20]))}"
            return f"{ends}: IP {_malformed(error)}"
        return f"IP {_malformed(error)}"
    source = str(ipaddress.IPv4Address(header.source))
    destination = str(ipaddress.IPv4Address(header.destination))
    if header.is_fragment:
        line = _describe_fragment(
            source, destination, header.protocol, identification=header.identification,
            length=len(payload), offset=header.fragment_offset, more=header.more_fragments,
        )  # fmt: skip
    else:
        line = _describe_transport(source, destination, header.protocol, payload)
    if internet_checksum(view[: header.header_length]) != 0:
        line += " [bad ip cksum]"
    return line


def _summarize_ipv6(view: memoryview) -> str:
    try:
        header, payload = ipv6.parse_ipv6(view)
    except WireError as error:
        if len(view) >= ipv6.IPV6_HEADER_LENGTH:
            ends = f"{_ipv6_text(bytes(view[8:24]))} > {_ipv6_text(bytes(view[24:40]))}"
            return f"{ends}: IP6 {_malformed(error)}"
        return f"IP6 {_malformed(error)}"
    source = _ipv6_text(header.source)
    destination = _ipv6_text(header.destination)
    try:
        chain = ipv6.skip_extension_headers(header.next_header, payload)
    except WireError as error:
        return f"{source} > {destination}: IP6 {_malformed(error)}"
    fragment = chain.fragment
    if fragment is not None:
        return _describe_fragment(
            source, destination, chain.protocol, identification=fragment.identification,
            length=len(chain.payload), offset=fragment.offset, more=fragment.more_fragments,
        )  # fmt: skip
    return _describe_transport(
        source,
        destination,
        chain.protocol,
        chain.payload,
        packed_source=header.source,
        packed_destination=header.destination,
    )


def _describe_fragment(
    source: str,
    destination: str,
    protocol: int,
    *,
    identification: int,
    length: int,
    offset: int,
    more: bool,
) -> str:
    name = _PROTOCOL_NAMES.get(protocol, f"ip-proto-{protocol}")
    plus = "+" if more else ""
    return f"{source} > {destination}: {name} (frag {identification}:{length}@{offset}{plus})"


def _describe_transport(
    source: str,
    destination: str,
    protocol: int,
    payload: memoryview,
    *,
    packed_source: bytes = b"",
    packed_destination: bytes = b"",
) -> str:
    if protocol == _PROTO_TCP:
        return _describe_tcp(source, destination, payload)
    if protocol == _PROTO_UDP:
        return _describe_udp(source, destination, payload)
    if protocol == _PROTO_ICMP and not packed_source:
        return _describe_icmpv4(source, destination, payload)
    if protocol == _PROTO_ICMPV6 and packed_source:
        return _describe_icmpv6(source, destination, payload, packed_source, packed_destination)
    return f"{source} > {destination}: ip-proto-{protocol} {len(payload)}"


def _describe_tcp(source: str, destination: str, segment: memoryview) -> str:
    if len(segment) < _TCP_FIXED_LENGTH:
        return f"{source} > {destination}: TCP {_malformed(f'{len(segment)} bytes, truncated')}"
    (source_port, destination_port, sequence, acknowledgment,
     offset_byte, flags, window, _checksum, _urgent) = _TCP_FIXED.unpack_from(segment)  # fmt: skip
    ends = f"{source}.{source_port} > {destination}.{destination_port}"
    header_length = (offset_byte >> 4) * 4
    if not _TCP_FIXED_LENGTH <= header_length <= len(segment):
        return f"{ends}: TCP {_malformed(f'data offset {header_length}, {len(segment)} bytes')}"
    length = len(segment) - header_length
    letters = "".join(letter for bit, letter in _TCP_FLAG_LETTERS if flags & bit) or "none"
    line = f"{ends}: Flags [{letters}], seq {sequence}"
    if length:
        line += f":{(sequence + length) % _SEQUENCE_MODULUS}"
    if flags & _TCP_FLAG_ACK:
        line += f", ack {acknowledgment}"
    return f"{line}, win {window}, length {length}"


def _describe_udp(source: str, destination: str, datagram: memoryview) -> str:
    try:
        header, payload = udp.parse_udp(datagram)
    except WireError as error:
        return f"{source} > {destination}: UDP {_malformed(error)}"
    ends = f"{source}.{header.source_port} > {destination}.{header.destination_port}"
    return f"{ends}: UDP, length {len(payload)}"


def _describe_icmpv4(source: str, destination: str, data: memoryview) -> str:
    try:
        message = icmpv4.parse_icmpv4(data, verify_checksum=False)
    except WireError as error:
        return f"{source} > {destination}: ICMP {_malformed(error)}"
    return f"{source} > {destination}: ICMP {_icmpv4_text(message)}, length {len(data)}"


def _icmpv4_text(message: icmpv4.IcmpMessage) -> str:
    if message.type in (icmpv4.TYPE_ECHO_REQUEST, icmpv4.TYPE_ECHO_REPLY):
        kind = "request" if message.type == icmpv4.TYPE_ECHO_REQUEST else "reply"
        return f"echo {kind}, id {message.identifier}, seq {message.sequence}"
    if message.type == icmpv4.TYPE_DESTINATION_UNREACHABLE:
        reason = _ICMP_UNREACHABLE_CODES.get(message.code, f"code {message.code}")
        if message.code == icmpv4.CODE_FRAGMENTATION_NEEDED:
            reason += f" (mtu {message.sequence})"
        return f"destination unreachable, {reason}"
    if message.type == icmpv4.TYPE_TIME_EXCEEDED:
        return "time exceeded in-transit" if message.code == 0 else "time exceeded reassembly"
    return f"type {message.type}, code {message.code}"


def _describe_icmpv6(
    source: str,
    destination: str,
    data: memoryview,
    packed_source: bytes,
    packed_destination: bytes,
) -> str:
    ends = f"{source} > {destination}"
    try:
        message = icmpv6.parse_icmpv6(
            data, packed_source, packed_destination, verify_checksum=False
        )
        text = _icmpv6_text(message)
    except WireError as error:
        return f"{ends}: ICMP6 {_malformed(error)}"
    return f"{ends}: ICMP6, {text}, length {len(data)}"


def _icmpv6_text(message: icmpv6.Icmpv6Message) -> str:
    if message.type in (icmpv6.TYPE_ECHO_REQUEST, icmpv6.TYPE_ECHO_REPLY):
        kind = "request" if message.type == icmpv6.TYPE_ECHO_REQUEST else "reply"
        return f"echo {kind}, id {message.identifier}, seq {message.sequence}"
    if message.type == icmpv6.TYPE_NEIGHBOR_SOLICITATION:
        solicitation = icmpv6.parse_neighbor_solicitation(message)
        return f"neighbor solicitation, who has {_ipv6_text(solicitation.target)}"
    if message.type == icmpv6.TYPE_NEIGHBOR_ADVERTISEMENT:
        advertisement = icmpv6.parse_neighbor_advertisement(message)
        return f"neighbor advertisement, tgt is {_ipv6_text(advertisement.target)}"
    if message.type == icmpv6.TYPE_DESTINATION_UNREACHABLE:
        reason = _ICMPV6_UNREACHABLE_CODES.get(message.code, f"code {message.code}")
        return f"destination unreachable, {reason}"
    if message.type == icmpv6.TYPE_PACKET_TOO_BIG:
        return f"packet too big, mtu {message.mtu}"
    if message.type == icmpv6.TYPE_TIME_EXCEEDED:
        return "time exceeded in-transit" if message.code == 0 else "time exceeded reassembly"
    return f"type {message.type}, code {message.code}"


def _ipv6_text(address: bytes) -> str:
    return ipaddress.IPv6Address(address).compressed


def _summarize_frame(view: memoryview) -> str:
    try:
        header, payload = ethernet.parse_ethernet(view)
    except WireError as error:
        return f"Ethernet {_malformed(error)}"
    ends = f"{ethernet.format_mac(header.source)} > {ethernet.format_mac(header.destination)}"
    if header.vlan is not None:
        ends += f", vlan {header.vlan}"
    if header.ethertype in (ethernet.ETHERTYPE_IPV4, ethernet.ETHERTYPE_IPV6):
        return f"{ends}, {_summarize_packet(payload, False)}"
    if header.ethertype == ethernet.ETHERTYPE_ARP:
        return f"{ends}, {_describe_arp(payload)}"
    return f"{ends}, ethertype {header.ethertype:#06x}, length {len(payload)}"


def _describe_arp(data: memoryview) -> str:
    try:
        packet = arp.parse_arp(data)
    except WireError as error:
        return f"ARP {_malformed(error)}"
    target = ipaddress.IPv4Address(packet.target_protocol)
    if packet.is_request:
        sender = ipaddress.IPv4Address(packet.sender_protocol)
        return f"ARP, Request who-has {target} tell {sender}, length {arp.ARP_PACKET_LENGTH}"
    sender = ipaddress.IPv4Address(packet.sender_protocol)
    mac = ethernet.format_mac(packet.sender_hardware)
    return f"ARP, Reply {sender} is-at {mac}, length {arp.ARP_PACKET_LENGTH}"

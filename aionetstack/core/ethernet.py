"""The Ethernet layer of a host on a TAP: framing, ARP (RFC 826), IPv6 ND (RFC 4861).

:class:`EthernetHost` wraps a :class:`~.stack.StackCore` and has the same five
verbs, so a driver runs it in the core's place when the link carries Ethernet
frames (``link.framing == "ethernet"``). Incoming frames are checked against
our MAC, unwrapped and handed to the IP core; ARP is answered for our IPv4
addresses and neighbour solicitations for our IPv6 ones. Outgoing IP packets
get the MAC of their next hop from the :class:`~.neighbour.NeighbourCache`,
or wait in it while an ARP request or a neighbour solicitation is out. Router
advertisements set the IPv6 default router and on-link prefixes (RFC 4861
§6.3.4). A malformed frame is dropped and counted, never raised.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import deque
from typing import Final

from ..wire import arp, ethernet, icmpv6, ipv6
from ..wire.error import WireError
from .counts import Counts
from .ip import ALL_NODES
from .neighbour import NeighbourCache
from .output import OffloadedPacket
from .stack import StackCore

__all__ = ["EthernetHost"]

#: RFC 4861 §7.1.1, §6.1.2: ND messages are sent with hop limit 255 and accepted only so.
_ND_HOP_LIMIT: Final = 255
TYPE_ROUTER_ADVERTISEMENT: Final = 134
#: RFC 4861 §4.6.2: the prefix information option.
_OPTION_PREFIX_INFORMATION: Final = 3
_PREFIX_ON_LINK: Final = 0x80
_PREFIX_OPTION: Final = struct.Struct("!BBBBIII16s")
#: RFC 1112 §6.4 / RFC 2464 §7: multicast IP addresses map to multicast MACs.
_IPV4_MULTICAST_FIRST: Final = range(224, 240)
_LINK_LOCAL: Final = ipaddress.IPv6Network("fe80::/10")


class EthernetHost:
    """A :class:`StackCore` on an Ethernet segment with MAC ``mac`` (see the module docstring)."""

    def __init__(self, core: StackCore, mac: bytes, *, neighbours: NeighbourCache | None = None):
        if len(mac) != 6 or mac[0] & 1:
            raise ValueError("mac must be 6 bytes of a unicast address")
        self.core = core
        self.mac = mac
        self.neighbours = neighbours or NeighbourCache()
        self.stats = Counts()
        self._frames: deque[bytes | OffloadedPacket] = deque()
        core.register_icmpv6(icmpv6.TYPE_NEIGHBOR_SOLICITATION, self._on_solicitation)
        core.register_icmpv6(icmpv6.TYPE_NEIGHBOR_ADVERTISEMENT, self._on_advertisement)
        core.register_icmpv6(TYPE_ROUTER_ADVERTISEMENT, self._on_router_advertisement)
        core.add_statistics("ethernet", self._statistics)

    # -- the five verbs -------------------------------------------------------------

    @property
    def events(self) -> deque[object]:
        return self.core.events

    def receive_packet(self, frame: bytes | bytearray | memoryview, now: float) -> None:
        """Take one Ethernet frame from the link. Never raises on bad input."""
        stats = self.stats
        stats["frames_received"] += 1
        try:
            header, payload = ethernet.parse_ethernet(frame)
        except WireError as error:
            stats["dropped_" + error.reason] += 1
            return
        destination = header.destination
        if destination != self.mac and not destination[0] & 1:
            stats["dropped_not_for_us"] += 1  # another station's unicast
            return
        if header.vlan is not None:
            stats["dropped_vlan_tagged"] += 1
            return
        kind = header.ethertype
        if kind in (ethernet.ETHERTYPE_IPV4, ethernet.ETHERTYPE_IPV6):
            self.core.receive_packet(payload, now)
        elif kind == ethernet.ETHERTYPE_ARP:
            self._on_arp(payload, now)
        else:
            stats["dropped_unknown_ethertype"] += 1

    def packets_to_send(self, now: float) -> list[bytes | OffloadedPacket]:
        """Frames ready for the link: the core's packets with their MACs, ARP and ND.

        An offloaded packet stays one: its frame goes to ``send_offloaded`` (a TAP
        with offload), the Ethernet header in front of the IP packet.
        """
        for packet in self.core.packets_to_send(now):
            self._send_ip(packet, now)
        frames = list(self._frames)
        self._frames.clear()
        self.stats["frames_sent"] += len(frames)
        return frames

    def get_timer(self) -> float | None:
        deadlines = [
            d for d in (self.core.get_timer(), self.neighbours.get_timer()) if d is not None
        ]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        self.core.handle_timer(now)
        again, failed = self.neighbours.handle_timer(now)
        for address in again:
            self._solicit(address)
        for packet in failed:
            raw = packet.whole() if isinstance(packet, OffloadedPacket) else packet
            self.core.report_unreachable(raw, now)  # EHOSTUNREACH, as Linux after ARP fails

    def next_event(self) -> object | None:
        return self.core.next_event()

    def _statistics(self) -> dict[str, int]:
        return {**self.stats, **{"neighbour_" + k: v for k, v in self.neighbours.stats.items()}}

    # -- sending IP ---------------------------------------------------------------------

    def _frame(
        self, mac: bytes, kind: int, packet: bytes | OffloadedPacket
    ) -> bytes | OffloadedPacket:
        if isinstance(packet, OffloadedPacket):
            header = ethernet.build_ethernet(mac, self.mac, kind, b"")
            return OffloadedPacket(header + packet.packet, packet.segment_size, packet.tail)
        return ethernet.build_ethernet(mac, self.mac, kind, packet)

    def _send_ip(self, packet: bytes | OffloadedPacket, now: float) -> None:
        head = packet.packet if isinstance(packet, OffloadedPacket) else packet
        if head[0] >> 4 == 4:
            destination, kind = head[16:20], ethernet.ETHERTYPE_IPV4
        else:
            destination, kind = head[24:40], ethernet.ETHERTYPE_IPV6
        mac = self._multicast_mac(destination)
        if mac is not None:
            self._frames.append(self._frame(mac, kind, packet))
            return
        try:
            next_hop = self.core.routes.route(destination).next_hop
        except OSError:
            self.stats["dropped_no_route"] += 1
            return
        resolution = self.neighbours.resolve(next_hop, packet, now)
        if resolution.mac is not None:
            self._frames.append(self._frame(resolution.mac, kind, packet))
        elif resolution.solicit:
            self._solicit(next_hop)

    def _multicast_mac(self, destination: bytes) -> bytes | None:
        if len(destination) == 16:
            return ethernet.ipv6_multicast_mac(destination) if destination[0] == 0xFF else None
        if self.core.routes.is_broadcast(destination):
            return ethernet.BROADCAST_MAC
        if destination[0] in _IPV4_MULTICAST_FIRST:
            return ethernet.ipv4_multicast_mac(destination)
        return None

    def _flush_waiting(
        self, address: bytes, mac: bytes, packets: list[bytes | OffloadedPacket]
    ) -> None:
        for packet in packets:
            head = packet.packet if isinstance(packet, OffloadedPacket) else packet
            kind = ethernet.ETHERTYPE_IPV4 if head[0] >> 4 == 4 else ethernet.ETHERTYPE_IPV6
            self._frames.append(self._frame(mac, kind, packet))

    def _solicit(self, address: bytes) -> None:
        """An ARP request (broadcast) or a neighbour solicitation (solicited-node multicast)."""
        source = self.core.routes.select_source(address)
        if len(address) == 4:
            request = arp.build_arp_request(self.mac, source, address)
            self._frames.append(ethernet.build_ethernet(
                ethernet.BROADCAST_MAC, self.mac, ethernet.ETHERTYPE_ARP, request
            ))  # fmt: skip
            self.stats["arp_requests_sent"] += 1
            return
        group = icmpv6.solicited_node_address(address)
        message = icmpv6.build_neighbor_solicitation(
            icmpv6.NeighborSolicitation(address, self.mac), source, group
        )
        self._send_nd(source, group, message, ethernet.ipv6_multicast_mac(group))
        self.stats["neighbour_solicitations_sent"] += 1

    def _send_nd(self, source: bytes, destination: bytes, message: bytes, mac: bytes) -> None:
        header = ipv6.IPv6Header(source, destination, icmpv6.PROTO_ICMPV6, _ND_HOP_LIMIT)
        packet = ipv6.build_ipv6(header, message)
        self._frames.append(ethernet.build_ethernet(mac, self.mac, ethernet.ETHERTYPE_IPV6, packet))

    # -- ARP (RFC 826) ------------------------------------------------------------------

    def _on_arp(self, payload: memoryview, now: float) -> None:
        stats = self.stats
        try:
            packet = arp.parse_arp(payload)
        except WireError as error:
            stats["dropped_arp_" + error.reason] += 1
            return
        sender, sender_mac = packet.sender_protocol, packet.sender_hardware
        if sender_mac[0] & 1 or sender in self.core.routes.local_addresses:
            stats["dropped_arp_bad_sender"] += 1
            return
        ours = packet.target_protocol in self.core.routes.local_addresses
        # RFC 826 "Packet Reception": update a known sender; add it if we are the target.
        if sender != bytes(4) and (ours or self.neighbours.state(sender) is not None):
            solicited = not packet.is_request and ours
            waiting = self.neighbours.confirm(sender, sender_mac, now, solicited=solicited)
            self._flush_waiting(sender, sender_mac, waiting)
        if not ours:
            stats["arp_not_for_us"] += 1
            return
        if packet.is_request:
            reply = arp.build_arp_reply(packet, self.mac)
            self._frames.append(ethernet.build_ethernet(
                sender_mac, self.mac, ethernet.ETHERTYPE_ARP, reply
            ))  # fmt: skip
            stats["arp_replies_sent"] += 1
        else:
            stats["arp_replies_received"] += 1

    # -- neighbour discovery (RFC 4861) ---------------------------------------------------

    def _nd_valid(self, header: ipv6.IPv6Header, message: icmpv6.Icmpv6Message) -> bool:
        """RFC 4861 §7.1.1/§7.1.2/§6.1.2: hop limit 255 (off-link forgeries cannot), code 0."""
        if header.hop_limit != _ND_HOP_LIMIT or message.code != 0:
            self.stats["dropped_nd_invalid"] += 1
            return False
        return True

    def _on_solicitation(
        self, header: ipv6.IPv6Header, message: icmpv6.Icmpv6Message, now: float
    ) -> None:
        if not self._nd_valid(header, message):
            return
        try:
            solicitation = icmpv6.parse_neighbor_solicitation(message)
        except WireError as error:
            self.stats["dropped_nd_" + error.reason] += 1
            return
        target = solicitation.target
        if target not in self.core.routes.local_addresses:
            self.stats["nd_not_for_us"] += 1
            return
        unspecified = header.source == bytes(16)
        link_address = solicitation.source_link_address
        if link_address is not None and not unspecified:
            # RFC 4861 §7.2.3: the solicitation's source goes in the cache as STALE.
            waiting = self.neighbours.confirm(header.source, link_address, now, solicited=False)
            self._flush_waiting(header.source, link_address, waiting)
        destination = ALL_NODES if unspecified else header.source  # RFC 4861 §7.2.4
        advertisement = icmpv6.build_neighbor_advertisement(
            icmpv6.NeighborAdvertisement(
                target, solicited=not unspecified, override=True, target_link_address=self.mac
            ),
            target, destination,
        )  # fmt: skip
        if unspecified:
            mac = ethernet.ipv6_multicast_mac(destination)
        elif link_address is not None:
            mac = link_address
        else:
            self.stats["nd_no_source_link_address"] += 1
            return
        self._send_nd(target, destination, advertisement, mac)
        self.stats["neighbour_advertisements_sent"] += 1

    def _on_advertisement(
        self, header: ipv6.IPv6Header, message: icmpv6.Icmpv6Message, now: float
    ) -> None:
        if not self._nd_valid(header, message):
            return
        try:
            advertisement = icmpv6.parse_neighbor_advertisement(message)
        except WireError as error:
            self.stats["dropped_nd_" + error.reason] += 1
            return
        mac = advertisement.target_link_address
        if mac is None or self.neighbours.state(advertisement.target) is None:
            self.stats["nd_advertisements_ignored"] += 1  # RFC 4861 §7.2.5: not tracked
            return
        waiting = self.neighbours.confirm(
            advertisement.target, mac, now, solicited=advertisement.solicited
        )
        self._flush_waiting(advertisement.target, mac, waiting)
        self.stats["neighbour_advertisements_received"] += 1

    def _on_router_advertisement(
        self, header: ipv6.IPv6Header, message: icmpv6.Icmpv6Message, now: float
    ) -> None:
        """RFC 4861 §6.3.4: the default router and on-link prefixes (no SLAAC here)."""
        if not self._nd_valid(header, message):
            return
        if ipaddress.IPv6Address(header.source) not in _LINK_LOCAL:
            self.stats["dropped_ra_not_link_local"] += 1  # RFC 4861 §6.1.2
            return
        self.stats["router_advertisements_received"] += 1
        lifetime = message.body & 0xFFFF
        routes = self.core.routes
        if lifetime:
            routes.set_gateway(header.source, 6)
        elif routes.gateway(6) == header.source:
            routes.set_gateway(None, 6)
        options = message.payload[8:]
        offset = 0
        while offset + 2 <= len(options):
            kind, units = options[offset], options[offset + 1]
            if units == 0:
                self.stats["dropped_ra_bad_option"] += 1  # RFC 4861 §4.6: length 0 is invalid
                return
            option = options[offset : offset + units * 8]
            if kind == icmpv6.OPTION_SOURCE_LINK_ADDRESS and len(option) >= 8:
                waiting = self.neighbours.confirm(header.source, option[2:8], now, solicited=False)
                self._flush_waiting(header.source, option[2:8], waiting)
            elif kind == _OPTION_PREFIX_INFORMATION and len(option) == _PREFIX_OPTION.size:
                _, _, length, flags, valid, _, _, prefix = _PREFIX_OPTION.unpack(option)
                if flags & _PREFIX_ON_LINK and valid and length <= 128:
                    network = ipaddress.IPv6Network((prefix, length), strict=False)
                    if not network.is_link_local:
                        routes.add_on_link(network)
            offset += units * 8

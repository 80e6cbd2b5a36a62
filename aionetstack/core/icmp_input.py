"""ICMP and ICMPv6 that arrive (RFC 792, RFC 4443): echo requests answered, echo
replies to the ping waiter, and errors mapped to whoever caused them: the ping,
the UDP endpoint or the TCP connection of the quoted packet (RFC 1122 §4.2.3.9,
RFC 5927 checks), and packet-too-big / fragmentation-needed to the path MTU cache
(RFC 1191, RFC 8201).
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from ..wire import icmpv4, icmpv6, ipv4, ipv6
from ..wire.error import WireError
from .events import EchoReplyReceived, EchoUnreachable
from .host import IpHeader
from .icmp import icmpv4_error_to_oserror, icmpv6_error_to_oserror
from .ip_output import _IpOutput
from .ipv6 import ExtensionWalk, walk_extension_headers
from .pmtu import plateau_below

#: Quoted datagram in an ICMP error: IP header plus at least 8 bytes (RFC 792).
_MIN_QUOTE = ipv4.IPV4_HEADER_LENGTH + 8


class _IcmpInput(_IpOutput):
    """The icmp input part of :class:`StackCore` (see the module docstring)."""

    def _receive_icmp(
        self, header: IpHeader, payload: memoryview, packet: memoryview, now: float
    ) -> None:
        assert isinstance(header, ipv4.IPv4Header)
        stats = self.icmp_stats
        stats["received"] += 1
        try:
            message = icmpv4.parse_icmpv4(payload, verify_checksum=self._verify_transport)
        except WireError as error:
            stats["dropped_" + error.reason] += 1
            return
        if message.type == icmpv4.TYPE_ECHO_REQUEST:
            self._answer_echo(header, message)
        elif message.type == icmpv4.TYPE_ECHO_REPLY:
            stats["echo_replies_received"] += 1
            self._events.append(EchoReplyReceived(
                header.source, message.identifier, message.sequence, message.payload, header.ttl
            ))  # fmt: skip
        elif message.is_error:
            self._receive_icmp_error(header, message, now)
        else:
            stats["dropped_unhandled_type"] += 1

    def _answer_echo(self, header: ipv4.IPv4Header, message: icmpv4.IcmpMessage) -> None:
        stats = self.icmp_stats
        stats["echo_requests_received"] += 1
        # Linux default icmp_echo_ignore_broadcasts=1 (RFC 1122 §3.2.2.6 allows it).
        if not self.config.ip.answer_echo or (
            header.destination not in self.routes.local_addresses
            and not self.intercept.answers_echo(header.destination)
        ):
            stats["echo_requests_ignored"] += 1
            return
        reply = icmpv4.build_echo(
            reply=True, identifier=message.identifier, sequence=message.sequence,
            payload=message.payload,
        )  # fmt: skip
        self.send_ip(header.destination, header.source, ipv4.PROTO_ICMP, reply)
        stats["echo_replies_sent"] += 1

    def _receive_icmp_error(
        self, header: ipv4.IPv4Header, message: icmpv4.IcmpMessage, now: float
    ) -> None:
        stats = self.icmp_stats
        stats["errors_received"] += 1
        quote = message.payload
        if len(quote) < _MIN_QUOTE:
            stats["dropped_short_quote"] += 1
            return
        quoted = self._parse_quoted_header(quote)
        if quoted is None:
            stats["dropped_bad_quote"] += 1
            return
        quoted_payload = memoryview(quote)[quoted.header_length :]
        if quoted.source not in self.routes.local_addresses and not self.intercept.covers(
            quoted.source
        ):
            stats["dropped_not_ours"] += 1  # RFC 5927 §4.1: the quote must be of our packet
            return
        error = icmpv4_error_to_oserror(message.type, message.code)
        if (
            message.type == icmpv4.TYPE_DESTINATION_UNREACHABLE
            and message.code == icmpv4.CODE_FRAGMENTATION_NEEDED
        ):
            # RFC 1191 §4: the next-hop MTU is the low 16 bits of the unused word.
            self._path_mtu_report(
                quoted, quoted_payload, message.sequence, quoted.total_length, now
            )
        self._deliver_error(
            quoted.source, quoted.destination, quoted.protocol, quoted_payload,
            error=error, reporter=header.source, now=now,
        )  # fmt: skip

    def _deliver_error(
        self, source: bytes, destination: bytes, protocol: int, quoted: memoryview,
        *, error: OSError, reporter: bytes, now: float,
    ) -> None:  # fmt: skip
        """Hand an error about our packet to whoever sent it: a ping, UDP or TCP."""
        echo = icmpv4.TYPE_ECHO_REQUEST if len(source) == 4 else icmpv6.TYPE_ECHO_REQUEST
        if protocol in (ipv4.PROTO_ICMP, icmpv6.PROTO_ICMPV6):
            if len(quoted) >= 8 and quoted[0] == echo:
                identifier = int.from_bytes(quoted[4:6], "big")
                sequence = int.from_bytes(quoted[6:8], "big")
                self._events.append(
                    EchoUnreachable(destination, identifier, sequence, error, reporter)
                )
            return
        handler = self._error_handlers.get(protocol)
        if handler is None:
            stats = self.icmp_stats if len(source) == 4 else self.icmp6_stats
            stats["dropped_no_owner"] += 1
            return
        handler(source, destination, quoted, error, now)

    def report_unreachable(self, packet: bytes, now: float) -> None:
        """One of our packets could not be delivered on the link (no neighbour answered).

        Its sender hears ``EHOSTUNREACH``, as from Linux when ARP or neighbour
        discovery fails (``arp_error_report`` sends itself a host unreachable).
        """
        error = OSError(errno.EHOSTUNREACH, "No route to host: the neighbour did not answer")
        if packet[0] >> 4 == 4:
            quoted4 = self._parse_quoted_header(packet)
            if quoted4 is None:
                return
            payload = memoryview(packet)[quoted4.header_length :]
            self._deliver_error(
                quoted4.source, quoted4.destination, quoted4.protocol, payload,
                error=error, reporter=quoted4.source, now=now,
            )  # fmt: skip
            return
        if len(packet) < ipv6.IPV6_HEADER_LENGTH + 8:
            return
        walk = walk_extension_headers(packet[6], packet[ipv6.IPV6_HEADER_LENGTH :])
        if not isinstance(walk, ExtensionWalk):
            return
        payload = memoryview(packet)[ipv6.IPV6_HEADER_LENGTH + walk.offset :]
        source = bytes(packet[8:24])
        self._deliver_error(
            source, bytes(packet[24:40]), walk.protocol, payload,
            error=error, reporter=source, now=now,
        )  # fmt: skip

    def _path_mtu_report(
        self, quoted: IpHeader, quoted_payload: memoryview, mtu: int, quoted_length: int,
        now: float,
    ) -> None:  # fmt: skip
        """Lower the path MTU towards the quoted destination (RFC 1191 §6.3, RFC 8201 §4).

        RFC 5927 §4.1 validation: the quote is of our packet (checked by the
        caller) and, for IPv4, the reported MTU is below the quoted packet's
        length (a router cannot have refused a packet smaller than its MTU).
        """
        stats = self.pmtu.stats
        if len(quoted.destination) == 4:
            if mtu == 0:
                mtu = plateau_below(quoted_length)  # RFC 1191 §5: pre-RFC 1191 routers
            elif quoted_length and mtu >= quoted_length:
                stats["pmtu_reports_implausible"] += 1
                return
        lowered = self.pmtu.lower(quoted.destination, mtu, now)
        if lowered is None:
            return
        protocol = quoted.protocol if isinstance(quoted, ipv4.IPv4Header) else quoted.next_header
        handler = self._pmtu_handlers.get(protocol)
        if handler is not None:
            handler(quoted.source, quoted.destination, quoted_payload, lowered, now)

    @staticmethod
    def _parse_quoted_header(quote: bytes) -> ipv4.IPv4Header | None:
        """Parse the IPv4 header quoted in an ICMP error.

        Quotes are usually cut short of the datagram's total length, so only
        the header and the 8 bytes after it (RFC 792) are required.
        """
        header_length = (quote[0] & 0x0F) * 4
        if quote[0] >> 4 != 4 or header_length < ipv4.IPV4_HEADER_LENGTH:
            return None
        if len(quote) < header_length + 8:
            return None
        return ipv4.IPv4Header(
            source=bytes(quote[12:16]), destination=bytes(quote[16:20]), protocol=quote[9],
            header_length=header_length, total_length=int.from_bytes(quote[2:4], "big"),
        )  # fmt: skip

    def _receive_icmpv6(
        self, header: IpHeader, payload: memoryview, packet: memoryview, now: float
    ) -> None:
        assert isinstance(header, ipv6.IPv6Header)
        stats = self.icmp6_stats
        stats["received"] += 1
        try:
            message = icmpv6.parse_icmpv6(
                payload, header.source, header.destination, verify_checksum=self._verify_transport
            )
        except WireError as error:
            stats["dropped_" + error.reason] += 1
            return
        if message.type == icmpv6.TYPE_ECHO_REQUEST:
            self._answer_echo6(header, message)
        elif message.type == icmpv6.TYPE_ECHO_REPLY:
            stats["echo_replies_received"] += 1
            self._events.append(EchoReplyReceived(
                header.source, message.identifier, message.sequence, message.payload,
                header.hop_limit,
            ))  # fmt: skip
        elif message.is_error:
            self._receive_icmpv6_error(header, message, now)
        else:
            handler = self._icmpv6_handlers.get(message.type)
            if handler is None:
                stats["dropped_unhandled_type"] += 1
            else:
                handler(header, message, now)

    def register_icmpv6(
        self, icmp_type: int,
        handler: Callable[[ipv6.IPv6Header, icmpv6.Icmpv6Message, float], None],
    ) -> None:  # fmt: skip
        """Hand one ICMPv6 informational type (e.g. neighbour discovery) to ``handler``."""
        self._icmpv6_handlers[icmp_type] = handler

    def _answer_echo6(self, header: ipv6.IPv6Header, message: icmpv6.Icmpv6Message) -> None:
        stats = self.icmp6_stats
        stats["echo_requests_received"] += 1
        if not self.config.ip.answer_echo:
            stats["echo_requests_ignored"] += 1
            return
        source = header.destination
        if source not in self.routes.local_addresses and not self.intercept.answers_echo(source):
            # To all-nodes: Linux answers (icmp_echo_ignore_multicast=0) from a unicast address.
            try:
                source = self.routes.route(header.source).source
            except OSError:
                stats["echo_requests_ignored"] += 1
                return
        reply = icmpv6.build_echo(
            source, header.source, reply=True, identifier=message.identifier,
            sequence=message.sequence, payload=message.payload,
        )  # fmt: skip
        self.send_ip(source, header.source, icmpv6.PROTO_ICMPV6, reply)
        stats["echo_replies_sent"] += 1

    def _receive_icmpv6_error(
        self, header: ipv6.IPv6Header, message: icmpv6.Icmpv6Message, now: float
    ) -> None:
        stats = self.icmp6_stats
        stats["errors_received"] += 1
        quote = memoryview(message.payload)
        if len(quote) < ipv6.IPV6_HEADER_LENGTH + 8 or quote[0] >> 4 != 6:
            stats["dropped_short_quote" if len(quote) < 48 else "dropped_bad_quote"] += 1
            return
        quoted_source = bytes(quote[8:24])
        quoted_destination = bytes(quote[24:40])
        if quoted_source not in self.routes.local_addresses and not self.intercept.covers(
            quoted_source
        ):
            stats["dropped_not_ours"] += 1  # RFC 5927 §4.1
            return
        walk = walk_extension_headers(quote[6], quote[ipv6.IPV6_HEADER_LENGTH :])
        if not isinstance(walk, ExtensionWalk) or (walk.fragment and walk.fragment.offset):
            stats["dropped_bad_quote"] += 1
            return
        quoted = ipv6.IPv6Header(quoted_source, quoted_destination, walk.protocol)
        quoted_payload = quote[ipv6.IPV6_HEADER_LENGTH + walk.offset :]
        error = icmpv6_error_to_oserror(message.type, message.code)
        if message.type == icmpv6.TYPE_PACKET_TOO_BIG:
            self._path_mtu_report(quoted, quoted_payload, message.mtu, 0, now)
        self._deliver_error(
            quoted_source, quoted_destination, walk.protocol, quoted_payload,
            error=error, reporter=header.source, now=now,
        )  # fmt: skip

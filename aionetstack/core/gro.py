"""Software GRO: consecutive in-order TCP segments of a flow, read in one batch, become one.

A link without receive offload (``TunLink(offload=False)``) hands over one
MTU-sized packet at a time; every one of them through IP, TCP and the
application's read costs the whole Python path. Between the link and IP the
driver's pump (``core/pump.py``) gives each batch to :class:`Coalescer`, which
merges runs of segments the way Linux's ``tcp_gro_receive`` does
(``net/ipv4/tcp_offload.c``) and hands the core one segment per run:

* a run is consecutive packets of the batch, of one flow (addresses and ports),
  IPv4 without options or fragmentation, or IPv6 with TCP as the first next
  header; the same TOS/traffic class, flow label, TTL/hop limit and DF;
* each segment continues the previous one's sequence space exactly (and a
  segment that does not continue the previous data segment of its flow in the
  batch, a duplicate or a reordered one, goes on alone and starts no run: the
  TCP layer then answers it as it would unmerged), carries the
  same acknowledgment number, window and option bytes (timestamps included),
  only ACK, or ACK and PSH, and some payload: SYN, FIN, RST, URG, ECE/CWR or a
  changed header end the run and go on alone;
* a segment longer than the run's first ends it (it goes on alone); a shorter
  one, or one with PSH, is merged as the run's last; a run holds at most what
  one IP packet can (65,535 bytes);
* each segment's checksum is verified before it is merged (RFC 9293 §3.1); a bad
  one is not merged but passed on as it is, so the core drops it and counts it
  (``tcp.dropped_bad_checksum``) as it always did.

Pure ACKs are thinned (no counterpart in Linux, whose TCP takes each ACK in C; here
each one is the whole Python ACK path, and a sender on a link without offload gets
one for every two of its packets). Within a batch, consecutive pure ACKs of a flow
(no packet of that flow between them), each with only the ACK flag, the same
sequence number and header length and a verified checksum, each acknowledging
strictly more than the one before: the first is kept, and of the rest only the
newest, which takes the place of the second. The TCP layer then sees any duplicate
ACK as before (a duplicate never acknowledges more, so it is never thinned), and
the kept newest ACK moves SND.UNA, the window (RFC 9293 §3.10.7.4: it is the newest
segment) and the timestamp to where the thinned run would have: what it misses is
RTT samples and per-ACK congestion steps, which byte counting makes one step of the
same size (``CongestionControl.slow_start``), as for any stretch ACK. One ACK a
correct peer never sends, for data not yet sent, is dropped by the TCP layer (RFC 9293
§3.10.7.4) and takes the ACKs it stood for with it; the peer's next valid ACK moves
SND.UNA on. (``acks_thinned`` counts the ACKs left out.)

The merged segment is the first segment's headers with the lengths of the whole
run and PSH if its last segment had it; its TCP checksum field is not
recomputed (the core is told the checksums were verified, as Linux marks a GRO
packet CHECKSUM_UNNECESSARY); its IPv4 header checksum is. The TCP layer then sees
the same bytes in the same order, and owes the same ACKs: its delayed-ACK rule
counts bytes (``_bytes_since_ack``: an ACK at once for every two full-sized
segments' worth, RFC 9293 §3.8.6.3, RFC 5681 §4.2), and a batch's ACKs go out
together when the batch is done whether or not its segments were merged.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Final

from ..wire import ipv4
from ..wire.checksum import ones_complement_sum, word_sum
from ..wire.tcp import ACK, PSH, TIMESTAMP_PREFIX, seq_lt
from .stack import StackCore

__all__ = ["ACCELERATED", "Coalescer", "MergedSegment"]

_native_coalesce: Callable[..., tuple[list[object], int, int, int]] | None
_native_thin_acks: Callable[..., tuple[list[object], int, int, int]] | None
try:
    from ._gro import coalesce as _native_coalesce
    from ._gro import thin_acks as _native_thin_acks
except ImportError:  # built without a C compiler: the *_python methods do the same
    _native_coalesce = _native_thin_acks = None
#: :meth:`Coalescer.coalesce` and :meth:`Coalescer.thin_acks` run the C passes of
#: ``core/_gro.c``.
ACCELERATED: Final = _native_coalesce is not None

_IPPROTO_TCP: Final = 6
#: The largest IPv4 total length and IPv6 payload length (RFC 791 §3.1, RFC 8200 §3).
_MAX_LENGTH: Final = 0xFFFF
_MASK: Final = 0xFFFF
#: The IPv4 flags and fragment offset field, less DF: MF and the offset (RFC 791 §3.1).
_FRAGMENT_FIELD: Final = 0x3FFF
_SEQ_MASK: Final = 0xFFFFFFFF
#: The fewest pure ACKs of which thinning leaves one out (the first and newest stay).
_THINNABLE_RUN: Final = 3
#: The lengths of the pure ACKs :meth:`Coalescer.thin_acks` looks into: IPv4 and IPv6 with
#: no TCP options or with the timestamps (NOP NOP TS, RFC 7323 §3).
_PURE_ACK_LENGTHS_4: Final = frozenset((40, 52))
_PURE_ACK_LENGTHS_6: Final = frozenset((60, 72))
#: IPv4 fixed header: version/IHL, TOS, total length, id, flags/offset, TTL, protocol,
#: checksum, addresses (RFC 791 §3.1); TCP: ports, seq, ack, data offset, flags, window.
_IPV4: Final = struct.Struct("!BBHHHBBH8s")
_TCP: Final = struct.Struct("!4sIIBBH")
#: An IPv4 pure ACK's fields the thinning tests, in one unpacking: version/IHL, total
#: length, flags/fragment offset, protocol, the addresses; ports, seq, ack, data offset.
_ACK4: Final = struct.Struct("!BxHxxHxBxx8s4sIIB")


class MergedSegment:
    """A packet built from ``count`` segments whose checksums were each verified."""

    __slots__ = ("count", "packet")

    def __init__(self, packet: bytes, count: int) -> None:
        self.packet = packet
        self.count = count


#: What :meth:`Coalescer.coalesce` returns: packets as the link gave them, or merged ones.
_Item = bytes | memoryview | MergedSegment


class _Run:
    """The segments merged so far (see the module docstring)."""

    __slots__ = (
        "ack",
        "closed",
        "first",
        "flow",
        "header_end",
        "ip_length",
        "ip_same",
        "next_seq",
        "options",
        "payloads",
        "push",
        "size",
        "total",
        "window",
    )

    def __init__(  # noqa: PLR0917
        self, packet: bytes | memoryview, ip_length: int, header_end: int, flow: bytes,
        ip_same: int,
        ack: int, window: int, end: int, size: int, push: bool,
    ) -> None:  # fmt: skip
        self.first = packet
        self.ip_length = ip_length
        self.header_end = header_end
        self.flow = flow
        self.ip_same = ip_same
        self.ack = ack
        self.window = window
        self.options = packet[ip_length + 20 : header_end]
        self.size = size
        self.total = size
        self.next_seq = end
        self.payloads: list[bytes | memoryview] = []
        self.push = push
        self.closed = push


class Coalescer:
    """Merge each batch's TCP segments before ``core`` sees them (see the module docstring).

    ``verify``: check each segment's TCP checksum before merging it (the core's
    own setting; off when the link hands over partial checksums).
    :meth:`statistics` counts merged segments (``merged``) and the segments they
    held (``segments_merged``).
    """

    __slots__ = ("_core", "_merge", "_verify", "acks_thinned", "merged", "segments_merged")

    def __init__(self, core: StackCore, *, verify: bool = True, merge: bool = True) -> None:
        self._core = core
        self._verify = verify
        #: False on a link whose kernel merged the data already (receive offload): then
        #: only pure ACKs are thinned (:meth:`thin_acks`).
        self._merge = merge
        #: Merged segments handed to the core, and the received segments they held.
        self.merged = 0
        self.segments_merged = 0
        #: Pure ACKs left out because a newer one of their run stands for them.
        self.acks_thinned = 0

    def statistics(self) -> dict[str, int]:
        """``merged`` segments built from ``segments_merged`` received ones, and the pure
        ACKs left out (``acks_thinned``)."""
        return {
            "merged": self.merged,
            "segments_merged": self.segments_merged,
            "acks_thinned": self.acks_thinned,
        }

    def receive(
        self,
        packets: Sequence[bytes | memoryview],
        now: float,
        report: Callable[[str, Exception], None],
    ) -> None:
        """Feed ``packets`` (one batch from the link) to the core, runs merged.

        ``report(doing, error)`` hears of an exception the core raised (a bug); the
        rest of the batch is still delivered.
        """
        core = self._core
        receive = core.receive_packet
        items: Sequence[_Item]
        if self._merge:
            items = self.coalesce(packets)
        elif len(packets) >= _THINNABLE_RUN:
            items = self.thin_acks(packets)
        else:
            items = packets
        for item in items:
            try:
                if item.__class__ is MergedSegment:
                    self._deliver(item, now)
                else:
                    receive(item, now)  # type: ignore[arg-type]
            except Exception as error:  # a core bug must not lose the rest of the batch
                report("receiving a packet", error)

    def _deliver(self, item: MergedSegment, now: float) -> None:
        core = self._core
        verify = core.verify_transport_checksums
        core.verify_transport_checksums = False  # each piece was verified before merging
        try:
            core.receive_packet(item.packet, now)
        finally:
            core.verify_transport_checksums = verify

    def coalesce(self, packets: Sequence[bytes | memoryview]) -> list[_Item]:
        """The batch with each run of mergeable segments replaced by one :class:`MergedSegment`
        and runs of pure ACKs thinned.

        Order is kept: a merged segment stands where its run's first segment was. The
        work is ``core/_gro.c``'s when it was built (``ACCELERATED``), and otherwise
        :meth:`coalesce_python`'s: the same items (packets passed on as the same
        objects) and the same counts.
        """
        if _native_coalesce is None:
            return self.coalesce_python(packets)
        out, merged, segments_merged, acks_thinned = _native_coalesce(
            packets, self._verify, MergedSegment
        )
        self.merged += merged
        self.segments_merged += segments_merged
        self.acks_thinned += acks_thinned
        return out  # type: ignore[return-value]

    def coalesce_python(self, packets: Sequence[bytes | memoryview]) -> list[_Item]:
        """:meth:`coalesce` in Python: the reference for ``core/_gro.c``."""
        out: list[_Item] = []
        append = out.append
        run: _Run | None = None
        verify = self._verify
        #: Where each flow's last data segment in this batch ended (runs not included).
        ends: dict[bytes, int] = {}
        #: Per flow, its run of pure ACKs still open: [slot in out, ack, seq, TCP header
        #: length, whether the slot holds a thinnable ACK (the run's second or later)].
        acks: dict[bytes, list[int]] = {}
        for packet in packets:
            length = len(packet)
            shape = _ip_shape(packet, length)
            if shape is None:
                self._close(run, ends, append)
                run = None
                acks.clear()  # a packet of no known TCP flow ends every run of ACKs
                append(packet)
                continue
            ip_length, ip_same, addresses = shape
            # -- TCP -----------------------------------------------------------------
            ports, seq, ack, data_offset, flags, window = _TCP.unpack_from(packet, ip_length)
            header_end = ip_length + (data_offset >> 4) * 4
            size = length - header_end
            flow = addresses + ports
            if (
                size == 0
                and flags == ACK
                and data_offset & 0x0F == 0
                and _plain_ack_options(packet, ip_length, header_end - ip_length)
                and (not verify or _checksums_ok(packet, ip_length, addresses))
            ):
                self._close(run, ends, append)
                run = None
                self._thin(packet, flow, seq, ack, header_end - ip_length, out, acks)
                continue
            acks.pop(flow, None)  # anything else of the flow ends its run of ACKs
            if (
                size <= 0
                or header_end < ip_length + 20
                or flags & ~PSH != ACK
                or data_offset & 0x0F  # reserved bits (AccECN's AE): not ours to merge
            ):
                self._close(run, ends, append)
                run = None
                append(packet)
                continue
            if verify and not _checksums_ok(packet, ip_length, addresses):
                self._close(run, ends, append)
                run = None
                append(packet)  # the core drops it and counts it
                continue
            end = (seq + size) & _SEQ_MASK
            push = flags != ACK
            if run is not None and run.flow == flow:
                if run.next_seq != seq:  # behind or ahead of the flow's last segment: alone
                    self._close(run, ends, append)
                    run = None
                    ends[flow] = end
                    append(packet)
                    continue
                if (
                    not run.closed
                    and run.ip_same == ip_same
                    and run.ack == ack
                    and run.window == window
                    and size <= run.size
                    and run.header_end + run.total + size - (ip_length - 20) <= _MAX_LENGTH
                    and run.options == packet[ip_length + 20 : header_end]
                ):
                    run.payloads.append(packet[header_end:])
                    run.total += size
                    run.next_seq = end
                    if push or size < run.size:
                        run.push = push
                        run.closed = True
                    continue
            elif ends.get(flow, seq) != seq:
                self._close(run, ends, append)
                run = None
                ends[flow] = end
                append(packet)
                continue
            self._close(run, ends, append)
            run = _Run(packet, ip_length, header_end, flow, ip_same, ack, window, end, size, push)
        if run is not None:
            self._flush(run, append)
        return out

    def thin_acks(self, packets: Sequence[bytes | memoryview]) -> list[_Item]:
        """The batch with its runs of pure ACKs thinned and nothing merged: the pass for a
        link whose kernel merged the data already. It looks into pure-ACK-sized packets
        only; any other packet ends every run (fewer thinned, never a wrong one).

        ``core/_gro.c``'s when built (``ACCELERATED``), else :meth:`thin_acks_python`'s:
        the same items (the same objects) and the same count."""
        if _native_thin_acks is None:
            return self.thin_acks_python(packets)
        out, _, _, acks_thinned = _native_thin_acks(packets, self._verify)
        self.acks_thinned += acks_thinned
        return out  # type: ignore[return-value]

    def thin_acks_python(self, packets: Sequence[bytes | memoryview]) -> list[_Item]:
        """:meth:`thin_acks` in Python: the reference for ``core/_gro.c``."""
        out: list[_Item] = []
        append = out.append
        acks: dict[bytes, list[int]] = {}
        verify = self._verify
        for packet in packets:
            length = len(packet)
            if length in _PURE_ACK_LENGTHS_4 and packet[33] == ACK:  # the flags: cheapest
                first, total, fragment, protocol, addresses, ports, seq, ack, offset = (
                    _ACK4.unpack_from(packet)
                )
                if (
                    first == 0x45
                    and protocol == _IPPROTO_TCP
                    and total == length
                    and not fragment & _FRAGMENT_FIELD
                    and offset == (length - 20) << 2  # header to the end; reserved bits 0
                    and (length == 40 or packet[40:44] == TIMESTAMP_PREFIX)
                    and not word_sum(packet[:20]) % _MASK  # RFC 791 §3.1
                    and (not verify or _checksums_ok(packet, 20, addresses))
                ):
                    self._thin(packet, addresses + ports, seq, ack, length - 20, out, acks)
                    continue
            elif (
                length in _PURE_ACK_LENGTHS_6
                and packet[0] >> 4 == 6
                and self._thinned6(packet, length, out, acks)
            ):
                continue
            if acks:
                acks.clear()
            append(packet)
        return out

    def _thinned6(
        self,
        packet: bytes | memoryview,
        length: int,
        out: list[_Item],
        acks: dict[bytes, list[int]],
    ) -> bool:
        """:meth:`thin_acks` for a pure-ACK-sized IPv6 packet: True when it was a plain pure
        ACK (TCP the first next header, no options but the timestamps, checksum right)
        and went out or stood in for an older one."""
        if not (packet[53] == ACK and packet[6] == _IPPROTO_TCP
                and (packet[4] << 8 | packet[5]) + 40 == length):  # fmt: skip
            return False
        ports, seq, ack, data_offset, _, _ = _TCP.unpack_from(packet, 40)
        if (
            40 + (data_offset >> 4) * 4 != length  # payload
            or data_offset & 0x0F
            or not _plain_ack_options(packet, 40, length - 40)
        ):
            return False
        addresses = bytes(packet[8:40])
        if self._verify and not _checksums_ok(packet, 40, addresses):
            return False
        self._thin(packet, addresses + ports, seq, ack, length - 40, out, acks)
        return True

    def _thin(  # noqa: PLR0917
        self,
        packet: bytes | memoryview,
        flow: bytes,
        seq: int,
        ack: int,
        tcp_length: int,
        out: list[_Item],
        acks: dict[bytes, list[int]],
    ) -> None:
        """Put out a pure ACK, or let it replace the newest one of its run (see the
        module docstring): the run's first ACK always stays."""
        state = acks.get(flow)
        if state is not None:
            slot, last_ack, last_seq, last_length, thinnable = state
            if seq == last_seq and tcp_length == last_length and seq_lt(last_ack, ack):
                if thinnable:
                    out[slot] = packet  # no packet of this flow since: same place in order
                    state[1] = ack
                    self.acks_thinned += 1
                    return
                acks[flow] = [len(out), ack, seq, tcp_length, 1]
                out.append(packet)
                return
        acks[flow] = [len(out), ack, seq, tcp_length, 0]
        out.append(packet)

    def _close(
        self,
        run: _Run | None,
        ends: dict[bytes, int],
        append: Callable[[_Item], None],
    ) -> None:
        """Put out ``run`` (if any), remembering where its flow's data ended."""
        if run is not None:
            ends[run.flow] = run.next_seq
            self._flush(run, append)

    def _flush(self, run: _Run, append: Callable[[_Item], None]) -> None:
        """Put ``run`` out: its first packet as it is, or the merged segment."""
        payloads = run.payloads
        first = run.first
        if not payloads:
            append(first)
            return
        ip_length = run.ip_length
        header = bytearray(first[: run.header_end])
        if ip_length == 20:
            total = run.header_end + run.total
            header[2] = total >> 8
            header[3] = total & 0xFF
            header[10] = header[11] = 0
            checksum = ~ones_complement_sum(header[:20]) & _MASK
            header[10] = checksum >> 8
            header[11] = checksum & 0xFF
        else:
            payload_length = run.header_end - 40 + run.total
            header[4] = payload_length >> 8
            header[5] = payload_length & 0xFF
        if run.push:
            header[ip_length + 13] |= PSH
        packet = b"".join((header, first[run.header_end :], *payloads))
        count = len(payloads) + 1
        self.merged += 1
        self.segments_merged += count
        append(MergedSegment(packet, count))


def _ip_shape(packet: bytes | memoryview, length: int) -> tuple[int, int, bytes] | None:
    """The IP header of a packet a run may take, or None: IPv4 without options or
    fragmentation, or IPv6 with TCP as the first next header, either carrying TCP and
    exactly as long as its length field says. Returns the header length, the fields a
    run must share (TOS, DF, TTL; or version, traffic class, flow label, hop limit)
    and the two addresses."""
    if length < 40:
        return None
    first = packet[0]
    if first == 0x45:
        _, tos, total, _, fragment, ttl, protocol, _, addresses = _IPV4.unpack_from(packet)
        if protocol != _IPPROTO_TCP or fragment & ipv4.FRAGMENT_BITS or total != length:
            return None
        return 20, tos << 24 | fragment << 8 | ttl, addresses
    if first >> 4 == 6 and length >= 60:
        if packet[6] != _IPPROTO_TCP or (packet[4] << 8 | packet[5]) + 40 != length:
            return None
        return 40, int.from_bytes(packet[0:4], "big") << 8 | packet[7], bytes(packet[8:40])
    return None


def _plain_ack_options(packet: bytes | memoryview, ip_length: int, tcp_length: int) -> bool:
    """No TCP options, or the timestamps alone (NOP NOP TS, RFC 7323 §3): an ACK with
    SACK blocks (RFC 2018) carries what a newer one may not repeat, so it stays."""
    if tcp_length == 20:
        return True
    start = ip_length + 20
    return tcp_length == 32 and packet[start : start + 4] == TIMESTAMP_PREFIX


def _checksums_ok(packet: bytes | memoryview, ip_length: int, addresses: bytes) -> bool:
    """The IPv4 header checksum (RFC 791 §3.1) and the TCP checksum (RFC 9293 §3.1).

    Word sums (wire/checksum.py) taken modulo 0xFFFF: a correct header or segment
    (with its pseudo-header) sums to a non-zero multiple. For IPv4 the TCP sum is
    taken over the whole packet, whose correct IP header adds a multiple of 0xFFFF,
    so no slice of the payload is made.
    """
    if ip_length == 20:
        if word_sum(packet[:20]) % _MASK:
            return False
        value = word_sum(packet)
    else:
        value = word_sum(memoryview(packet)[40:])
    value += int.from_bytes(addresses, "big") + _IPPROTO_TCP + len(packet) - ip_length
    return value % _MASK == 0

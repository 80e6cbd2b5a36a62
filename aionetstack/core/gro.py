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

from collections.abc import Callable
from typing import Final

from ..wire.checksum import ones_complement_sum
from .stack import StackCore

__all__ = ["Coalescer", "MergedSegment"]

_IPPROTO_TCP: Final = 6
#: RFC 9293 §3.1 control bits: a run takes only ACK, with PSH on its last segment.
_ACK: Final = 0x10
_PSH: Final = 0x08
_ACK_PSH: Final = _ACK | _PSH
#: The largest IPv4 total length and IPv6 payload length (RFC 791 §3.1, RFC 8200 §3).
_MAX_LENGTH: Final = 0xFFFF
_MASK: Final = 0xFFFF


class MergedSegment:
    """A packet built from ``count`` segments whose checksums were each verified."""

    __slots__ = ("count", "packet")

    def __init__(self, packet: bytes, count: int) -> None:
        self.packet = packet
        self.count = count


class _Run:
    """The segments merged so far (see the module docstring)."""

    __slots__ = (
        "closed",
        "first",
        "flow",
        "header_end",
        "ip_length",
        "next_seq",
        "payloads",
        "push",
        "same",
        "size",
        "total",
        "version",
    )

    def __init__(  # noqa: PLR0917
        self, packet: bytes, version: int, ip_length: int, header_end: int, flow: bytes,
        same: bytes, seq: int, size: int, push: bool,
    ) -> None:  # fmt: skip
        self.first = packet
        self.version = version
        self.ip_length = ip_length
        self.header_end = header_end
        self.flow = flow
        self.same = same
        self.size = size
        self.total = size
        self.next_seq = (seq + size) & 0xFFFFFFFF
        self.payloads: list[bytes] = []
        self.push = push
        self.closed = push


class Coalescer:
    """Merge each batch's TCP segments before ``core`` sees them (see the module docstring).

    ``verify``: check each segment's TCP checksum before merging it (the core's
    own setting; off when the link hands over partial checksums).
    :meth:`statistics` counts merged segments (``merged``) and the segments they
    held (``segments_merged``).
    """

    __slots__ = ("_core", "_verify", "merged", "segments_merged")

    def __init__(self, core: StackCore, *, verify: bool = True) -> None:
        self._core = core
        self._verify = verify
        #: Merged segments handed to the core, and the received segments they held.
        self.merged = 0
        self.segments_merged = 0

    def statistics(self) -> dict[str, int]:
        """``merged`` segments built from ``segments_merged`` received ones."""
        return {"merged": self.merged, "segments_merged": self.segments_merged}

    def receive(
        self, packets: list[bytes], now: float, report: Callable[[str, Exception], None]
    ) -> None:
        """Feed ``packets`` (one batch from the link) to the core, runs merged.

        ``report(doing, error)`` hears of an exception the core raised (a bug); the
        rest of the batch is still delivered.
        """
        core = self._core
        receive = core.receive_packet
        for item in self.coalesce(packets):
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

    def coalesce(self, packets: list[bytes]) -> list[bytes | MergedSegment]:
        """The batch with each run of mergeable segments replaced by one :class:`MergedSegment`.

        Order is kept: a merged segment stands where its run's first segment was.
        """
        out: list[bytes | MergedSegment] = []
        append = out.append
        run: _Run | None = None
        verify = self._verify
        #: Where each flow's last data segment in this batch ended.
        ends: dict[bytes, int] = {}
        for packet in packets:
            length = len(packet)
            first = packet[0] if length else 0
            # -- IP: the only shapes a run takes -----------------------------------
            if first == 0x45 and length >= 40:
                if (
                    packet[9] != _IPPROTO_TCP
                    or packet[6] & 0x3F  # MF or a fragment offset
                    or packet[7]
                    or (packet[2] << 8 | packet[3]) != length
                ):
                    self._flush(run, append)
                    run = None
                    append(packet)
                    continue
                ip_length = 20
                flow = packet[12:24]  # addresses, ports
                # TOS, the flags byte (DF), TTL: must not change within a run.
                ip_same = packet[1:2] + packet[6:7] + packet[8:9]
            elif first >> 4 == 6 and length >= 60:
                if packet[6] != _IPPROTO_TCP or (packet[4] << 8 | packet[5]) + 40 != length:
                    self._flush(run, append)
                    run = None
                    append(packet)
                    continue
                ip_length = 40
                flow = packet[8:44]
                ip_same = packet[0:4] + packet[7:8]  # traffic class, flow label, hop limit
            else:
                self._flush(run, append)
                run = None
                append(packet)
                continue
            # -- TCP -----------------------------------------------------------------
            data_offset = packet[ip_length + 12]
            header_end = ip_length + (data_offset >> 4) * 4
            flags = packet[ip_length + 13]
            size = length - header_end
            if (
                size <= 0
                or header_end < ip_length + 20
                or flags & ~_PSH != _ACK
                or data_offset & 0x0F  # reserved bits (AccECN's AE): not ours to merge
            ):
                self._flush(run, append)
                run = None
                append(packet)
                continue
            if verify:
                pseudo = int.from_bytes(flow[:-4], "big") + _IPPROTO_TCP + (length - ip_length)
                if ones_complement_sum(memoryview(packet)[ip_length:], pseudo) != _MASK:
                    self._flush(run, append)  # the core drops and counts it
                    run = None
                    append(packet)
                    continue
            seq = int.from_bytes(packet[ip_length + 4 : ip_length + 8], "big")
            # ack, data offset, window, urgent pointer and options: all must match.
            same = (
                ip_same
                + packet[ip_length + 8 : ip_length + 13]
                + packet[ip_length + 14 : ip_length + 16]
                + packet[ip_length + 18 : header_end]
            )
            push = bool(flags & _PSH)
            end = (seq + size) & 0xFFFFFFFF
            expected = ends.get(flow, seq)
            ends[flow] = end
            if expected != seq:  # behind or ahead of the flow's last segment: alone
                self._flush(run, append)
                run = None
                append(packet)
                continue
            if (
                run is not None
                and not run.closed
                and run.flow == flow
                and run.same == same
                and run.next_seq == seq
                and size <= run.size
                and run.header_end + run.total + size - (40 if ip_length == 40 else 0)
                <= _MAX_LENGTH
            ):
                run.payloads.append(packet[header_end:])
                run.total += size
                run.next_seq = end
                if push or size < run.size:
                    run.push = push
                    run.closed = True
                continue
            self._flush(run, append)
            run = _Run(packet, first >> 4, ip_length, header_end, flow, same, seq, size, push)
        self._flush(run, append)
        return out

    def _flush(self, run: _Run | None, append: Callable[[bytes | MergedSegment], None]) -> None:
        """Put ``run`` out: its first packet as it is, or the merged segment."""
        if run is None:
            return
        payloads = run.payloads
        first = run.first
        if not payloads:
            append(first)
            return
        ip_length = run.ip_length
        header = bytearray(first[: run.header_end])
        if run.version == 4:
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
            header[ip_length + 13] |= _PSH
        packet = b"".join((header, first[run.header_end :], *payloads))
        count = len(payloads) + 1
        self.merged += 1
        self.segments_merged += count
        append(MergedSegment(packet, count))

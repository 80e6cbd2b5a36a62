"""One segment out of the TCB: the window field (receiver SWS avoidance, RFC 9293
§3.8.6.2.2; RFC 7323 scaling), the header with its timestamp (RFC 7323) and SACK
(RFC 2018) options, the checksum or the partial sum a device completes, and the
hand-down to the layer (TSO super-segments cut by the device).
"""

from __future__ import annotations

import struct
from typing import Final

from ...wire.checksum import ones_complement_sum
from ...wire.tcp import ACK, HEADER, PSH, RST
from ...wire.tcp_send import TIMESTAMP_HEADER_LENGTH, timestamp_header
from ..output import EmittedSegment
from .options import MAX_WINDOW_FIELD
from .shared import shared
from .tcb import _SEQ_MASK, _TS_OPTION_LENGTH, TS_HZ
from .timers import _Timers

#: A header with the timestamp option alone (RFC 7323 Appendix A layout): 20 + 12 bytes.
_TS_HEADER_LENGTH: Final = TIMESTAMP_HEADER_LENGTH
_SACK_EDGE: Final = struct.Struct("!II")


def _joined(parts: tuple[bytes | memoryview, ...]) -> bytes | memoryview:
    """The payload pieces as one buffer (no copy of a single piece)."""
    if len(parts) == 1:
        return parts[0]
    return b"".join(parts) if parts else b""


class _Egress(_Timers):
    """The egress part of :class:`~.connection.TcpConnection` (see the module docstring)."""

    __slots__ = ()

    def _advertised_window_field(self, *, initial: bool = False) -> int:
        """The window field: right edge never moves left (RFC 9293 §3.8.6.2.2 / RFC 7323 §2.4),
        and only moves right by at least min(RCV.BUFF/2, MSS) (receiver SWS avoidance)."""
        limit = self._rbuf_limit
        free = limit - self._rbuf.size
        candidate = self._rcv_off + free if free > 0 else self._rcv_off
        advertised = self._rcv_adv
        half = limit // 2
        threshold = half if half < self._rcv_mss else self._rcv_mss
        if (initial or candidate - advertised >= threshold) and candidate > advertised:
            if self._layer.memory_pressure and not initial:
                # Over the stack's memory_limit (Linux tcp_mem): the right edge stays put
                # until buffers drain; the peer may send only what it already may.
                self._layer.count("receive_window_held_memory_pressure")
                edge = advertised
            else:
                edge = candidate
        else:
            edge = advertised
        scale = self._rcv_wscale
        field = (edge - self._rcv_off + (1 << scale) - 1) >> scale
        return field if field < MAX_WINDOW_FIELD else MAX_WINDOW_FIELD

    def _window_to_send(self) -> int:
        """The window field of a segment about to leave, its right edge recorded."""
        window = self._advertised_window_field()
        offered = window << self._rcv_wscale
        edge = self._rcv_off + offered
        if edge > self._rcv_adv:
            self._rcv_adv = edge
            if offered > self._rcv_wnd_max:  # rare: it only grows (one value for all)
                self._rcv_wnd_max = shared(offered)
        return window

    def _emit_burst(self, bounds: list[int], now: float) -> None:
        """Emit new-data segments, ``bounds`` holding each one's start and end offsets in
        turn: the bulk path (``send.py``, ``_bursts``: partial checksums, the timestamp
        option alone, no FIN, outside recovery). The segments share their window field,
        timestamps and ACK; each is what :meth:`_emit` would build, handed down together.
        """
        window = self._window_to_send()
        ack = self._rcv_nxt
        tsval = (int(now * TS_HZ) + self._ts_offset) & _SEQ_MASK
        tsecr = self._ts_recent
        pack = timestamp_header
        view_parts = self._sbuf.view_parts
        sbuf_start = self._sbuf_start
        data_end = sbuf_start + self._sbuf.size
        iss = self._iss
        local_port = self.local_port
        remote_port = self.remote_port
        pseudo_sum = self._pseudo_sum + _TS_HEADER_LENGTH
        mss = self._snd_mss  # the timestamp header is the one TSO's segment size assumes
        segments: list[EmittedSegment] = []
        for index in range(0, len(bounds), 2):
            start = bounds[index]
            end = bounds[index + 1]
            length = end - start
            header = pack(
                local_port, remote_port, (iss + start) & _SEQ_MASK, ack,
                ACK | PSH if end == data_end else ACK, window,
                (pseudo_sum + length) % 0xFFFF or 0xFFFF, tsval, tsecr,
            )  # fmt: skip
            segments.append(
                (header, mss if length > mss else 0, view_parts(start - sbuf_start, length), length)
            )
        self._ack_now = False
        self._delack_deadline = None
        self._bytes_since_ack = 0
        layer = self._layer
        layer.segments_out += len(segments)
        layer.output.emit_many(self.local_address, self.remote_address, segments)

    def _emit(  # noqa: PLR0917
        self,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        options: bytes | None,
        now: float,
        parts: tuple[bytes | memoryview, ...] = (),
        payload_length: int = 0,
    ) -> None:
        """Build one segment (window -1: compute it; options None: TS/SACK as negotiated).

        The payload is ``parts`` (``payload_length`` bytes in all): handed down as they
        are with partial checksums, joined otherwise.
        """
        if window < 0:
            window = self._window_to_send()
        if options is None:
            blocks = (
                self._sack_block_budget(payload_length)
                if self._sack_ok and self._ooo and flags & ACK
                else 0
            )
            if self._ts_ok and not flags & RST:
                if blocks:
                    options = self._ts_and_sack_options(now, blocks)
                else:
                    partial = self._layer.partial_checksums
                    # Packed at once: the partial sum needs no other header field. It is
                    # _partial_checksum inlined (never 0: the pseudo-header holds the
                    # protocol), as is _ts_now: this is the path of every data segment.
                    header = timestamp_header(
                        self.local_port,
                        self.remote_port,
                        seq,
                        ack,
                        flags,
                        window,
                        (self._pseudo_sum + _TS_HEADER_LENGTH + payload_length) % 0xFFFF or 0xFFFF
                        if partial
                        else 0,
                        (int(now * TS_HZ) + self._ts_offset) & _SEQ_MASK,
                        self._ts_recent,
                    )
                    if partial:
                        # The payload (views of the send buffer) follows the header to
                        # the link as it is: no 64 KB copy (OffloadedPacket.tail).
                        self._hand_down(header, _TS_HEADER_LENGTH, payload_length, flags, parts)
                        return
                    self._finish_segment(header, _joined(parts), flags)
                    return
            elif blocks:
                options = self._sack_options(blocks)
            else:
                options = b""
        header = (
            HEADER.pack(
                self.local_port,
                self.remote_port,
                seq,
                ack,
                (20 + len(options)) << 2,
                flags,
                window,
                0,
                0,
            )
            + options
        )
        self._finish_segment(header, _joined(parts), flags)

    def _finish_segment(self, header: bytes, payload: bytes | memoryview, flags: int) -> None:
        """Fill in the checksum and hand the segment to the IP layer.

        With ``layer.partial_checksums`` the field holds only the folded pseudo-header
        sum (Linux CHECKSUM_PARTIAL), for links that complete it (TUN NEEDS_CSUM offload).
        """
        total = len(header) + len(payload)
        if self._layer.partial_checksums:
            checksum = self._partial_checksum(total)
            segment = header[:16] + checksum.to_bytes(2, "big") + header[18:]
            tail = (payload,) if payload else ()
            self._hand_down(segment, len(header), len(payload), flags, tail)
            return
        partial = self._pseudo_sum + total
        if payload:
            partial = ones_complement_sum(payload, partial)
        checksum = ~ones_complement_sum(header, partial) & 0xFFFF
        if payload:
            segment = b"".join((header[:16], checksum.to_bytes(2, "big"), header[18:], payload))
        else:
            segment = header[:16] + checksum.to_bytes(2, "big") + header[18:]
        self._hand_down(segment, len(header), len(payload), flags)

    def _partial_checksum(self, segment_length: int) -> int:
        """The folded pseudo-header sum that a checksum-offloading link completes."""
        return ones_complement_sum(b"", self._pseudo_sum + segment_length)

    def _hand_down(
        self,
        segment: bytes,
        header_length: int,
        payload_length: int,
        flags: int,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        """Account for a finished ``segment`` (followed by ``tail``: partial checksums only)."""
        if flags & ACK:
            self._ack_now = False
            self._delack_deadline = None
            self._bytes_since_ack = 0
        layer = self._layer
        layer.segments_out += 1
        if flags & RST:
            layer.count("resets_sent")
        if layer.partial_checksums:
            # A TSO super-segment is cut into pieces that each carry this header's options.
            extra = header_length - 20 - (_TS_OPTION_LENGTH if self._ts_ok else 0)
            size = self._snd_mss - extra if payload_length > self._snd_mss - extra else 0
            layer.output.emit(self.local_address, self.remote_address, segment, size, tail)
        else:
            layer.output.emit(self.local_address, self.remote_address, segment)

    def _sack_options(self, count: int) -> bytes:
        assert self._ooo is not None
        blocks = self._ooo.sack_blocks(count)
        base = self._rcv_base()
        out = bytearray((1, 1, 5, 2 + 8 * len(blocks)))
        for start, end in blocks:
            out += _SACK_EDGE.pack((base + start) & _SEQ_MASK, (base + end) & _SEQ_MASK)
        return bytes(out)

    def _ts_and_sack_options(self, now: float, count: int) -> bytes:
        ts = struct.pack("!BBBBII", 1, 1, 8, 10, self._ts_now(now), self._ts_recent)
        return ts + self._sack_options(count)

    def _sack_block_budget(self, payload_length: int) -> int:
        """How many SACK blocks this segment can carry (RFC 2018 §3: 4, or 3 beside TS).

        A segment of at most one MSS must stay within it with the blocks added
        (RFC 6691 §2: options come out of the payload): fewer blocks, or none, go
        on a full segment. A TSO super-segment keeps them; the device cuts it smaller.
        """
        assert self._ooo is not None
        count = min(self._ooo.range_count, 3 if self._ts_ok else 4)
        if payload_length and payload_length <= self._snd_mss:
            count = min(count, max((self._snd_mss - payload_length - 4) // 8, 0))
        return count

    def _sack_option_length(self) -> int:
        """Option bytes SACK blocks add to a segment we send now (0 without reordering)."""
        if not self._sack_ok or not self._ooo:
            return 0
        return 4 + 8 * min(self._ooo.range_count, 3 if self._ts_ok else 4)

    def _ts_now(self, now: float) -> int:
        """TSval: a 1 ms clock plus the per-connection offset (RFC 7323 §5.4)."""
        return (int(now * TS_HZ) + self._ts_offset) & _SEQ_MASK

    # -- path MTU (RFC 1191 §6.3, RFC 8201 §5.2) ---------------------------------------

    def path_mtu_changed(self, seq: int, mtu: int, now: float) -> None:
        """The path MTU went down to ``mtu`` after a segment with sequence ``seq``.

        The ICMP must quote a segment in flight (RFC 5927 §4.1). Segments now
        too large are marked lost and resent at the new size at once, as Linux's
        ``tcp_simple_retransmit`` does, without shrinking the congestion window:
        the drop was not congestion. With TSO the device cuts super-segments to
        the new size (``_hand_down``); without it a resent segment larger than
        the path is fragmented by IP until it is acknowledged.
        """
        layer = self._layer
        offset = self._ack_offset(seq)
        if not self._una <= offset <= self._nxt:
            layer.count("pmtu_out_of_window")
            return
        ip_header = 20 if len(self.remote_address) == 4 else 40
        overhead = ip_header + 20 + (_TS_OPTION_LENGTH if self._ts_ok else 0)
        mss = max(mtu - overhead, 64)
        if mss >= self._snd_mss:
            return
        self._snd_mss = mss
        self._cc.mss = mss
        layer.count("pmtu_mss_lowered")
        records = self._records
        loss = self._own_loss()
        marked = False
        for index in range(self._head, len(records)):
            record = records[index]
            if record.sacked or record.lost or record.end - record.start <= mss:
                continue
            record.lost = True
            loss.lost_bytes += record.end - record.start
            loss.retx_index = min(loss.retx_index, index)
            marked = True
        if not marked:
            return
        if self._recovery is None:
            self._recovery = "loss"
            loss.recover = self._nxt
        self._retransmit_lost(now)

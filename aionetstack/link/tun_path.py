"""The per-packet half of a TUN or TAP link: its reads, writes and their counters.

:class:`TunPath` is what the driver calls at every wake-up (``receive_batch``,
``send``, ``send_offloaded``); :class:`~.tun.TunLink`, which opens and configures the
device, is built on it. This module is compiled by mypyc (``aionetstack/compiled.py``),
so that a batch of reads or a write costs no interpreted frame; ``TunLink`` and
``TapLink`` stay interpreted subclasses. The system calls are ``link/_tunio.c``'s
(``link/tun_io.py``).
"""

from __future__ import annotations

import errno
import os
from typing import Final

from mypy_extensions import mypyc_attr

from ..errors import LinkGoneError
from ..wire.ipv4 import IPv4Header, build_ipv4
from ..wire.ipv6 import IPv6Header, build_ipv6
from ..wire.tcp import RST, build_tcp
from ..wire.vnet import VNET_HEADER_NONE
from .receive_pool import LEND_THRESHOLD, ReceivePool
from .segmentation import complete_checksum, cut_tcp_packets
from .tun_io import read_packet, write_offloaded, write_packet

__all__ = ["TunPath"]

#: Bytes read per batch at most (then the batch ends; the fd stays readable, so the
#: driver reads on after delivering what it has). A batch's data is next copied by the
#: application's reads (a stream's buffer, then the bytes it returns): kept to about half
#: a core's L2 cache, those copies read it from the cache. With no bound, ten connections'
#: uploads read about 50 super-packets (3 MB) per batch, and each copy out of them ran
#: at memory speed: measured, upload with ten CUBIC clients 1.13x with this bound
#: (docs/performance.md, "Upload (session 13)"). Packets of an MTU or less fill a
#: batch's packet limit first.
_BATCH_BYTES: Final = 512 * 1024

#: errno values of a TUN whose interface is down (measured: write EIO; reads find nothing).
_LINK_DOWN: Final = frozenset({errno.EIO, errno.ENETDOWN})
#: errno values of a TUN fd whose device was deleted (measured: read and write EBADFD,
#: poll reports POLLERR) or is otherwise unusable for good.
_LINK_GONE: Final = frozenset({errno.EBADFD, errno.ENODEV, errno.ENXIO, errno.EBADF})


@mypyc_attr(allow_interpreted_subclasses=True)
class TunPath:
    """The reads and writes of an open TUN (or TAP) fd, and their counters.

    Not made on its own: :class:`~.tun.TunLink`'s constructor opens the device and sets
    every attribute below. ``_skip`` is the virtio_net_hdr's length when offload is on
    (0 without); ``name`` is the interface's, for messages.
    """

    __slots__ = (
        "_closed",
        "_fd",
        "_link_header",
        "_pool",
        "_skip",
        "claimed_flows",
        "multi_queue",
        "name",
        "receive_errors",
        "received_bytes",
        "received_packets",
        "received_runts",
        "send_dropped",
        "send_link_down",
        "send_rejected",
        "sent_bytes",
        "sent_packets",
        "software_gso",
        "software_gso_packets",
        "software_gso_segments",
    )

    _closed: bool
    _fd: int
    #: Bytes of link framing before each IP packet sent (0 on a TUN; a TAP's Ethernet
    #: header, 14): where the virtio_net_hdr's offsets and software GSO start.
    _link_header: int
    _pool: ReceivePool
    _skip: int
    name: str
    multi_queue: bool
    software_gso: bool
    #: Counters (``TunLink.statistics``).
    sent_packets: int
    sent_bytes: int
    received_packets: int
    received_bytes: int
    received_runts: int
    send_dropped: int
    send_rejected: int
    #: Writes refused with EIO/ENETDOWN because the interface is down (dropped).
    send_link_down: int
    #: Reads that failed with EIO/ENETDOWN (the interface going down).
    receive_errors: int
    claimed_flows: int
    #: Super-packets cut (or only checksummed) in software, and the packets written for them.
    software_gso_packets: int
    software_gso_segments: int

    def fileno(self) -> int:
        """The TUN fd (non-blocking)."""
        self._check_open()
        return self._fd

    def receive_batch(self, limit: int, now: float) -> list[bytes | memoryview]:
        """Read up to ``limit`` packets, or :data:`_BATCH_BYTES` of them, until the device
        has none left (never blocks).

        A packet of ``LEND_THRESHOLD`` bytes or more comes as a view of the buffer it was
        read into, which is lent (``link/receive_pool.py``); smaller ones as ``bytes``.
        """
        self._check_open()
        read = read_packet
        fd = self._fd
        pool = self._pool
        buffer = pool.current
        view = pool.view
        skip = self._skip
        packets: list[bytes | memoryview] = []
        append = packets.append
        received_bytes = 0
        while len(packets) < limit and received_bytes < _BATCH_BYTES:
            try:
                size = read(fd, buffer)
            except OSError as exc:
                if exc.errno in _LINK_DOWN:
                    self.receive_errors += 1
                    break
                if exc.errno in _LINK_GONE:
                    raise self._gone(exc) from exc
                raise
            if not size:  # None: EAGAIN, the queue is empty
                break
            if size <= skip:
                self.received_runts += 1
                continue
            received_bytes += size - skip
            packet = view[skip:size]
            if size - skip >= LEND_THRESHOLD and pool.lend():
                append(packet)  # no copy: the buffer goes with the packet; read into another
                buffer = pool.current
                view = pool.view
            else:  # small, or every buffer is held by unread data: copied out
                append(packet.tobytes())
        self.received_packets += len(packets)
        self.received_bytes += received_bytes
        return packets

    def send(self, packet: bytes | bytearray | memoryview, now: float) -> None:
        """Write one IP packet; a full queue or a packet the kernel rejects is a counted drop."""
        self._check_open()
        if self.multi_queue:
            self._claim_flow(packet)
        self._write(VNET_HEADER_NONE if self._skip else None, packet)

    def _write(
        self,
        header: bytes | None,
        packet: bytes | bytearray | memoryview,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        """Write ``packet`` (behind a virtio_net_hdr when offload is on, ``tail`` after it)
        in one system call; count its bytes (the header's not), never block."""
        try:
            written = write_packet(self._fd, header, packet, tail)
        except OSError as exc:
            self._write_failed(exc)
            return
        self.sent_packets += 1
        self.sent_bytes += written

    def _write_failed(self, exc: OSError) -> None:
        """Count a failed write as its cause; raise only when the device is gone (or for
        an error no device should give)."""
        if isinstance(exc, BlockingIOError) or exc.errno == errno.ENOBUFS:
            self.send_dropped += 1  # the queue is full
        elif exc.errno == errno.EINVAL:  # not an IP packet, or malformed vnet header
            self.send_rejected += 1
        elif exc.errno in _LINK_DOWN:  # the interface is down: like a NIC without carrier
            self.send_link_down += 1
        elif exc.errno in _LINK_GONE:
            raise self._gone(exc) from exc
        else:
            raise exc

    def send_offloaded(
        self,
        packet: bytes | bytearray | memoryview,
        segment_size: int,
        now: float,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        """Write a partial-checksum TCP/UDP packet; the kernel completes (and segments) it.

        A TCP packet longer than the MTU goes as one GSO super-packet cut into
        ``segment_size``-byte segments. ``tail``: the rest of the packet's bytes
        (payload views), gathered by ``writev``. On a TAP, ``packet`` is the frame:
        its Ethernet header, then the IP packet's headers. Without offload, software GSO
        does the device's work (``software_gso``, else ValueError). A packet that is not
        TCP or UDP over IP is a counted drop (``send_rejected``).
        """
        if not self._skip:
            if not self.software_gso:
                kind = "TAP" if self._link_header else "TUN"
                raise ValueError(f"{kind} {self.name} was opened without offload")
            self._send_segmented(packet, segment_size, tail, self._link_header)
            return
        if self._closed:
            self._check_open()  # raises
        if self.multi_queue:
            self._claim_flow(packet)
        try:
            # A non-zero segment_size means the payload exceeds one segment (the core sets
            # it so), even when the packet would fit the device's MTU: after a path MTU
            # drop a 1,500-byte retransmission must still be cut (RFC 1191 §6.3).
            written = write_offloaded(self._fd, packet, segment_size, tail, self._link_header)
        except ValueError:  # not a packet the device can complete
            self.send_rejected += 1
            return
        except OSError as exc:
            self._write_failed(exc)
            return
        self.sent_packets += 1
        self.sent_bytes += written

    def _send_segmented(
        self,
        packet: bytes | bytearray | memoryview,
        segment_size: int,
        tail: tuple[bytes | memoryview, ...],
        offset: int,
    ) -> None:
        """Software GSO: complete the checksum of a partial-checksum packet whose IP header
        starts at ``offset`` (a TCP one with ``segment_size`` > 0: cut into pieces of at
        most that much payload) and write it, or each piece."""
        self._check_open()
        if self.multi_queue:
            self._claim_flow(packet)
        self.software_gso_packets += 1
        try:
            if segment_size > 0:  # cut by segment_size, not the MTU: a lowered path MTU
                pieces = cut_tcp_packets(packet, segment_size, tail, offset)
                self.software_gso_segments += len(pieces)
                fd = self._fd
                write = os.write
                sent = written = 0
                try:
                    for piece in pieces:
                        try:
                            written += write(fd, piece)
                        except OSError as exc:
                            self._write_failed(exc)
                        else:
                            sent += 1
                finally:
                    self.sent_packets += sent
                    self.sent_bytes += written
                return
            whole = complete_checksum(packet, tail, offset)
        except (IndexError, ValueError):
            self.send_rejected += 1
            return
        self.software_gso_segments += 1
        self._write(None, whole)

    def _claim_flow(self, packet: bytes | bytearray | memoryview) -> None:
        """Before an active open's SYN, make the kernel steer the flow to this queue.

        The kernel records a flow's queue only after it has processed a packet
        written on that queue, and it answers a SYN within that same ``write``:
        left alone, the SYN-ACK is steered by hash and may reach another worker.
        So a SYN (without ACK) is preceded by an RST of the same flow, which the
        kernel discards without an answer (RFC 9293 §3.10.7.1: an RST is never
        answered; a listener drops it, RFC 9293 §3.10.7.2) but records the flow.
        """
        primer = _flow_primer(packet)
        if primer is not None:
            self.claimed_flows += 1
            self._write(VNET_HEADER_NONE if self._skip else None, primer)

    def _gone(self, exc: OSError) -> LinkGoneError:
        return LinkGoneError(
            exc.errno, f"TUN {self.name} is gone (deleted while in use?): {exc.strerror}"
        )

    def get_timer(self) -> float | None:
        """Always None: the device never holds packets back on a timer."""
        return None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"I/O operation on a closed TunLink ({self.name})")


#: The IP protocol numbers of TCP and UDP (IANA; RFC 9293 §3.1, RFC 768).
_IPPROTO_TCP: Final = 6
_TCP_SYN: Final = 0x02
_TCP_ACK: Final = 0x10


def _flow_primer(packet: bytes | bytearray | memoryview) -> bytes | None:
    """For a TCP SYN without ACK: an RST of the same flow (checksums complete); else None."""
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 40 and packet[9] == _IPPROTO_TCP:
        start = (packet[0] & 0x0F) * 4
        source, destination = bytes(packet[12:16]), bytes(packet[16:20])
    elif version == 6 and len(packet) >= 60 and packet[6] == _IPPROTO_TCP:
        start = 40
        source, destination = bytes(packet[8:24]), bytes(packet[24:40])
    else:
        return None
    if len(packet) < start + 20 or packet[start + 13] & (_TCP_SYN | _TCP_ACK) != _TCP_SYN:
        return None
    ports_and_seq = bytes(packet[start : start + 8])
    segment = build_tcp(
        int.from_bytes(ports_and_seq[0:2], "big"), int.from_bytes(ports_and_seq[2:4], "big"),
        int.from_bytes(ports_and_seq[4:8], "big"), 0, RST, 0,
        source=source, destination=destination,
    )  # fmt: skip
    if version == 4:
        return build_ipv4(IPv4Header(source, destination, _IPPROTO_TCP), segment)
    return build_ipv6(IPv6Header(source, destination, _IPPROTO_TCP), segment)

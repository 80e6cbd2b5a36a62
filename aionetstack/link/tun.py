"""A Linux TUN device as a :class:`~aionetstack.link.base.Link` (IP packets, no framing).

``TunLink`` opens ``/dev/net/tun`` through python-pytun with
``IFF_TUN | IFF_NO_PI``. It attaches to a device that already exists (an
unprivileged user may attach to a TUN created for them with
``ip tuntap add mode tun user NAME``) or, with CAP_NET_ADMIN, creates one and
configures the kernel side (address, MTU, up).

By default (``offload=True``) the device also gets ``IFF_VNET_HDR`` and
``TUNSETOFFLOAD``: the kernel then hands over 64 KB TCP/UDP segments whose
checksums hold only the pseudo-header sum (``receive_checksums_partial``), and
every packet both ways carries a 10-byte virtio_net_hdr, which this class strips
on receive and prepends (all zero: nothing to do) on send. A kernel that refuses
``TUNSETOFFLOAD`` leaves the link working without it: the fallback is logged
and shown by ``offload_status``, ``repr()`` and ``statistics()["offload"]``.

With ``multi_queue=True`` the device is (or must already be) a multi-queue TUN
(``IFF_MULTI_QUEUE``) and this link is one of its queues. Each process attaches
its own queue; the kernel picks a queue per flow (``tun_select_queue`` in
``drivers/net/tun.c``: a hash of the flow's addresses and ports, unless the flow
table remembers the queue that last *wrote* a packet of that flow, for up to
``TUN_FLOW_EXPIRE`` = 3 s after that write and for at most 4096 flows). So a
connection a worker opens comes back to it while that worker keeps sending on
it, and the ephemeral ports of workers must not overlap
(``StackConfig(ephemeral_ports=...)``). See docs/performance.md, "More than one core".
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import Final

import pytun

from ..errors import LinkGoneError
from ..wire.ipv4 import IPv4Header, build_ipv4
from ..wire.ipv6 import IPv6Header, build_ipv6
from ..wire.tcp import RST, build_tcp
from ..wire.vnet import (
    CSUM_OFFSET_TCP,
    CSUM_OFFSET_UDP,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VNET_HEADER_LENGTH,
    VNET_HEADER_NONE,
    VnetHeader,
    build_vnet_header,
)
from .receive_pool import LEND_THRESHOLD, ReceivePool
from .segmentation import complete_checksum, cut_tcp_packets
from .tun_device import (
    _MAX_MTU,
    TUN_F_CSUM,
    TUN_F_TSO4,
    TUN_F_TSO6,
    TUN_F_TSO_ECN,
    TUN_F_USO4,
    TUN_F_USO6,
    TUNSETOFFLOAD,
    _check_mtu,
    _check_name,
    _configure,
    _decode_name,
    _interface_exists,
    _negotiate_offload,
    _open_device,
    _parse_kernel_addresses,
    _set_nonblocking,
)
from .tun_io import read_packet, write_packet

__all__ = [
    "TUNSETOFFLOAD",
    "TUN_F_CSUM",
    "TUN_F_TSO4",
    "TUN_F_TSO6",
    "TUN_F_TSO_ECN",
    "TUN_F_USO4",
    "TUN_F_USO6",
    "TunLink",
]


_TUN_DEVICE: Final = "/dev/net/tun"
#: One receive buffer for the largest packet the device can hand over (a 64 KB
#: GSO segment plus its virtio_net_hdr); allocated once (limits.md §2, §3).
#: errno values of a TUN whose interface is down (measured: write EIO; reads find nothing).
_LINK_DOWN: Final = frozenset({errno.EIO, errno.ENETDOWN})
#: errno values of a TUN fd whose device was deleted (measured: read and write EBADFD,
#: poll reports POLLERR) or is otherwise unusable for good.
_LINK_GONE: Final = frozenset({errno.EBADFD, errno.ENODEV, errno.ENXIO, errno.EBADF})
_RECEIVE_BUFFER: Final = _MAX_MTU + VNET_HEADER_LENGTH + 1


class TunLink:
    """A TUN device: ``receive_batch`` returns IP packets, ``send`` writes one.

    * ``name``: the interface name (at most 15 bytes).
    * ``kernel_address``: an interface address such as ``"198.18.0.1/24"`` for
      the kernel side, a list of them (``["198.18.0.1/24", "2001:2::1/64"]``;
      IPv6 ones are added ``nodad``, usable at once), or None to leave the
      device's addresses as they are.
    * ``mtu``: the device MTU, set on the device if it differs.
    * ``offload``: negotiate checksum and segmentation offload (the default; see
      the module docs). ``offload=False`` keeps MTU-sized packets and computes
      checksums in the stack: slower for bulk data (one system call per packet)
      even with software GSO (below) and the driver's software GRO
      (``core/gro.py``).
    * ``software_gso``: without offload, still take TCP super-packets from the core
      (``transmit_offload``, ``max_packet_size`` 65535) and cut them into MTU-sized
      packets here, completing their checksums (link/segmentation.py: in C when
      ``link/_gso.c`` was built); the default. ``False`` leaves the core to send one
      MSS per segment.
    * ``multi_queue``: attach one queue of a multi-queue TUN (``IFF_MULTI_QUEUE``),
      creating the device if it does not exist; every queue must use the same
      ``offload``. Attaching to a device created without ``IFF_MULTI_QUEUE``
      raises ``OSError(EINVAL)`` saying so.
    * ``persist``: make the device outlive :meth:`close`. A device that was
      already persistent stays so either way.

    Attaching to a device that is already up waits (at most about a second,
    typically tens of milliseconds) until the kernel marks it running, since
    the kernel drops what it would send into the fd before that.

    Raises ``ValueError`` for bad arguments, :class:`MissingPrivilegeError`
    when the kernel refuses for lack of CAP_NET_ADMIN, and ``OSError`` for other
    failures (no ``/dev/net/tun``, device busy ...).
    """

    __slots__ = (
        "_closed",
        "_device",
        "_fd",
        "_pool",
        "_skip",
        "claimed_flows",
        "created",
        "max_packet_size",
        "mtu",
        "multi_queue",
        "name",
        "offload_flags",
        "offload_status",
        "receive_checksums_partial",
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
        "transmit_offload",
    )

    #: IFF_TUN: IP packets; ``TapLink`` sets IFF_TAP (Ethernet frames).
    _mode: int = pytun.IFF_TUN
    #: What the packets on this link are: ``"ip"`` here, ``"ethernet"`` on a TAP.
    framing: str = "ip"

    def __init__(
        self,
        name: str = "aions0",
        *,
        kernel_address: str | Sequence[str] | None = None,
        mtu: int = 1500,
        offload: bool = True,
        multi_queue: bool = False,
        persist: bool = False,
        software_gso: bool = True,
    ) -> None:
        _check_name(name)
        _check_mtu(mtu)
        interfaces = _parse_kernel_addresses(kernel_address, mtu)
        if not os.path.exists(_TUN_DEVICE):
            raise FileNotFoundError(
                errno.ENOENT,
                f"no {_TUN_DEVICE}: the kernel's TUN driver is not available "
                "(try 'modprobe tun', or give the container the device)",
                _TUN_DEVICE,
            )
        existed = _interface_exists(name)
        flags = self._mode | pytun.IFF_NO_PI | (pytun.IFF_VNET_HDR if offload else 0)
        if multi_queue:
            flags |= pytun.IFF_MULTI_QUEUE
        self.multi_queue = bool(multi_queue)
        self._device = _open_device(name, flags, existed, self.multi_queue)
        self._fd: int = self._device.fileno()
        self._closed = True  # until the device is configured
        try:
            self.name: str = _decode_name(self._device.name)
            self.created = not existed
            _set_nonblocking(self._fd)
            if offload:
                self.offload_flags, self.offload_status = _negotiate_offload(self._fd, self.name)
            else:
                self.offload_flags, self.offload_status = 0, "off (requested off)"
            if persist:
                self._device.persist(True)
            self.mtu = mtu
            _configure(self._device, self.name, interfaces, mtu, existed)
        except BaseException:
            if persist and not existed:
                self._device.persist(False)  # leave nothing behind on failure
            self._device.close()
            raise
        self.receive_checksums_partial = bool(self.offload_flags & TUN_F_CSUM)
        self._skip = VNET_HEADER_LENGTH if offload else 0
        # Writes carry a virtio_net_hdr whenever IFF_VNET_HDR is on: the kernel then
        # completes partial checksums and segments TCP super-packets for us (limits.md §3b).
        # Without IFF_VNET_HDR, software GSO (link/segmentation.py) takes the same
        # super-packets and partial checksums and does the device's work in Python.
        self.software_gso = not offload and software_gso
        self.transmit_offload = offload or self.software_gso
        self.max_packet_size = _MAX_IP_PACKET if self.transmit_offload else mtu
        #: Super-packets cut (or only checksummed) in software, and the packets written for them.
        self.software_gso_packets = 0
        self.software_gso_segments = 0
        self._closed = False
        self._pool = ReceivePool(_RECEIVE_BUFFER)
        self.sent_packets = 0
        self.sent_bytes = 0
        self.claimed_flows = 0
        self.received_packets = 0
        self.received_bytes = 0
        self.received_runts = 0
        self.send_dropped = 0
        self.send_rejected = 0
        #: Writes refused with EIO/ENETDOWN because the interface is down (dropped).
        self.send_link_down = 0
        #: Reads that failed with EIO/ENETDOWN (the interface going down).
        self.receive_errors = 0

    # -- the Link protocol ------------------------------------------------------------

    def fileno(self) -> int:
        """The TUN fd (non-blocking)."""
        self._check_open()
        return self._fd

    def receive_batch(self, limit: int, now: float) -> list[bytes | memoryview]:
        """Read up to ``limit`` packets until the device has none left (never blocks).

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
        while len(packets) < limit:
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
        (payload views), gathered by ``writev``. Requires ``offload=True``.
        """
        if not self._skip:
            if not self.software_gso:
                raise ValueError(f"TUN {self.name} was opened without offload")
            self._send_segmented(packet, segment_size, tail, 0)
            return
        if self._closed:
            self._check_open()  # raises
        if self.multi_queue:
            self._claim_flow(packet)
        try:
            # A non-zero segment_size means the payload exceeds one segment (the core sets
            # it so), even when the packet would fit the device's MTU: after a path MTU
            # drop a 1,500-byte retransmission must still be cut (RFC 1191 §6.3).
            header = _offload_header(packet, segment_size)
        except (IndexError, ValueError):
            self.send_rejected += 1
            return
        self._write(header, packet, tail)

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

    def statistics(self) -> dict[str, int | str]:
        """Packet and byte counters, drops by cause, and ``offload`` (``offload_status``)."""
        return {
            "offload": self.offload_status,
            "sent_packets": self.sent_packets,
            "sent_bytes": self.sent_bytes,
            "received_packets": self.received_packets,
            "received_bytes": self.received_bytes,
            "received_runts": self.received_runts,
            "send_dropped": self.send_dropped,
            "send_rejected": self.send_rejected,
            "claimed_flows": self.claimed_flows,
            "software_gso_packets": self.software_gso_packets,
            "software_gso_segments": self.software_gso_segments,
            "send_link_down": self.send_link_down,
            "receive_errors": self.receive_errors,
        }

    def close(self) -> None:
        """Close the fd; the device disappears unless it is persistent. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._device.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"I/O operation on a closed TunLink ({self.name})")

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._fd}"
        queue = " multi_queue" if self.multi_queue else ""
        return (
            f"<TunLink {self.name} mtu={self.mtu} offload={self.offload_status!r}"
            f" flags={self.offload_flags:#x}{queue} {state}>"
        )


# -- argument checks ----------------------------------------------------------------------


# -- opening ------------------------------------------------------------------------------


# -- configuring the kernel side -------------------------------------------------------------


_MAX_IP_PACKET: Final = 65535  # the largest IPv4 total length (RFC 791 §3.1)
_IPPROTO_TCP: Final = 6
_IPPROTO_UDP: Final = 17
_offload_headers: dict[tuple[int, int, int, int], bytes] = {}


def _offload_header(packet: bytes | bytearray | memoryview, segment_size: int) -> bytes:
    """The virtio_net_hdr asking the kernel to complete (and with ``segment_size``, cut) it.

    Cached by shape: a stream's packets share one header. Raises ValueError for a
    packet that is not TCP or UDP over IPv4/IPv6 (no extension headers).
    """
    version = packet[0] >> 4
    if version == 4:
        start, protocol = (packet[0] & 0x0F) * 4, packet[9]
    elif version == 6:
        start, protocol = 40, packet[6]
    else:
        raise ValueError("not an IP packet")
    transport_length = (packet[start + 12] >> 4) * 4 if protocol == _IPPROTO_TCP else 8
    key = (version, start, protocol, segment_size and (transport_length << 16 | segment_size))
    header = _offload_headers.get(key)
    if header is None:
        if protocol == _IPPROTO_TCP:
            offset = CSUM_OFFSET_TCP
        elif protocol == _IPPROTO_UDP and not segment_size:
            offset = CSUM_OFFSET_UDP
        else:
            raise ValueError("only TCP (and unsegmented UDP) can be offloaded")
        gso_type = VIRTIO_NET_HDR_GSO_NONE
        if segment_size:
            gso_type = VIRTIO_NET_HDR_GSO_TCPV4 if version == 4 else VIRTIO_NET_HDR_GSO_TCPV6
        header = build_vnet_header(VnetHeader(
            VIRTIO_NET_HDR_F_NEEDS_CSUM, gso_type,
            start + transport_length if segment_size else 0, segment_size, start, offset,
        ))  # fmt: skip
        if len(_offload_headers) < 1024:
            _offload_headers[key] = header
    return header


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

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

from ..wire.vnet import VNET_HEADER_LENGTH
from .receive_pool import ReceivePool
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
from .tun_path import TunPath

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
_RECEIVE_BUFFER: Final = _MAX_MTU + VNET_HEADER_LENGTH + 1


class TunLink(TunPath):
    """A TUN device: ``receive_batch`` returns IP packets, ``send`` writes one.

    * ``name``: the interface name (at most 15 bytes).
    * ``kernel_address``: an interface address such as ``"198.18.0.1/24"`` for
      the kernel side, a list of them (``["198.18.0.1/24", "2001:2::1/64"]``;
      IPv6 ones are added ``nodad``, usable at once), or None to leave the
      device's addresses as they are.
    * ``mtu``: the device MTU, set on the device if it differs; 1500 by default, as
      Linux makes a TUN. For clients on the same host, 65535 (loopback's is 65536)
      makes each 64 KB super-packet one TCP segment, so a bulk receiver owes half
      as many ACKs (RFC 5681 §4.2: one for every second full-sized segment), each a
      system call here (docs/performance.md, "Upload (session 14)").
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
        "_device",
        "created",
        "max_packet_size",
        "mtu",
        "offload_flags",
        "offload_status",
        "receive_checksums_partial",
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
        self._link_header = 0
        # Writes carry a virtio_net_hdr whenever IFF_VNET_HDR is on: the kernel then
        # completes partial checksums and segments TCP super-packets for us (limits.md §3b).
        # Without IFF_VNET_HDR, software GSO (link/segmentation.py) takes the same
        # super-packets and partial checksums and does the device's work in Python.
        self.software_gso = not offload and software_gso
        self.transmit_offload = offload or self.software_gso
        self.max_packet_size = _MAX_IP_PACKET if self.transmit_offload else mtu
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
        self.send_link_down = 0
        self.receive_errors = 0

    # -- the Link protocol (the per-packet calls are TunPath's) -------------------------

    def statistics(self) -> dict[str, int | str]:
        """Packet and byte counters, drops by cause, the receive pool's buffers, and
        ``offload`` (``offload_status``)."""
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
            # The receive pool (link/receive_pool.py): buffers it tracks, made in all.
            "receive_buffers": self._pool.lent,
            "receive_buffers_made": self._pool.made,
        }

    def close(self) -> None:
        """Close the fd; the device disappears unless it is persistent. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._device.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._fd}"
        queue = " multi_queue" if self.multi_queue else ""
        return (
            f"<TunLink {self.name} mtu={self.mtu} offload={self.offload_status!r}"
            f" flags={self.offload_flags:#x}{queue} {state}>"
        )


_MAX_IP_PACKET: Final = 65535  # the largest IPv4 total length (RFC 791 §3.1)

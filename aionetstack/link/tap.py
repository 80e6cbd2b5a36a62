"""``TapLink``: a Linux TAP device, Ethernet II frames in and out (python-pytun, IFF_TAP).

The device is opened and configured as :class:`~.tun.TunLink` does (kernel-side
addresses, MTU, up); what it moves are whole Ethernet frames, so it says
``framing = "ethernet"`` and the stack puts its Ethernet layer (ARP, neighbour
discovery, ``core/ethernet.py``) between the link and IP. ``mac`` is the
stack's own address on the segment: given as ``"02:00:00:00:00:02"`` or made
up (random, locally administered, unicast). ``mtu`` is the IP MTU; frames are
14 bytes longer. ``offload=True`` (IFF_VNET_HDR works on a TAP too) hands over
and accepts 64 KB TCP frames with partial checksums, as on a TUN: the
virtio_net_hdr offsets then count the Ethernet header.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import pytun

from ..wire.ethernet import ETHERNET_HEADER_LENGTH, format_mac, parse_mac
from ..wire.vnet import VNET_HEADER_LENGTH, build_vnet_header, parse_vnet_header
from .receive_pool import ReceivePool
from .tun import TunLink, _offload_header

__all__ = ["TapLink"]

#: A GRO'd frame: the largest IP packet, its Ethernet header and the virtio_net_hdr.
_RECEIVE_BUFFER: int = 65535 + ETHERNET_HEADER_LENGTH + VNET_HEADER_LENGTH + 1
#: IEEE 802: bit 1 of the first octet marks a locally administered address, bit 0 multicast.
_LOCAL: int = 0x02
_MULTICAST: int = 0x01


class TapLink(TunLink):
    """A TAP: like :class:`TunLink` but the packets are Ethernet frames (see the module)."""

    __slots__ = ("_frame_headers", "mac")
    _mode = pytun.IFF_TAP
    framing = "ethernet"

    def __init__(
        self,
        name: str = "aionstap0",
        *,
        kernel_address: str | Sequence[str] | None = None,
        mac: str | bytes | None = None,
        mtu: int = 1500,
        offload: bool = False,
        persist: bool = False,
        software_gso: bool = True,
    ) -> None:
        self.mac: bytes = _choose_mac(mac)
        self._frame_headers: dict[bytes, bytes] = {}
        super().__init__(
            name,
            kernel_address=kernel_address,
            mtu=mtu,
            offload=offload,
            persist=persist,
            software_gso=software_gso,
        )
        if offload:
            self._pool = ReceivePool(_RECEIVE_BUFFER)

    def send_offloaded(
        self,
        packet: bytes | bytearray | memoryview,
        segment_size: int,
        now: float,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        """Write a partial-checksum TCP/UDP frame; the kernel completes (and segments) it.

        ``packet`` is the frame (Ethernet header, then the IP packet's headers);
        the virtio_net_hdr is the TUN one with its offsets moved past the
        Ethernet header. Without ``offload``, software GSO does the device's work.
        """
        if not self._skip:
            if not self.software_gso:
                raise ValueError(f"TAP {self.name} was opened without offload")
            # Software GSO (link/segmentation.py): every piece gets the Ethernet header.
            self._send_segmented(packet, segment_size, tail, ETHERNET_HEADER_LENGTH)
            return
        self._check_open()
        length = len(packet) - ETHERNET_HEADER_LENGTH
        for part in tail:
            length += len(part)
        try:
            ip_header = _offload_header(
                memoryview(packet)[ETHERNET_HEADER_LENGTH:],
                segment_size,  # non-zero: cut, whatever the MTU (TunLink.send_offloaded)
            )
        except (IndexError, ValueError):
            self.send_rejected += 1
            return
        header = self._frame_headers.get(ip_header)
        if header is None:
            fields = parse_vnet_header(ip_header)
            header = build_vnet_header(dataclasses.replace(
                fields, csum_start=fields.csum_start + ETHERNET_HEADER_LENGTH,
                hdr_len=fields.hdr_len + ETHERNET_HEADER_LENGTH if fields.hdr_len else 0,
            ))  # fmt: skip
            if len(self._frame_headers) < 1024:
                self._frame_headers[ip_header] = header
        self._write(header, packet, tail)

    def __repr__(self) -> str:
        return f"<TapLink {self.name} mac={format_mac(self.mac)} mtu={self.mtu}>"


def _choose_mac(mac: str | bytes | None) -> bytes:
    if mac is None:
        raw = bytearray(os.urandom(6))
        raw[0] = (raw[0] | _LOCAL) & ~_MULTICAST & 0xFF
        return bytes(raw)
    if isinstance(mac, str):
        value = parse_mac(mac)
    elif isinstance(mac, bytes) and len(mac) == 6:
        value = mac
    else:
        raise TypeError(f"mac must be a str like '02:00:00:00:00:02' or 6 bytes, got {mac!r}")
    if value[0] & _MULTICAST or value == bytes(6):
        raise ValueError(f"mac {format_mac(value)} is not a unicast address")
    return value

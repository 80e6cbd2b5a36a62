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

import os
from collections.abc import Sequence

import pytun

from ..wire.ethernet import ETHERNET_HEADER_LENGTH, format_mac, parse_mac
from ..wire.vnet import VNET_HEADER_LENGTH
from .receive_pool import ReceivePool
from .tun import TunLink

__all__ = ["TapLink"]

#: A GRO'd frame: the largest IP packet, its Ethernet header and the virtio_net_hdr.
_RECEIVE_BUFFER: int = 65535 + ETHERNET_HEADER_LENGTH + VNET_HEADER_LENGTH + 1
#: IEEE 802: bit 1 of the first octet marks a locally administered address, bit 0 multicast.
_LOCAL: int = 0x02
_MULTICAST: int = 0x01


class TapLink(TunLink):
    """A TAP: like :class:`TunLink` but the packets are Ethernet frames (see the module)."""

    __slots__ = ("mac",)
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
        super().__init__(
            name,
            kernel_address=kernel_address,
            mtu=mtu,
            offload=offload,
            persist=persist,
            software_gso=software_gso,
        )
        self._link_header = ETHERNET_HEADER_LENGTH  # send_offloaded: frames, not packets
        if offload:
            self._pool = ReceivePool(_RECEIVE_BUFFER)

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

"""Ethernet II frame headers (IEEE 802.3 clause 3.2.6 "Length/Type"), as a TAP carries them.

No preamble and no frame check sequence: a TAP hands over the frame from the
destination address to the end of the payload. One IEEE 802.1Q tag is
understood; MAC addresses are 6 packed bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .error import WireError

__all__ = [
    "BROADCAST_MAC",
    "ETHERNET_HEADER_LENGTH",
    "ETHERTYPE_ARP",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "ETHERTYPE_VLAN",
    "EthernetHeader",
    "build_ethernet",
    "format_mac",
    "ipv4_multicast_mac",
    "ipv6_multicast_mac",
    "parse_ethernet",
    "parse_mac",
]

#: IANA "IEEE 802 Numbers" EtherTypes.
ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_ARP: Final = 0x0806
ETHERTYPE_VLAN: Final = 0x8100  # IEEE 802.1Q customer VLAN tag
ETHERTYPE_IPV6: Final = 0x86DD

#: Destination, source, EtherType.
ETHERNET_HEADER_LENGTH: Final = 14
BROADCAST_MAC: Final = b"\xff" * 6
#: IEEE 802.3: values below 0x0600 are a length (802.3/LLC framing), not a type.
_MINIMUM_ETHERTYPE: Final = 0x0600
_VLAN_TAG_LENGTH: Final = 4
_VLAN_ID_MASK: Final = 0x0FFF
#: IEEE 802.3: 46 bytes of payload at least, padded by the sender.
_MINIMUM_PAYLOAD: Final = 46
_MAC_LENGTH: Final = 6
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")

_HEADER: Final = struct.Struct("!6s6sH")
_VLAN_TAG: Final = struct.Struct("!HH")


@dataclass(slots=True)
class EthernetHeader:
    """An Ethernet II header. ``vlan`` is the 802.1Q VLAN ID, ``None`` when untagged."""

    destination: bytes
    source: bytes
    ethertype: int
    vlan: int | None = None


def parse_ethernet(data: bytes | bytearray | memoryview) -> tuple[EthernetHeader, memoryview]:
    """Parse an Ethernet II frame into its header and payload.

    Frames whose type field is an 802.3 length are rejected (``"not_ethernet_ii"``).
    The payload keeps any padding: the layer above trims it by its own length.
    Raises :class:`WireError`.
    """
    view = memoryview(data)
    if len(view) < ETHERNET_HEADER_LENGTH:
        raise WireError(
            f"Ethernet frame of {len(view)} bytes is shorter than a header", "truncated"
        )
    destination, source, ethertype = _HEADER.unpack_from(view)
    offset = ETHERNET_HEADER_LENGTH
    vlan = None
    if ethertype == ETHERTYPE_VLAN:
        if len(view) < offset + _VLAN_TAG_LENGTH:
            raise WireError("802.1Q tag truncated", "truncated")
        tag_control, ethertype = _VLAN_TAG.unpack_from(view, offset)
        vlan = tag_control & _VLAN_ID_MASK
        offset += _VLAN_TAG_LENGTH
    if ethertype < _MINIMUM_ETHERTYPE:
        raise WireError(f"type field {ethertype:#06x} is an 802.3 length", "not_ethernet_ii")
    return EthernetHeader(destination, source, ethertype, vlan), view[offset:]


def build_ethernet(
    destination: bytes,
    source: bytes,
    ethertype: int,
    payload: bytes | bytearray | memoryview,
    *,
    pad: bool = False,
) -> bytes:
    """Return an untagged Ethernet II frame.

    With ``pad`` the payload is padded with zeros to the 46-byte minimum
    (IEEE 802.3); a TAP does not need it. Bad arguments raise :class:`ValueError`.
    """
    if len(destination) != _MAC_LENGTH or len(source) != _MAC_LENGTH:
        raise ValueError("MAC addresses must be 6 packed bytes")
    if not _MINIMUM_ETHERTYPE <= ethertype <= 0xFFFF:
        raise ValueError(f"EtherType {ethertype:#x} is not in 0x0600..0xffff")
    frame = _HEADER.pack(destination, source, ethertype) + bytes(payload)
    if pad and len(payload) < _MINIMUM_PAYLOAD:
        frame += bytes(_MINIMUM_PAYLOAD - len(payload))
    return frame


def format_mac(mac: bytes) -> str:
    """Return ``mac`` as ``02:00:00:00:00:01``."""
    return ":".join(f"{byte:02x}" for byte in mac)


def parse_mac(text: str) -> bytes:
    """Return the 6 bytes of a ``02:00:00:00:00:01`` (or ``-``-separated) MAC address."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != _MAC_LENGTH or not all(_is_hex_byte(part) for part in parts):
        raise ValueError(f"{text!r} is not a MAC address like 02:00:00:00:00:01")
    return bytes.fromhex("".join(parts))


def _is_hex_byte(text: str) -> bool:
    return len(text) == 2 and all(char in _HEX_DIGITS for char in text)


def ipv4_multicast_mac(address: bytes) -> bytes:
    """Return the MAC an IPv4 multicast ``address`` maps to (RFC 1112 §6.4)."""
    if len(address) != 4:
        raise ValueError("address must be 4 packed bytes")
    return b"\x01\x00\x5e" + bytes((address[1] & 0x7F,)) + address[2:]


def ipv6_multicast_mac(address: bytes) -> bytes:
    """Return the MAC an IPv6 multicast ``address`` maps to (RFC 2464 §7)."""
    if len(address) != 16:
        raise ValueError("address must be 16 packed bytes")
    return b"\x33\x33" + address[-4:]

"""The virtio_net_hdr prefix: layout measured on the kernel (limits.md §3), round trips, fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.wire.error import WireError
from aionetstack.wire.vnet import (
    CSUM_OFFSET_TCP,
    CSUM_OFFSET_UDP,
    VIRTIO_NET_HDR_F_DATA_VALID,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VIRTIO_NET_HDR_GSO_UDP,
    VIRTIO_NET_HDR_GSO_UDP_L4,
    VNET_HEADER_LENGTH,
    VNET_HEADER_NONE,
    VnetHeader,
    build_vnet_header,
    pack_vnet_header_into,
    parse_vnet_header,
)

SETTINGS = settings(max_examples=300, deadline=None)


def test_constants_match_virtio_net_h() -> None:
    assert (VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_F_DATA_VALID) == (1, 2)
    assert (
        VIRTIO_NET_HDR_GSO_NONE,
        VIRTIO_NET_HDR_GSO_TCPV4,
        VIRTIO_NET_HDR_GSO_UDP,
        VIRTIO_NET_HDR_GSO_TCPV6,
        VIRTIO_NET_HDR_GSO_UDP_L4,
        VIRTIO_NET_HDR_GSO_ECN,
    ) == (0, 1, 3, 4, 5, 0x80)
    assert (VNET_HEADER_LENGTH, CSUM_OFFSET_TCP, CSUM_OFFSET_UDP) == (10, 16, 6)


def test_none_header_is_ten_zero_bytes() -> None:
    assert bytes(10) == VNET_HEADER_NONE
    assert build_vnet_header(VnetHeader()) == VNET_HEADER_NONE
    header = parse_vnet_header(VNET_HEADER_NONE)
    assert header == VnetHeader()
    assert not header.needs_checksum
    assert not header.is_gso


# limits.md §3a: a 64280-byte TCPv4 superpacket from the kernel carried
# flags=1, gso_type=1, hdr_len=40, gso_size=1460, csum_start=20, csum_offset=16.
GOLDEN_TSO = bytes.fromhex("01 01 2800 b405 1400 1000")


def test_golden_tcp_superpacket_header_is_little_endian() -> None:
    header = parse_vnet_header(GOLDEN_TSO + b"E...")
    assert header == VnetHeader(1, VIRTIO_NET_HDR_GSO_TCPV4, 40, 1460, 20, 16)
    assert header.needs_checksum
    assert header.is_gso
    assert build_vnet_header(header) == GOLDEN_TSO


def test_golden_udp_l4_header() -> None:
    # limits.md §3a (USO): (1, 5 = GSO_UDP_L4, 28, 1400, 20, 6).
    header = VnetHeader(1, VIRTIO_NET_HDR_GSO_UDP_L4, 28, 1400, 20, CSUM_OFFSET_UDP)
    assert build_vnet_header(header) == struct.pack("<BBHHHH", 1, 5, 28, 1400, 20, 6)


def test_ecn_bit_does_not_hide_gso() -> None:
    header = parse_vnet_header(
        bytes((1, VIRTIO_NET_HDR_GSO_TCPV6 | VIRTIO_NET_HDR_GSO_ECN)) + bytes(8)
    )
    assert header.is_gso
    only_ecn = parse_vnet_header(bytes((0, VIRTIO_NET_HDR_GSO_ECN)) + bytes(8))
    assert not only_ecn.is_gso


def test_pack_into_a_preallocated_buffer() -> None:
    buffer = bytearray(b"\xaa" * 14)
    pack_vnet_header_into(buffer, 2, VnetHeader(1, 0, 0, 0, 20, 16))
    assert buffer == b"\xaa\xaa" + bytes.fromhex("01 00 0000 0000 1400 1000") + b"\xaa\xaa"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes(9), "truncated"),
        (bytes((4,)) + bytes(9), "bad_vnet_header"),
        (bytes((0, 2)) + bytes(8), "bad_vnet_header"),
        (bytes((0, 6)) + bytes(8), "bad_vnet_header"),
    ],
    ids=["short", "unknown-flag", "gso-type-2", "gso-type-6"],
)
def test_rejections(data: bytes, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_vnet_header(data)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "header", [VnetHeader(flags=256), VnetHeader(gso_size=65536), VnetHeader(csum_start=-1)]
)
def test_build_rejects_out_of_range_fields(header: VnetHeader) -> None:
    with pytest.raises(ValueError):
        build_vnet_header(header)


headers = st.builds(
    VnetHeader,
    flags=st.integers(0, 3),
    gso_type=st.sampled_from([0, 1, 3, 4, 5]).flatmap(
        lambda gso: st.sampled_from([gso, gso | VIRTIO_NET_HDR_GSO_ECN])
    ),
    hdr_len=st.integers(0, 0xFFFF),
    gso_size=st.integers(0, 0xFFFF),
    csum_start=st.integers(0, 0xFFFF),
    csum_offset=st.integers(0, 0xFFFF),
)


@SETTINGS
@given(header=headers)
def test_round_trip(header: VnetHeader) -> None:
    raw = build_vnet_header(header)
    assert len(raw) == VNET_HEADER_LENGTH
    assert parse_vnet_header(raw) == header
    assert struct.unpack("<BBHHHH", raw) == (
        header.flags,
        header.gso_type,
        header.hdr_len,
        header.gso_size,
        header.csum_start,
        header.csum_offset,
    )


@SETTINGS
@given(data=st.binary(max_size=16))
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    try:
        header = parse_vnet_header(data)
    except WireError:
        return
    assert build_vnet_header(header) == data[:10]

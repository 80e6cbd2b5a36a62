"""The Internet checksum (RFC 1071), pseudo-headers, and RFC 1624 incremental update."""

from __future__ import annotations

import struct

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aionetstack.wire.checksum import (
    checksum_update,
    internet_checksum,
    ones_complement_sum,
    pseudo_header_sum,
)

SETTINGS = settings(max_examples=400, deadline=None)


def naive_sum(data: bytes, initial: int = 0) -> int:
    """RFC 1071 §4.1 word by word with end-around carry: the reference."""
    if len(data) % 2:
        data += b"\x00"
    total = initial
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


def naive_checksum(data: bytes, initial: int = 0) -> int:
    return ~naive_sum(data, initial) & 0xFFFF


# RFC 1071 §3 "Numerical Examples": bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
RFC1071_EXAMPLE = bytes.fromhex("0001f203f4f5f6f7")


def test_rfc1071_example_sum() -> None:
    assert ones_complement_sum(RFC1071_EXAMPLE) == 0xDDF2
    assert internet_checksum(RFC1071_EXAMPLE) == 0x220D


def test_rfc1071_example_verifies_with_checksum_appended() -> None:
    assert internet_checksum(RFC1071_EXAMPLE + b"\x22\x0d") == 0


@pytest.mark.parametrize(
    ("data", "expected_sum", "expected_checksum"),
    [
        # Non-zero data summing to "negative zero" must read 0xFFFF, not 0.
        (bytes.fromhex("ffff"), 0xFFFF, 0x0000),
        (bytes.fromhex("1234edcb"), 0xFFFF, 0x0000),
        (bytes.fromhex("ffff" * 10), 0xFFFF, 0x0000),
        (bytes.fromhex("ffff0000"), 0xFFFF, 0x0000),
        # Only all-zero (or empty) data sums to 0; its checksum is 0xFFFF.
        (bytes(20), 0x0000, 0xFFFF),
        (b"", 0x0000, 0xFFFF),
        (bytes.fromhex("ff"), 0xFF00, 0x00FF),
    ],
)
def test_zero_versus_negative_zero(data: bytes, expected_sum: int, expected_checksum: int) -> None:
    assert ones_complement_sum(data) == expected_sum
    assert internet_checksum(data) == expected_checksum
    assert naive_checksum(data) == expected_checksum


def test_odd_length_pads_with_zero_on_the_right() -> None:
    assert ones_complement_sum(b"\x12\x34\x56") == 0x1234 + 0x5600
    assert ones_complement_sum(b"\x12\x34\x56") == ones_complement_sum(b"\x12\x34\x56\x00")


def test_initial_zero_sum_with_nonzero_initial_is_negative_zero() -> None:
    assert ones_complement_sum(bytes(4), 0xFFFF) == 0xFFFF
    assert ones_complement_sum(bytes.fromhex("0001"), 0xFFFE) == 0xFFFF


def test_accepts_bytearray_and_memoryview() -> None:
    data = bytes(range(41))
    expected = internet_checksum(data)
    assert internet_checksum(bytearray(data)) == expected
    assert internet_checksum(memoryview(data)) == expected
    assert internet_checksum(memoryview(b"xx" + data)[2:]) == expected


@SETTINGS
@given(data=st.binary(max_size=2000), initial=st.integers(0, 0xFFFF))
def test_matches_naive_reference(data: bytes, initial: int) -> None:
    assert ones_complement_sum(data, initial) == naive_sum(data, initial)
    assert internet_checksum(data, initial) == naive_checksum(data, initial)


@SETTINGS
@given(data=st.binary(max_size=300).map(lambda b: b + bytes(len(b) % 2)))
def test_appending_the_checksum_verifies(data: bytes) -> None:
    checksum = internet_checksum(data)
    assert internet_checksum(data + checksum.to_bytes(2, "big")) == 0


@SETTINGS
@given(
    source=st.binary(min_size=4, max_size=4),
    destination=st.binary(min_size=4, max_size=4),
    protocol=st.integers(0, 255),
    length=st.integers(0, 0xFFFF),
)
def test_ipv4_pseudo_header_matches_its_bytes(
    source: bytes, destination: bytes, protocol: int, length: int
) -> None:
    # RFC 768 / RFC 9293 §3.1: source, destination, zero, protocol, length.
    layout = source + destination + struct.pack("!BBH", 0, protocol, length)
    assert pseudo_header_sum(source, destination, protocol, length) == naive_sum(layout)


@SETTINGS
@given(
    source=st.binary(min_size=16, max_size=16),
    destination=st.binary(min_size=16, max_size=16),
    protocol=st.integers(0, 255),
    length=st.integers(0, 0xFFFF_FFFF),
)
def test_ipv6_pseudo_header_matches_its_bytes(
    source: bytes, destination: bytes, protocol: int, length: int
) -> None:
    # RFC 8200 §8.1: source, destination, 32-bit length, 3 zero bytes, next header.
    layout = source + destination + struct.pack("!I3xB", length, protocol)
    assert pseudo_header_sum(source, destination, protocol, length) == naive_sum(layout)


@SETTINGS
@given(
    data=st.binary(min_size=4, max_size=200).map(lambda b: b + bytes(len(b) % 2)),
    index=st.integers(min_value=0),
    new_word=st.integers(0, 0xFFFF),
)
def test_incremental_update_matches_full_recomputation(
    data: bytes, index: int, new_word: int
) -> None:
    word_index = index % (len(data) // 2)
    old_word = int.from_bytes(data[2 * word_index : 2 * word_index + 2], "big")
    changed = bytearray(data)
    changed[2 * word_index : 2 * word_index + 2] = new_word.to_bytes(2, "big")
    # RFC 1624 §3: eqn. 3 can only differ from a recomputation (+0 vs -0) when
    # everything summed becomes zero, which no real header is.
    assume(any(changed))
    updated = checksum_update(internet_checksum(data), old_word, new_word)
    assert updated == internet_checksum(changed)


def test_incremental_update_ttl_decrement_of_a_real_header() -> None:
    # A 20-byte IPv4 header (RFC 791), TTL 64 -> 63 as a router would do it.
    header = bytearray.fromhex("450000540000400040010000c6120002c6120001")
    checksum = internet_checksum(header)
    header[10:12] = checksum.to_bytes(2, "big")
    old_word = int.from_bytes(header[8:10], "big")
    header[8] -= 1
    new_word = int.from_bytes(header[8:10], "big")
    header[10:12] = checksum_update(checksum, old_word, new_word).to_bytes(2, "big")
    assert internet_checksum(header) == 0

"""``word_sum``, the checksum's per-byte loop: the C function (wire/_csum.c) and its
pure-Python equivalent meet one contract, checked against RFC 1071 word by word."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.wire import checksum
from aionetstack.wire.checksum import word_sum_python

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = settings(max_examples=400, deadline=None)

#: Negative zero (non-zero multiples of 0xFFFF), odd lengths, and buffers past 4 KiB
#: (where the C loop gives up the GIL).
EDGE_CASES = [b"", b"\x00", bytes(17), b"\xff", b"\xff\xff", b"\x12\x34\xed\xcb",
              b"\xff" * 1448, bytes(range(256)) * 280, b"\xff\xff" * 40_000]  # fmt: skip
IMPLEMENTATIONS: list[Callable[[bytes | bytearray | memoryview], int]] = [word_sum_python]
if checksum.ACCELERATED:
    IMPLEMENTATIONS.append(checksum.word_sum)


def _meets_contract(result: int, data: bytes) -> None:
    """Congruent to the RFC 1071 word sum modulo 0xFFFF, and 0 only for all-zero data."""
    padded = data + bytes(len(data) % 2)  # RFC 1071 §4.1: an odd last byte, padded right
    reference = sum(word for (word,) in struct.iter_unpack("!H", padded))
    assert result >= 0
    assert result % 0xFFFF == reference % 0xFFFF
    assert (result == 0) == (not any(data))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=lambda f: f.__module__)
@SETTINGS
@given(data=st.binary(max_size=3100), shift=st.integers(0, 7))
def test_word_sum_meets_its_contract(
    implementation: Callable[[bytes | bytearray | memoryview], int], data: bytes, shift: int
) -> None:
    _meets_contract(implementation(data), data)
    # The same bytes at any alignment, in a bytearray or through a memoryview slice.
    holder = bytearray(shift) + bytearray(data)
    _meets_contract(implementation(memoryview(holder)[shift:]), data)
    _meets_contract(implementation(bytearray(data)), data)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=lambda f: f.__module__)
@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=4090, max_size=9100), shift=st.integers(1, 7))
def test_word_sum_of_large_unaligned_buffers(
    implementation: Callable[[bytes | bytearray | memoryview], int], data: bytes, shift: int
) -> None:
    # Past 4 KiB the C loop gives up the GIL; the sum must not change with it.
    holder = bytearray(shift) + bytearray(data)
    _meets_contract(implementation(memoryview(holder)[shift:]), data)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=lambda f: f.__module__)
@pytest.mark.parametrize(
    "data",
    EDGE_CASES,
    ids=lambda data: f"{len(data)}B",
)
def test_word_sum_edges(
    implementation: Callable[[bytes | bytearray | memoryview], int], data: bytes
) -> None:
    _meets_contract(implementation(data), data)


@pytest.mark.skipif(not checksum.ACCELERATED, reason="wire/_csum.c was not built (no C compiler)")
def test_c_word_sum_is_folded_and_rejects_what_is_not_a_buffer() -> None:
    assert checksum.word_sum(b"\xff\xff\xff\xff") == 0xFFFF
    assert checksum.word_sum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2  # RFC 1071 §3
    assert all(checksum.word_sum(bytes([n]) * 999) <= 0xFFFF for n in range(256))
    with pytest.raises(TypeError):
        checksum.word_sum("text")  # type: ignore[arg-type]
    with pytest.raises((BufferError, TypeError, ValueError)):
        checksum.word_sum(memoryview(bytes(8))[::2])  # not contiguous


def test_the_c_sum_is_built_where_required() -> None:
    """CI (AIONETSTACK_REQUIRE_ACCEL=1) has a compiler: a silent fallback is a failure."""
    if not os.environ.get("AIONETSTACK_REQUIRE_ACCEL"):
        pytest.skip("AIONETSTACK_REQUIRE_ACCEL is not set")
    assert checksum.ACCELERATED, "wire/_csum.c was not built: is a C compiler installed?"


def test_the_stack_checksums_alike_without_the_c_sum() -> None:
    """The checksum, segmentation, GRO and inline IPv4 suites pass with the C modules made
    unimportable (the word sum's, GRO's, GSO's and the receive classification's, as an
    install without a compiler has)."""
    script = textwrap.dedent("""
        import sys
        sys.modules["aionetstack.wire._csum"] = None  # what an install without a compiler has
        sys.modules["aionetstack.core._gro"] = None
        sys.modules["aionetstack.link._gso"] = None
        sys.modules["aionetstack.wire._plain_tcp4"] = None
        from aionetstack.core import gro
        from aionetstack.wire import checksum
        assert not checksum.ACCELERATED and checksum.word_sum is checksum.word_sum_python
        assert not gro.ACCELERATED
        from aionetstack.link import segmentation
        assert not segmentation.ACCELERATED
        from aionetstack.wire import plain_tcp4
        assert not plain_tcp4.ACCELERATED
        import pytest
        sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
    """)
    suites = ["tests/wire/test_checksum.py", "tests/link/test_segmentation.py",
              "tests/core/test_gro.py", "tests/wire/test_tcp.py",
              "tests/core/test_ipv4_tcp_inline.py", "tests/link/test_gso_native.py",
              "tests/wire/test_plain_tcp4_native.py"]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if k != "AIONETSTACK_REQUIRE_ACCEL"}
    result = subprocess.run(
        [sys.executable, "-c", script, *suites],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout

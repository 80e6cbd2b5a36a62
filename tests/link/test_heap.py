"""A receive pool raises glibc's mmap threshold once, unless the user set it
(link/heap.py): each check runs in a fresh interpreter, whose thresholds are glibc's
start values."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or not hasattr(ctypes.CDLL(None), "mallinfo2"),
    reason="glibc's mallinfo2 reports mapped blocks",
)

ROOT = Path(__file__).resolve().parents[2]

#: Bytes glibc maps for a 1 MiB block, before and after a receive pool is made.
PROBE = """
import ctypes, json, sys
sys.path.insert(0, sys.argv[1])
class MallInfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    ).split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo
def mapped_for_one_mib():
    before = libc.mallinfo2().hblkhd
    block = bytearray(1 << 20)
    mapped = libc.mallinfo2().hblkhd - before
    del block
    return mapped
first = mapped_for_one_mib()
from aionetstack.link.receive_pool import ReceivePool
ReceivePool(65536)
print(json.dumps([first, mapped_for_one_mib()]))
"""


def mapped_before_and_after(**env: str) -> list[int]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT)],
        capture_output=True, text=True, check=True, env={**os.environ, **env},
    )  # fmt: skip
    answer: list[int] = json.loads(result.stdout)
    return answer


def test_after_a_receive_pool_a_mebibyte_comes_from_the_heap() -> None:
    before, after = mapped_before_and_after()
    assert before >= 1 << 20  # glibc's start threshold (128 KiB): a mapping of its own
    assert after == 0  # the threshold is now 4 MiB: the heap serves it, kept mapped


def test_a_threshold_the_user_set_is_left_alone() -> None:
    before, after = mapped_before_and_after(MALLOC_MMAP_THRESHOLD_=str(128 * 1024))
    assert before >= 1 << 20
    assert after >= 1 << 20

"""The C modules against their Python twins on fuzz inputs (aionetstack.testing.native_fuzz).

The same target runs under atheris for long, coverage-guided runs
(``tests/fuzz/atheris_native.py``; see docs/security.md). Here: the seed corpus, and
seeds and arbitrary inputs with bytes overwritten at drawn offsets.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.core import gro
from aionetstack.link import segmentation
from aionetstack.testing.native_fuzz import NativeMismatchError, check_native, native_input
from aionetstack.wire import plain_tcp4

CORPUS = Path(__file__).parent / "corpus" / "native"
SEEDS = sorted(CORPUS.glob("*.bin"))

pytestmark = pytest.mark.skipif(
    not (gro.ACCELERATED and segmentation.ACCELERATED and plain_tcp4.ACCELERATED),
    reason="the C modules were not built",
)


def test_the_seed_corpus_is_there_and_agrees() -> None:
    assert len(SEEDS) >= 4, "tests/fuzz/corpus/native: run tests/fuzz/native_seeds.py"
    for path in SEEDS:
        check_native(path.read_bytes())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEEDS or [Path(__file__)]), st.lists(st.tuples(st.integers(0, 10**6),
       st.integers(0, 255)), max_size=6))  # fmt: skip
def test_mutated_seeds_agree(seed: Path, changes: list[tuple[int, int]]) -> None:
    data = bytearray(seed.read_bytes())
    for offset, value in changes:
        data[offset % len(data)] = value
    check_native(bytes(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_inputs_agree(data: bytes) -> None:
    check_native(data)


def test_a_mismatch_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: a C pass that drops the batch's last item is caught."""
    real = gro._native_coalesce
    assert real is not None

    def lossy(*args: object) -> tuple[list[object], int, int, int]:
        items, merged, segments, thinned = real(*args)  # type: ignore[misc]
        return items[:-1], merged, segments, thinned

    monkeypatch.setattr(gro, "_native_coalesce", lossy)
    with pytest.raises(NativeMismatchError):
        check_native(native_input([bytes(50), bytes(60)]))


def test_a_classification_mismatch_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: a C classification that swaps the ports is caught."""
    real = plain_tcp4.parse_plain_tcp4

    def swapped(*args: object) -> object:
        answer = real(*args)  # type: ignore[arg-type]
        if answer is None:
            return None
        source, destination, sport, dport, *rest = answer
        return (source, destination, dport, sport, *rest)

    monkeypatch.setattr(plain_tcp4, "parse_plain_tcp4", swapped)
    seed = next(path for path in SEEDS if b"\x02\x04\x05\xb4" in path.read_bytes())
    with pytest.raises(NativeMismatchError, match="classification"):
        check_native(seed.read_bytes())

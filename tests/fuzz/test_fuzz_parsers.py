"""Every wire parser on arbitrary bytes: it returns or raises WireError, nothing else.

The same target runs under atheris for long, coverage-guided runs
(``tests/fuzz/atheris_parsers.py``; see docs/security.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.testing.fuzz import parse_everything

CORPUS = Path(__file__).parent / "corpus" / "packets"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_every_parser_takes_arbitrary_bytes(data: bytes) -> None:
    parse_everything(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=20, max_size=120), st.data())
def test_every_parser_takes_a_mutated_real_packet(noise: bytes, data: st.DataObject) -> None:
    """Real packets from the corpus with bytes overwritten at drawn offsets (the smoltcp
    FuzzInjector idea): malformed in one field, well-formed elsewhere."""
    seeds = sorted(CORPUS.glob("*.bin"))
    if not seeds:
        pytest.skip("no corpus: run tests/fuzz/corpus_from_pcaps.py")
    packet = bytearray(data.draw(st.sampled_from(seeds)).read_bytes())
    for index in range(0, min(len(noise), 8)):
        offset = data.draw(st.integers(0, max(len(packet) - 1, 0)))
        if packet:
            packet[offset] = noise[index]
    parse_everything(bytes(packet))


def test_the_corpus_parses() -> None:
    """Every corpus packet goes through every parser without an unexpected exception."""
    for path in sorted(CORPUS.glob("*.bin")):
        parse_everything(path.read_bytes())

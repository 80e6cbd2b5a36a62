"""Coverage-guided fuzzing of every wire parser with atheris (libFuzzer).

    python tests/fuzz/atheris_parsers.py tests/fuzz/corpus/packets \\
        -max_total_time=600 -timeout=2 -rss_limit_mb=1024

A finding is any exception other than WireError (a crash file is written), a
hang past ``-timeout`` seconds, or memory past ``-rss_limit_mb``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's aionetstack

with atheris.instrument_imports(include=["aionetstack"]):
    from aionetstack.testing.fuzz import parse_everything


def test_one_input(data: bytes) -> None:
    parse_everything(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()

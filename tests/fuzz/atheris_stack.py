"""Coverage-guided fuzzing of a StackCore in virtual time with atheris (libFuzzer).

    python tests/fuzz/atheris_stack.py tests/fuzz/corpus/stack \\
        -max_total_time=600 -timeout=5 -rss_limit_mb=1024

Each input is a script of records (see aionetstack.testing.fuzz.StackFuzzer): TCP
segments relative to the live sequence numbers, raw packets, ICMP errors, application
calls and clock advances. After every record the invariants and the per-record work
bound are checked; at the end every connection is closed and, after a virtual hour,
none may remain. Set FUZZ_COUNT_WORK=0 to skip the (slower) line-counting work bound,
FUZZ_IPV6=1 to run the stack and its peer on IPv6.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's aionetstack

with atheris.instrument_imports(include=["aionetstack"]):
    from aionetstack.testing.fuzz import StackFuzzer

COUNT_WORK = os.environ.get("FUZZ_COUNT_WORK", "1") != "0"
IPV6 = os.environ.get("FUZZ_IPV6", "0") == "1"


def test_one_input(data: bytes) -> None:
    fuzzer = StackFuzzer(count_work=COUNT_WORK, ipv6=IPV6)
    fuzzer.run(data)
    fuzzer.finish()


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()

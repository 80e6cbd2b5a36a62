"""Coverage-guided fuzzing of the C modules against their Python twins with atheris.

    python tests/fuzz/atheris_native.py tests/fuzz/corpus/native \\
        -max_total_time=600 -timeout=2 -rss_limit_mb=1024

Each input is a batch of packets (see aionetstack.testing.native_fuzz): software
GRO's C pass (core/_gro.c) must give what ``Coalescer.coalesce_python`` gives, and
software GSO's C cut (link/_gso.c) the pieces of ``cut_tcp``, and the receive
classification (wire/_plain_tcp4.c) the answer of ``parse_plain_tcp4_python`` for each
packet. A finding is any
exception (``NativeMismatchError`` for a difference), a crash of the interpreter (the
C code), a hang past ``-timeout`` seconds or memory past ``-rss_limit_mb``. Build
the modules with ``-fsanitize=address`` and run with libasan preloaded to catch
reads past a buffer that do not crash.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's aionetstack

with atheris.instrument_imports(include=["aionetstack"]):
    from aionetstack.testing.native_fuzz import check_native


if __name__ == "__main__":
    atheris.Setup(sys.argv, check_native)
    atheris.Fuzz()

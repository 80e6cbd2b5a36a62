"""The TCP connection compiled by mypyc (``setup.py``, ``aionetstack/compiled.py``).

CI installs with a compiler, so every listed module must load compiled there; and the
tests' ``AIONETSTACK_INTERPRETED=1`` must really put the Python sources in their place,
or the second CI run would test the compiled code twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aionetstack.compiled import COMPILED_MODULES, compiled_modules

ROOT = Path(__file__).resolve().parents[3]


def test_ci_runs_every_listed_module_compiled() -> None:
    """CI (AIONETSTACK_REQUIRE_ACCEL=1) has a compiler: a silent fallback is a failure."""
    if not os.environ.get("AIONETSTACK_REQUIRE_ACCEL"):
        pytest.skip("AIONETSTACK_REQUIRE_ACCEL is not set")
    if os.environ.get("AIONETSTACK_INTERPRETED") == "1":
        assert compiled_modules() == []
    else:
        assert compiled_modules() == list(COMPILED_MODULES)


def test_sources_first_loads_every_listed_module_from_its_source() -> None:
    program = (
        "import runpy, sys\n"
        f"runpy.run_path({str(ROOT / 'aionetstack' / 'compiled.py')!r})['load_sources_first']()\n"
        "import importlib\n"
        "from aionetstack.compiled import COMPILED_MODULES, compiled_modules\n"
        "files = [importlib.import_module(name).__file__ for name in COMPILED_MODULES]\n"
        "assert compiled_modules() == [], compiled_modules()\n"
        "assert all(f.endswith('.py') for f in files), files\n"
        "from aionetstack import MemoryLink, Stack\n"
        "print('sources', len(files))\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split() == ["sources", str(len(COMPILED_MODULES))]


def test_the_connection_has_one_line_of_bases() -> None:
    """mypyc compiles single inheritance only: each part of the connection has one base."""
    from aionetstack.core.tcp.connection import TcpConnection

    for cls in TcpConnection.__mro__[:-1]:
        assert len(cls.__bases__) == 1, cls

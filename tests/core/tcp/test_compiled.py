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

from aionetstack.compiled import COMPILED_MODULES, compiled_modules, stale_among

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


def _checkout(tmp_path: Path, *, setup: bool = True) -> tuple[Path, Path]:
    """A package with one compiled module, built at time 1000, in a checkout or not."""
    package = tmp_path / "aionetstack"
    (package / "core" / "tcp").mkdir(parents=True)
    (package / "wire").mkdir()
    (package / "aio").mkdir()
    (package / "link").mkdir()
    if setup:
        (tmp_path / "setup.py").write_text("")
    for source in ("core/tcp/tcb.py", "core/tcp/options.py", "wire/tcp.py", "aio/api.py",
                   "aio/driver.py", "config.py", "errors.py", "link/tun_path.py",
                   "link/receive_pool.py", "link/tap.py"):  # fmt: skip
        (package / source).write_text("")
        os.utime(package / source, (900, 900))
    built = package / "core" / "tcp" / "tcb.cpython-311-x86_64-linux-gnu.so"
    built.write_bytes(b"")
    os.utime(built, (1000, 1000))
    return package, built


@pytest.mark.parametrize(
    "edited",
    [
        "core/tcp/tcb.py",
        "core/tcp/options.py",
        "wire/tcp.py",
        "aio/driver.py",
        "config.py",
        "errors.py",
        "link/tun_path.py",
        "link/receive_pool.py",
    ],
)
def test_an_edit_of_any_source_the_compiled_code_may_hold_makes_it_stale(
    tmp_path: Path, edited: str
) -> None:
    package, built = _checkout(tmp_path)
    origins = [("aionetstack.core.tcp.tcb", str(built))]
    assert stale_among(origins, package) == []
    os.utime(package / edited, (1100, 1100))  # edited after the build
    assert stale_among(origins, package) == ["aionetstack.core.tcp.tcb"]


def test_a_shared_library_rebuilt_after_the_edit_makes_it_current(tmp_path: Path) -> None:
    """mypyc's code lives in one shared library beside the package: a rebuild that left
    the module's own small extension untouched still holds the edit."""
    package, built = _checkout(tmp_path)
    origins = [("aionetstack.core.tcp.tcb", str(built))]
    os.utime(package / "core" / "tcp" / "tcb.py", (1100, 1100))
    shared = tmp_path / "aionetstack_native__mypyc.cpython-311-x86_64-linux-gnu.so"
    shared.write_bytes(b"")
    os.utime(shared, (1050, 1050))  # built before the edit: still stale
    assert stale_among(origins, package) == ["aionetstack.core.tcp.tcb"]
    os.utime(shared, (1200, 1200))  # rebuilt after it
    assert stale_among(origins, package) == []


def test_an_edit_outside_what_core_may_import_leaves_it_current(tmp_path: Path) -> None:
    package, built = _checkout(tmp_path)
    os.utime(package / "aio" / "api.py", (1100, 1100))
    os.utime(package / "link" / "tap.py", (1100, 1100))
    assert stale_among([("aionetstack.core.tcp.tcb", str(built))], package) == []


def test_an_installed_package_is_never_called_stale(tmp_path: Path) -> None:
    """A wheel's files carry no build times: only a checkout (setup.py beside) is checked."""
    package, built = _checkout(tmp_path, setup=False)
    os.utime(package / "core" / "tcp" / "tcb.py", (1100, 1100))
    assert stale_among([("aionetstack.core.tcp.tcb", str(built))], package) == []

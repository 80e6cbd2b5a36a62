"""Fixtures shared by the whole suite.

``netns``: a fresh network namespace entered by the test's thread and deleted
afterwards. Every test that creates a TUN or sends real packets uses it, so
nothing can leave the machine. Without root it skips with the reason, unless
``AIONETSTACK_REQUIRE_TUN=1`` (CI), where it fails instead. While it is entered the
objects the test session already holds are frozen out of the garbage collector
(``gc.freeze``): late in a whole-suite run a full collection of them took 107-148 ms
here, and one landing in the middle of a test held every ACK of the stack under test
that long, so the kernel peer sent tail-loss probes, retransmissions and resets that
the tests asserting clean kernel counters count as the stack's fault. A long-running
service embedding the stack does the same after start-up (``docs/performance.md``).

Every ``StackCore`` made in the test process checks its cached deadline
(``TIMER_ANSWER_CHECK``, core/timer_generation.py): the layers are asked after every
pass anyway, and a test fails if an answer the stack would have reused was later than
the true one, i.e. a timer source set an earlier deadline without bumping
``timer_generation``.

Property tests draw their examples deterministically (hypothesis ``derandomize``):
every run tries the same examples, so a red run can be repeated. Set
``HYPOTHESIS_PROFILE=explore`` to search with fresh random examples instead.
"""

from __future__ import annotations

import gc
import os
import runpy
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Before the package is imported: which of its modules mypyc compiled (setup.py), and,
# with AIONETSTACK_INTERPRETED=1, their Python sources loaded in their place.
_COMPILED = runpy.run_path(str(Path(__file__).parent.parent / "aionetstack" / "compiled.py"))
if os.environ.get("AIONETSTACK_INTERPRETED") == "1":
    _COMPILED["load_sources_first"]()

from aionetstack.compiled import compiled_modules, stale_compiled_modules  # noqa: E402
from aionetstack.core.timer_generation import TIMER_ANSWER_CHECK  # noqa: E402
from aionetstack.testing.netns import (  # noqa: E402
    Namespace,
    NamespaceUnavailableError,
    namespace_support,
    network_namespace,
)

settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
TIMER_ANSWER_CHECK.enabled = True


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a compiled module older than its source (edited, not rebuilt)."""
    stale = stale_compiled_modules()
    if stale:
        pytest.exit(
            f"compiled modules older than the sources they hold: {', '.join(stale)}; rebuild "
            "(pip install -e .) or run the sources (AIONETSTACK_INTERPRETED=1)",
            returncode=4,
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that patch methods of the TCP connection run only where it is interpreted
    (a patched method is not seen by compiled callers; CI runs the suite both ways)."""
    if not compiled_modules():
        return
    skip = pytest.mark.skip(
        reason="the TCP connection is compiled here; AIONETSTACK_INTERPRETED=1 runs this"
    )
    for item in items:
        if item.get_closest_marker("interpreted") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_late_timer_answers() -> Iterator[None]:
    """Fail a test in which a stack's cached deadline was later than the true one."""
    TIMER_ANSWER_CHECK.late = 0
    yield
    assert TIMER_ANSWER_CHECK.late == 0, "a timer source did not bump timer_generation"


def tun_unavailable(reason: str) -> None:
    """Skip, or fail when CI demands that TUN tests really run."""
    if os.environ.get("AIONETSTACK_REQUIRE_TUN") == "1":
        pytest.fail(f"AIONETSTACK_REQUIRE_TUN=1 but TUN tests cannot run here: {reason}")
    pytest.skip(reason)


@pytest.fixture
def netns() -> Iterator[Namespace]:
    """A private network namespace for the duration of one test."""
    reason = namespace_support()
    if reason is not None:
        tun_unavailable(reason)
    try:
        context = network_namespace("aionstest")
        namespace = context.__enter__()
    except NamespaceUnavailableError as error:
        tun_unavailable(str(error))
        raise
    gc.freeze()
    try:
        yield namespace
    finally:
        gc.unfreeze()
        context.__exit__(None, None, None)

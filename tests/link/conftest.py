"""Fixtures for link tests: a private network namespace for anything touching a TUN."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from aionetstack.testing.netns import (
    Namespace,
    NamespaceUnavailableError,
    namespace_support,
    network_namespace,
)


def _unavailable(reason: str) -> None:
    """Skip, or fail when CI demands that TUN tests really run."""
    if os.environ.get("AIONETSTACK_REQUIRE_TUN") == "1":
        pytest.fail(f"AIONETSTACK_REQUIRE_TUN=1 but TUN tests cannot run here: {reason}")
    pytest.skip(reason)


@pytest.fixture
def netns() -> Iterator[Namespace]:
    """A fresh network namespace entered by this thread, deleted after the test."""
    reason = namespace_support()
    if reason is not None:
        _unavailable(reason)
    try:
        context = network_namespace("aionslk")
        namespace = context.__enter__()
    except NamespaceUnavailableError as exc:
        _unavailable(str(exc))
        raise  # unreachable: _unavailable raises
    try:
        yield namespace
    finally:
        context.__exit__(None, None, None)

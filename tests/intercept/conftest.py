"""Fixtures for intercept tests: kernel-side servers in the test's namespace."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from aionetstack.testing.kernel_servers import KernelServers


@pytest.fixture
def kernel_servers() -> Iterator[KernelServers]:
    """Kernel servers in the current (test) namespace: request ``netns`` first."""
    servers = KernelServers(random.Random(15).randbytes(1 << 20))
    try:
        yield servers
    finally:
        servers.close()

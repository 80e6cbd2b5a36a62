"""Shared fixtures: two stacks joined by a memory link on the running loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aionetstack import Impairment, MemoryLink, Stack

NEAR = "198.18.0.2"
FAR = "198.18.0.1"


@pytest.fixture
async def stacks() -> AsyncIterator[tuple[Stack, Stack]]:
    """``(near, far)``: 198.18.0.2 and 198.18.0.1 on one /24, no impairment."""
    near_link, far_link = MemoryLink.pair(mtu=1500)
    async with (
        Stack(far_link, address=f"{FAR}/24", seed=2) as far,
        Stack(near_link, address=f"{NEAR}/24", seed=1) as near,
    ):
        yield near, far


def impaired_pair(impairment: Impairment) -> tuple[MemoryLink, MemoryLink]:
    return MemoryLink.pair(mtu=1500, impairment=impairment)

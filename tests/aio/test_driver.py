"""The asyncio driver survives bugs inside the stack: reported, counted, never wedged."""

from __future__ import annotations

import asyncio
from typing import Any

from aionetstack import Stack
from aionetstack.core.stack import StackCore

FAR = "198.18.0.1"


class BrokenOnce:
    """A core as the driver's pump sees it, whose first ``receive_packet`` raises (a bug
    inside the stack); everything else is the core's."""

    def __init__(self, core: StackCore) -> None:
        self._core = core
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)

    def receive_packet(self, data: bytes, now: float) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("simulated core bug")
        self._core.receive_packet(data, now)


async def test_an_exception_in_the_core_is_reported_and_the_stack_goes_on(
    stacks: tuple[Stack, Stack],
) -> None:
    near, far = stacks
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    assert isinstance(far.core, StackCore)
    broken = BrokenOnce(far.core)
    far.driver._pump._core = broken
    try:
        await near.ping(FAR, timeout=0.2)
    except TimeoutError:
        pass  # the first request met the bug
    assert await near.ping(FAR, timeout=1) > 0
    loop.set_exception_handler(None)
    assert [str(c["exception"]) for c in reported] == ["simulated core bug"]
    assert "internal error" in reported[0]["message"]
    assert far.statistics()["driver"]["internal_errors"] == 1
    assert broken.calls >= 2  # the packets after the bug reached the core

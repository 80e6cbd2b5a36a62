"""The asyncio driver survives bugs inside the stack: reported, counted, never wedged."""

from __future__ import annotations

import asyncio
from typing import Any

from aionetstack import Stack

FAR = "198.18.0.1"


async def test_an_exception_in_the_core_is_reported_and_the_stack_goes_on(
    stacks: tuple[Stack, Stack],
) -> None:
    near, far = stacks
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    original = far.core.receive_packet
    calls = 0

    def broken_once(data: bytes, now: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("simulated core bug")
        original(data, now)

    far.core.receive_packet = broken_once  # type: ignore[method-assign]
    try:
        await near.ping(FAR, timeout=0.2)
    except TimeoutError:
        pass  # the first request met the bug
    assert await near.ping(FAR, timeout=1) > 0
    loop.set_exception_handler(None)
    assert [str(c["exception"]) for c in reported] == ["simulated core bug"]
    assert "internal error" in reported[0]["message"]
    assert far.statistics()["driver"]["internal_errors"] == 1

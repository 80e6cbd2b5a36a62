"""Fixtures for the anyio faces, run by anyio's pytest plugin on asyncio and on trio.

pytest-asyncio runs in ``auto`` mode for the rest of the suite, and in that mode
it takes every ``async def`` test (it turns the item into its own ``Coroutine``
item and runs it on an asyncio runner, whatever ``anyio_backend`` says) and
sets up every async fixture on its own loop. Two measures keep it off the
tests in this directory:

* :func:`pytest_collection_modifyitems` turns the items marked ``anyio`` here
  back into plain ``pytest.Function`` items, which anyio's plugin runs on the
  backend ``anyio_backend`` names;
* nothing here is an async fixture: tests open their stacks inside the test,
  with :func:`open_stacks` or the :func:`with_stacks` decorator.

``test_streams.py::test_the_backend_is_the_one_asked_for`` checks both.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from aionetstack import MemoryLink, StackConfig
from aionetstack.anyio import AnyioStack

NEAR = "198.18.0.2"
FAR = "198.18.0.1"
Stacks = tuple[AnyioStack, AnyioStack]


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give the anyio tests of this directory back to anyio's plugin (see above)."""
    for index, item in enumerate(items):
        if (
            isinstance(item, pytest.Function)
            and type(item) is not pytest.Function
            and item.get_closest_marker("anyio") is not None
            and HERE in item.path.resolve().parents
        ):
            items[index] = pytest.Function.from_parent(
                item.parent, name=item.name, callspec=getattr(item, "callspec", None),
                callobj=item.obj, fixtureinfo=item._fixtureinfo, keywords=item.keywords,
                originalname=item.originalname,
            )  # fmt: skip


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every anyio test runs on both backends."""
    return str(request.param)


@asynccontextmanager
async def open_stacks(config: StackConfig | None = None) -> AsyncIterator[Stacks]:
    """``(near, far)``: 198.18.0.2 and 198.18.0.1 on one memory link."""
    near_link, far_link = MemoryLink.pair(mtu=1500)
    async with (
        AnyioStack(far_link, address=f"{FAR}/24", seed=2, config=config,
                   hosts={"near.test": NEAR}) as far,
        AnyioStack(near_link, address=f"{NEAR}/24", seed=1, config=config,
                   hosts={"far.test": FAR}) as near,
    ):  # fmt: skip
        yield near, far


def with_stacks(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Run ``test(stacks, **fixtures)`` inside :func:`open_stacks` (pytest sees the rest)."""

    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> None:
        async with open_stacks() as stacks:
            await test(stacks, *args, **kwargs)

    parameters = list(inspect.signature(test).parameters.values())[1:]
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return run

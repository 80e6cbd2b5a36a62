"""Happy Eyeballs (RFC 8305) under anyio: staggered attempts over a name's addresses.

Addresses alternate families (§4, the first family first); an attempt starts
when the previous one failed or ``delay`` passed without an answer (§5, 250 ms
by §8); the first connection wins, the attempts still running are cancelled
and any that connected meanwhile are handed to ``discard``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar

import anyio

__all__ = ["CONNECTION_ATTEMPT_DELAY", "interleave", "race"]

#: RFC 8305 §8: the recommended Connection Attempt Delay.
CONNECTION_ATTEMPT_DELAY: Final = 0.25

T = TypeVar("T")
R = TypeVar("R")


def interleave(addresses: Sequence[T], family_of: Callable[[T], int]) -> list[T]:
    """RFC 8305 §4: one address of the first family, then one of the other, and so on."""
    if not addresses:
        return []
    first = family_of(addresses[0])
    ours = [a for a in addresses if family_of(a) == first]
    others = [a for a in addresses if family_of(a) != first]
    result: list[T] = []
    while ours or others:
        if ours:
            result.append(ours.pop(0))
        if others:
            result.append(others.pop(0))
    return result


async def race(
    targets: Sequence[T],
    attempt: Callable[[T], Awaitable[R]],
    discard: Callable[[R], None],
    delay: float = CONNECTION_ATTEMPT_DELAY,
) -> R:
    """The first ``attempt(target)`` to succeed; every ``OSError`` if none does."""
    winner: list[R] = []
    errors: list[OSError] = []

    async def one(target: T, done: anyio.Event, group: anyio.abc.TaskGroup) -> None:
        try:
            result = await attempt(target)
        except OSError as error:
            errors.append(error)
        else:
            if winner:
                discard(result)  # connected in the same instant as the winner
            else:
                winner.append(result)
                group.cancel_scope.cancel()
        finally:
            done.set()

    async with anyio.create_task_group() as group:
        for target in targets:
            done = anyio.Event()
            group.start_soon(one, target, done, group)
            with anyio.move_on_after(delay):
                await done.wait()
    if winner:
        return winner[0]
    if len(errors) == 1 or all(str(e) == str(errors[0]) for e in errors):
        raise errors[0]
    raise OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")

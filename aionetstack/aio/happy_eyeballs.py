"""Happy Eyeballs (RFC 8305): connection attempts staggered over a name's addresses.

``interleave`` orders the addresses (RFC 8305 §4: alternate the families,
the first family first); ``race`` starts one attempt, and the next one when
``delay`` passes without an answer or as soon as an attempt fails (§5); the
first to connect wins, the others are cancelled, and any that connected in
the same instant are handed to ``discard``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, NoReturn, TypeVar

__all__ = ["CONNECTION_ATTEMPT_DELAY", "interleave", "race", "raise_connect_errors"]

#: RFC 8305 §8: the recommended Connection Attempt Delay.
CONNECTION_ATTEMPT_DELAY: Final = 0.25

T = TypeVar("T")
R = TypeVar("R")


def interleave(addresses: Sequence[tuple[int, T]], first_family_count: int = 1) -> list[T]:
    """``(family, address)`` pairs ordered by RFC 8305 §4: ``first_family_count`` of the
    first family, then one of the other, alternating."""
    if not addresses:
        return []
    first = addresses[0][0]
    ours = [a for f, a in addresses if f == first]
    others = [a for f, a in addresses if f != first]
    result: list[T] = ours[: first_family_count - 1]
    ours = ours[first_family_count - 1 :]
    while ours or others:
        if ours:
            result.append(ours.pop(0))
        if others:
            result.append(others.pop(0))
    return result


def raise_connect_errors(errors: list[BaseException], all_errors: bool) -> NoReturn:
    """Raise as ``loop.create_connection`` does when every attempt failed."""
    if not errors:
        raise OSError("no address to connect to")
    if all_errors:
        exceptions = [e for e in errors if isinstance(e, Exception)]
        raise ExceptionGroup("create_connection failed", exceptions)
    if len(errors) == 1 or all(str(e) == str(errors[0]) for e in errors):
        raise errors[0]
    raise OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")


async def race(
    targets: Sequence[T],
    attempt: Callable[[T], Awaitable[R]],
    delay: float | None,
    discard: Callable[[R], None],
    *,
    all_errors: bool = False,
) -> R:
    """The first of ``attempt(target)`` to succeed; ``delay=None`` tries one at a time."""
    errors: list[BaseException] = []
    if delay is None:
        for target in targets:
            try:
                return await attempt(target)
            except OSError as error:
                errors.append(error)
        raise_connect_errors(errors, all_errors)
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[R]] = set()
    winners: list[R] = []
    index = 0
    try:
        while not winners:
            if index < len(targets):
                running.add(loop.create_task(_awaited(attempt(targets[index]))))
                index += 1
            if not running:
                break
            wait = delay if index < len(targets) else None
            done, _ = await asyncio.wait(running, timeout=wait,
                                         return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            for task in done:
                running.discard(task)
                failure = task.exception()
                if failure is None:
                    winners.append(task.result())
                elif isinstance(failure, OSError):
                    errors.append(failure)
                else:
                    raise failure
    except BaseException:
        await _cancel(running, winners)
        for winner in winners:
            discard(winner)  # we are failing (or cancelled): nobody takes these
        raise
    await _cancel(running, winners)
    for extra in winners[1:]:
        discard(extra)
    if winners:
        return winners[0]
    raise_connect_errors(errors, all_errors)


async def _cancel(running: set[asyncio.Task[R]], winners: list[R]) -> None:
    """Cancel the attempts still running; keep any that connected in the meantime."""
    for task in running:
        task.cancel()
    if running:
        done, _ = await asyncio.wait(running)
        for task in done:
            if not task.cancelled() and task.exception() is None:
                winners.append(task.result())


async def _awaited(awaitable: Awaitable[R]) -> R:
    return await awaitable

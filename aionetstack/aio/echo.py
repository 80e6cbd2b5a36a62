"""ICMP echo for ``Stack.ping``: requests matched to replies by (identifier, sequence).

Numbering, sending and the reply record are ``core/echo.py``'s (shared with the
anyio driver); here each request waits on an asyncio future.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..core.addresses import ip_literal
from ..core.echo import DEFAULT_PING_SIZE, EchoReply, EchoRequests
from ..core.events import EchoReplyReceived, EchoUnreachable
from ..core.stack import StackCore

if TYPE_CHECKING:
    from .driver import AsyncioDriver

__all__ = ["DEFAULT_PING_SIZE", "EchoReply", "Pinger"]


class Pinger:
    """The echo requests of one stack, each waiting on a future for its reply."""

    __slots__ = ("_requests", "_waiters")

    def __init__(self, core: StackCore, identifier: int) -> None:
        self._requests = EchoRequests(core, identifier)
        self._waiters: dict[tuple[int, int], asyncio.Future[tuple[float, EchoReplyReceived]]] = {}

    async def echo(
        self, driver: AsyncioDriver, host: str, *, timeout: float, size: int, ttl: int | None
    ) -> EchoReply:
        """Send one echo request and wait for its reply (see ``Stack.echo``)."""
        destination = ip_literal(host)
        self._requests.validate(size, timeout, destination)
        key = self._requests.next_key()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[float, EchoReplyReceived]] = loop.create_future()
        self._waiters[key] = future
        try:
            self._requests.send(destination, key, size, ttl)
            sent_at = loop.time()
            driver.flush_now()
            async with asyncio.timeout(timeout):
                received_at, event = await future
        except TimeoutError:
            raise TimeoutError(f"no echo reply from {host} within {timeout} s") from None
        finally:
            self._waiters.pop(key, None)
        return EchoRequests.reply(event, received_at - sent_at)

    def on_reply(self, event: EchoReplyReceived) -> None:
        future = self._waiters.get((event.identifier, event.sequence))
        if future is not None and not future.done():
            future.set_result((asyncio.get_running_loop().time(), event))

    def on_unreachable(self, event: EchoUnreachable) -> None:
        future = self._waiters.get((event.identifier, event.sequence))
        if future is not None and not future.done():
            future.set_exception(event.error)

    def fail_all(self, error: Exception) -> None:
        """Fail every pending ping (the stack is closing)."""
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(error)
        self._waiters.clear()

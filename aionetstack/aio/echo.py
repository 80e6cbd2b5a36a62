"""ICMP echo for ``Stack.ping``: requests matched to replies by (identifier, sequence)."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..core.events import EchoReplyReceived, EchoUnreachable
from ..core.stack import StackCore
from .addresses import ip_literal

if TYPE_CHECKING:
    from .driver import AsyncioDriver

__all__ = ["DEFAULT_PING_SIZE", "EchoReply", "Pinger"]

#: Payload bytes of the classic 64-byte ping (iputils' default; RFC 792 sets none).
DEFAULT_PING_SIZE: Final = 56
#: The largest echo payload: an IP datagram's 65,535 bytes less the IP header (IPv4;
#: IPv6's payload length excludes its header) and the 8-byte ICMP echo header.
_MAX_PAYLOAD: Final = {4: 65535 - 20 - 8, 16: 65535 - 8}


@dataclass(frozen=True, slots=True)
class EchoReply:
    """One answered ping: round-trip time in seconds, reply TTL, ICMP bytes, who answered."""

    rtt: float
    ttl: int
    size: int
    source: str
    sequence: int


class Pinger:
    """The echo requests of one stack, each waiting on a future for its reply."""

    __slots__ = ("_core", "_identifier", "_sequence", "_waiters")

    def __init__(self, core: StackCore, identifier: int) -> None:
        self._core = core
        self._identifier = identifier
        self._sequence = 0
        self._waiters: dict[tuple[int, int], asyncio.Future[tuple[float, EchoReplyReceived]]] = {}

    async def echo(
        self, driver: AsyncioDriver, host: str, *, timeout: float, size: int, ttl: int | None
    ) -> EchoReply:
        """Send one echo request and wait for its reply (see ``Stack.echo``)."""
        destination = ip_literal(host)
        room = _MAX_PAYLOAD[len(destination)]
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= room:
            raise ValueError(f"size must be an int in 0..{room} (larger ones are fragmented)")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self._sequence = (self._sequence + 1) & 0xFFFF
        key = (self._identifier, self._sequence)
        payload = bytes((i + 8) & 0xFF for i in range(size))  # iputils' pattern after its timestamp
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[float, EchoReplyReceived]] = loop.create_future()
        self._waiters[key] = future
        try:
            self._core.send_echo_request(destination, key[0], key[1], payload, ttl=ttl)
            sent_at = loop.time()
            driver.flush_now()
            async with asyncio.timeout(timeout):
                received_at, event = await future
        except TimeoutError:
            raise TimeoutError(f"no echo reply from {host} within {timeout} s") from None
        finally:
            self._waiters.pop(key, None)
        return EchoReply(
            rtt=received_at - sent_at, ttl=event.ttl, size=8 + len(event.payload),
            source=str(ipaddress.ip_address(event.source)), sequence=event.sequence,
        )  # fmt: skip

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

"""``Stack``: the whole stack on an asyncio loop, and the "current stack" it becomes."""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ..config import StackConfig
from ..core.events import (
    EchoReplyReceived,
    EchoUnreachable,
    UdpDatagramReceived,
    UdpErrorReceived,
)
from ..core.stack import StackCore
from ..link.base import Link
from .addresses import ip_literal, parse_endpoint
from .datagram import DatagramTransport
from .driver import AsyncioDriver

__all__ = ["EchoReply", "Stack", "current_stack"]

_current: contextvars.ContextVar[Stack | None] = contextvars.ContextVar(
    "aionetstack_current_stack", default=None
)

#: ICMP echo payload bytes that make the classic 64-byte ping (RFC 792 has no default).
DEFAULT_PING_SIZE = 56


def current_stack() -> Stack:
    """Return the innermost running ``async with Stack(...)``; RuntimeError if none."""
    stack = _current.get()
    if stack is None:
        raise RuntimeError("no current aionetstack Stack: use 'async with Stack(...)' first")
    return stack


@dataclass(frozen=True, slots=True)
class EchoReply:
    """One answered ping: round-trip time in seconds, reply TTL, ICMP bytes, who answered."""

    rtt: float
    ttl: int
    size: int
    source: str
    sequence: int


class Stack:
    """A TCP/IP stack running on the current asyncio loop over ``link``.

    ``address`` is one interface string or several (``"198.18.0.2/24"``);
    ``gateway`` the default route's next hop; ``pcap`` a file path that records
    every packet both ways. ``seed`` makes ISNs, ports and identifiers
    reproducible (tests); by default they come from ``random.SystemRandom``.
    The stack owns the link and closes it when it closes.
    """

    def __init__(
        self,
        link: Link,
        *,
        address: str | Sequence[str],
        gateway: str | None = None,
        pcap: str | os.PathLike[str] | None = None,
        config: StackConfig | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(link, Link):
            raise TypeError(
                f"link must be a Link (TunLink, MemoryLink ...), got {type(link).__name__}"
            )
        addresses = [address] if isinstance(address, str) else list(address)
        self._rng: random.Random = random.SystemRandom() if seed is None else random.Random(seed)
        self.config = config or StackConfig()
        self.core = StackCore(
            addresses, gateway=gateway, mtu=link.mtu, config=self.config, rng=self._rng,
            receive_checksums_partial=link.receive_checksums_partial,
        )  # fmt: skip
        self._capture = None
        if pcap is not None:
            from ..link.pcap import CapturingLink

            link = CapturingLink(link, os.fspath(pcap))
            self._capture = link
        self.link = link
        self._driver: AsyncioDriver | None = None
        self._token: contextvars.Token[Stack | None] | None = None
        self._handlers: dict[type, Callable[[Any], None]] = {
            EchoReplyReceived: self._on_echo_reply,
            EchoUnreachable: self._on_echo_unreachable,
            UdpDatagramReceived: self._on_udp_datagram,
            UdpErrorReceived: self._on_udp_error,
        }
        self._ping_waiters: dict[
            tuple[int, int], asyncio.Future[tuple[float, EchoReplyReceived]]
        ] = {}
        self._ping_identifier = self._rng.getrandbits(16)
        self._ping_sequence = 0
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> Stack:
        self.start()
        self._token = _current.set(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        await self.aclose()

    def start(self) -> None:
        """Start running on the current loop (``async with`` does this)."""
        if self._closed:
            raise RuntimeError("this Stack is closed")
        if self._driver is not None:
            return
        loop = asyncio.get_running_loop()
        self._driver = AsyncioDriver(
            self.core, self.link, loop, self._dispatch, batch=self.config.receive_batch
        )
        self._driver.start()

    async def aclose(self) -> None:
        """Stop, fail pending pings, and close the link (and the pcap file)."""
        if self._closed:
            return
        self._closed = True
        if self._driver is not None:
            self._driver.flush_now()
            self._driver.stop()
        for future in self._ping_waiters.values():
            if not future.done():
                future.set_exception(ConnectionAbortedError("the stack was closed"))
        self._ping_waiters.clear()
        self.link.close()

    @property
    def driver(self) -> AsyncioDriver:
        if self._driver is None:
            raise RuntimeError("the Stack is not running: use 'async with Stack(...)'")
        return self._driver

    # -- ping -------------------------------------------------------------------

    async def ping(
        self,
        host: str,
        timeout: float = 1.0,
        *,
        size: int = DEFAULT_PING_SIZE,
        ttl: int | None = None,
    ) -> float:
        """Send one ICMP echo request and return the round-trip time in seconds.

        Raises ``TimeoutError`` if no reply comes within ``timeout``, or the
        ``OSError`` an ICMP error reported (e.g. ``EHOSTUNREACH``).
        """
        return (await self.echo(host, timeout=timeout, size=size, ttl=ttl)).rtt

    async def echo(
        self,
        host: str,
        *,
        timeout: float = 1.0,
        size: int = DEFAULT_PING_SIZE,
        ttl: int | None = None,
    ) -> EchoReply:
        """Like :meth:`ping` but return the whole :class:`EchoReply`."""
        destination = ip_literal(host)
        if not isinstance(size, int) or not 0 <= size <= self.core.mtu - 28:
            raise ValueError(
                f"size must be an int in 0..{self.core.mtu - 28} (MTU {self.core.mtu})"
            )
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        driver = self.driver
        self._ping_sequence = (self._ping_sequence + 1) & 0xFFFF
        key = (self._ping_identifier, self._ping_sequence)
        payload = bytes((i + 8) & 0xFF for i in range(size))  # iputils' pattern after its timestamp
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[float, EchoReplyReceived]] = loop.create_future()
        self._ping_waiters[key] = future
        try:
            self.core.send_echo_request(destination, key[0], key[1], payload, ttl=ttl)
            sent_at = loop.time()
            driver.flush_now()
            async with asyncio.timeout(timeout):
                received_at, event = await future
        except TimeoutError:
            raise TimeoutError(f"no echo reply from {host} within {timeout} s") from None
        finally:
            self._ping_waiters.pop(key, None)
        return EchoReply(
            rtt=received_at - sent_at, ttl=event.ttl, size=8 + len(event.payload),
            source=str(ipaddress.ip_address(event.source)), sequence=event.sequence,
        )  # fmt: skip

    # -- UDP --------------------------------------------------------------------

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str | None, int] | None = None,
        remote_addr: tuple[str, int] | None = None,
        *,
        reuse_port: bool | None = None,
        allow_broadcast: bool | None = None,
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        """Open a UDP endpoint, as ``loop.create_datagram_endpoint`` does.

        ``local_addr=None`` binds an ephemeral port on every address;
        ``remote_addr`` connects the endpoint (only that peer is heard, and ICMP
        errors for it reach ``error_received``). ``reuse_port`` and
        ``allow_broadcast`` are accepted for signature compatibility; sharing
        a port is not supported and raises ``ValueError``.
        """
        if reuse_port:
            raise ValueError("reuse_port is not supported by aionetstack")
        del allow_broadcast  # broadcasts are sent like any datagram
        driver = self.driver
        local_address, local_port = (
            (None, 0) if local_addr is None else parse_endpoint(local_addr, "local_addr")
        )
        remote = None
        if remote_addr is not None:
            remote_host, remote_port = parse_endpoint(remote_addr, "remote_addr")
            if remote_host is None or remote_port == 0:
                raise ValueError(f"remote_addr needs a host and a non-zero port: {remote_addr!r}")
            self.core.routes.route(remote_host)  # ENETUNREACH now rather than on first send
            remote = (remote_host, remote_port)
        endpoint = self.core.udp.bind(local_address, local_port, remote)
        protocol = protocol_factory()
        transport = DatagramTransport(asyncio.get_running_loop(), driver, endpoint, protocol)
        protocol.connection_made(transport)
        return transport, protocol

    def _on_udp_datagram(self, event: UdpDatagramReceived) -> None:
        transport = event.endpoint.user_data
        if isinstance(transport, DatagramTransport):
            transport.deliver(event.data, event.source, event.source_port)

    def _on_udp_error(self, event: UdpErrorReceived) -> None:
        transport = event.endpoint.user_data
        if isinstance(transport, DatagramTransport):
            transport.deliver_error(event.error)

    # -- statistics ---------------------------------------------------------------

    def statistics(self) -> dict[str, dict[str, int]]:
        """Counters per layer (``ip``, ``icmp``, ``udp``, ``tcp``, ``link``): ``netstat -s``."""
        result = self.core.statistics()
        result["link"] = dict(self.link.statistics())
        return result

    # -- events -------------------------------------------------------------------

    def _dispatch(self, event: object) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _on_echo_reply(self, event: EchoReplyReceived) -> None:
        future = self._ping_waiters.get((event.identifier, event.sequence))
        if future is not None and not future.done():
            future.set_result((asyncio.get_running_loop().time(), event))

    def _on_echo_unreachable(self, event: EchoUnreachable) -> None:
        future = self._ping_waiters.get((event.identifier, event.sequence))
        if future is not None and not future.done():
            future.set_exception(event.error)

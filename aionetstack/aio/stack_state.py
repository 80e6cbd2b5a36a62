"""The fields of a :class:`~.stack.Stack` and its construction: the core, the link
(wrapped for pcap capture), the resolver, the pinger, and the tables of servers,
transports and endpoints the driver's events are dispatched to.

``Stack`` joins this with its parts, one concern per module: ``tcp_calls`` (the
asyncio TCP calls: connections, servers, streams, TLS, and the TCP events that
drive transports) and ``udp_calls`` (datagram endpoints and their events). Under
``TYPE_CHECKING`` this class declares the methods one part calls in another.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import random
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..assembly import assemble
from ..config import StackConfig
from ..core.ethernet import EthernetHost
from ..core.events import EchoReplyReceived, EchoUnreachable, UdpDatagramReceived, UdpErrorReceived
from ..core.intercept import (
    InterceptedTcp,
    InterceptedTcpGone,
    InterceptedUdp,
    InterceptedUdpClosed,
    InterceptedUdpReadable,
)
from ..core.pump import EventHandlers
from ..core.stack import StackCore
from ..core.tcp.events import (
    TcpAccepted,
    TcpClosed,
    TcpConnected,
    TcpEofReceived,
    TcpReadable,
    TcpWritable,
)
from ..link.base import Link
from ..names import HostsTable, StubResolver
from .addresses import ip_literal
from .driver import AsyncioDriver
from .echo import Pinger
from .getaddrinfo import AddrInfo
from .intercept import Interception
from .resolver import StackResolver
from .server import Server
from .transport import TcpTransport, on_tcp_eof, on_tcp_readable, on_tcp_writable

if TYPE_CHECKING:
    from ..core.tcp import TcpEndpoint, TcpListenerEndpoint
from typing import TYPE_CHECKING


def _is_literal(host: str) -> bool:
    try:
        ip_literal(host)
    except ValueError:
        return False
    return True


class StackState:
    """The fields of :class:`~.stack.Stack` and its construction (see the module docstring)."""

    def __init__(
        self,
        link: Link,
        *,
        address: str | Sequence[str],
        gateway: str | Sequence[str] | None = None,
        pcap: str | os.PathLike[str] | None = None,
        config: StackConfig | None = None,
        seed: int | None = None,
        nameservers: Sequence[str | tuple[str, int]] = (),
        hosts: Mapping[str, str | Sequence[str]] | None = None,
        close_timeout: float = 0.0,
    ) -> None:
        if close_timeout < 0:
            raise ValueError(f"close_timeout must be >= 0 seconds, got {close_timeout}")
        #: Default ``linger`` of :meth:`aclose` (and so of ``async with``): 0 resets at once.
        self.close_timeout = close_timeout
        self._link_error: OSError | None = None
        self._close_stats = {"closed_drained": 0, "closed_reset": 0}
        parts = assemble(link, address, gateway=gateway, config=config, seed=seed, pcap=pcap)
        self._rng: random.Random = parts.rng
        self.config = parts.config
        self.core = parts.core
        #: What the driver runs: the core itself, or its Ethernet layer on a TAP.
        self._host: StackCore | EthernetHost = parts.host
        self.link = parts.link
        self._driver: AsyncioDriver | None = None
        self._token: contextvars.Token[Any] | None = None
        self._pinger = Pinger(self.core, self._rng.getrandbits(16))
        #: Where the driver sends each of the core's events (by its class).
        self._dispatch = EventHandlers(
            {
                EchoReplyReceived: self._pinger.on_reply,
                EchoUnreachable: self._pinger.on_unreachable,
                UdpDatagramReceived: self._on_udp_datagram,
                UdpErrorReceived: self._on_udp_error,
                TcpConnected: self._on_tcp_connected,
                TcpAccepted: self._on_tcp_accepted,
                TcpReadable: on_tcp_readable,
                TcpWritable: on_tcp_writable,
                TcpEofReceived: on_tcp_eof,
                TcpClosed: self._on_tcp_closed,
                InterceptedTcp: self._on_intercepted,
                InterceptedTcpGone: self._on_intercepted,
                InterceptedUdp: self._on_intercepted,
                InterceptedUdpReadable: self._on_intercepted,
                InterceptedUdpClosed: self._on_intercepted,
            }
        )
        self._interceptions: set[Interception] = set()
        self._servers: set[Server] = set()
        self._listener_servers: dict[TcpListenerEndpoint, Server] = {}
        self._transports: dict[TcpTransport, Server | None] = {}
        #: Every transport's ``on_lost``, bound once (a bound method is 64 bytes a transport).
        self._on_transport_lost: Callable[[TcpTransport], None] = self._forget_transport
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        if isinstance(nameservers, str):
            nameservers = [nameservers]
        machine = StubResolver(
            nameservers, hosts=HostsTable(hosts), config=self.config.resolver, rng=self._rng
        )
        self.resolver = StackResolver(machine, self.core, lambda: self.driver, self.open_connection)

    if TYPE_CHECKING:
        # Implemented by the other parts of the class.

        def _attach(
            self, connection: TcpEndpoint, protocol: asyncio.BaseProtocol, server: Server | None
        ) -> TcpTransport: ...

        def _forget_transport(self, transport: TcpTransport) -> None: ...

        def _loop_task(self, coroutine: Any) -> None: ...

        def _on_intercepted(
            self,
            event: InterceptedTcp
            | InterceptedTcpGone
            | InterceptedUdp
            | InterceptedUdpReadable
            | InterceptedUdpClosed,
        ) -> None: ...

        def _on_tcp_accepted(self, event: TcpAccepted) -> None: ...

        def _on_tcp_closed(self, event: TcpClosed) -> None: ...

        def _on_tcp_connected(self, event: TcpConnected) -> None: ...

        def _on_udp_datagram(self, event: UdpDatagramReceived) -> None: ...

        def _on_udp_error(self, event: UdpErrorReceived) -> None: ...

        @property
        def driver(self) -> AsyncioDriver: ...

        async def getaddrinfo(
            self,
            host: str | bytes | None,
            port: str | int | None,
            *,
            family: int = 0,
            type: int = 0,
            proto: int = 0,
            flags: int = 0,
        ) -> list[AddrInfo]: ...

        async def open_connection(
            self, host: str, port: int, *, limit: int = 2**16, **kwargs: Any
        ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...

        def request_flush(self) -> None: ...

        async def resolve_host(
            self, host: str, *, family: int = 0, type: int = socket.SOCK_STREAM
        ) -> list[str]: ...

"""``Stack``: the whole stack on an asyncio loop, and the "current stack" it becomes."""

from __future__ import annotations

import asyncio
import contextvars
import errno
import logging
import socket
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..core.drain import DRAIN_POLL, UNDRAINED, close_unowned
from ..core.intercept import (
    InterceptedTcp,
    InterceptedTcpGone,
    InterceptedUdp,
    InterceptedUdpClosed,
    InterceptedUdpReadable,
)
from ..core.ip import RouteEntry
from .driver import AsyncioDriver
from .echo import DEFAULT_PING_SIZE, EchoReply
from .getaddrinfo import AddrInfo, getaddrinfo, getnameinfo
from .intercept import Interception, TcpHandler, UdpHandler, add_interception

if TYPE_CHECKING:
    from ..core.tcp import TcpEndpoint
from .stack_state import StackState
from .tcp_calls import _TcpCalls
from .udp_calls import _UdpCalls

__all__ = ["Stack", "current_stack"]

_current: contextvars.ContextVar[Stack | None] = contextvars.ContextVar(
    "aionetstack_current_stack", default=None
)
_logger = logging.getLogger("aionetstack")


def current_stack() -> Stack:
    """Return the innermost running ``async with Stack(...)``; RuntimeError if none."""
    stack = _current.get()
    if stack is None:
        raise RuntimeError("no current aionetstack Stack: use 'async with Stack(...)' first")
    return stack


class Stack(_TcpCalls, _UdpCalls, StackState):
    """A TCP/IP stack running on the current asyncio loop over ``link``.

    ``address`` is one interface string or several (``"198.18.0.2/24"``);
    ``gateway`` the default routes' next hops (one per family, e.g.
    ``["198.18.0.1", "2001:2::1"]``); ``pcap`` a file path that records
    every packet both ways. ``seed`` makes ISNs, ports and identifiers
    reproducible (tests); by default they come from ``random.SystemRandom``.
    ``nameservers`` (addresses, or ``(address, port)``) and ``hosts`` (name ->
    address or addresses) serve names wherever a host is taken; see
    :meth:`getaddrinfo`. The stack owns the link and closes it when it closes.
    """

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
            self._host, self.link, loop, self._dispatch, batch=self.config.receive_batch,
            on_link_error=self._on_link_failed,
        )  # fmt: skip
        self._driver.start()

    async def aclose(self, linger: float | None = None) -> None:
        """Stop, fail pending pings, and close the link (and the pcap file).

        With ``linger`` seconds (default: ``close_timeout``), like ``SO_LINGER``: servers
        stop accepting, every connection is closed gracefully (what applications wrote
        is sent, then FIN), and the stack waits until the peers have acknowledged it all
        or ``linger`` passes; whatever is still unacknowledged then is reset. With 0 (the
        default) open connections are reset at once, as at a process exit.
        """
        linger = self.close_timeout if linger is None else linger
        if linger < 0:
            raise ValueError(f"linger must be >= 0 seconds, got {linger}")
        if linger > 0 and not self._closed and self._driver is not None and not self._link_error:
            await self._drain(linger)
        self.close()

    async def _drain(self, linger: float) -> None:
        """Close everything gracefully and wait (at most ``linger`` s) for the peers' ACKs."""
        for server in list(self._servers):
            server.close()
        for transport in list(self._transports):
            transport.close()
        closing = close_unowned(self.core.tcp.connections)  # and close the untaken ones
        self.request_flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + linger
        while (remaining := deadline - loop.time()) > 0 and not self._drained():
            await asyncio.sleep(min(DRAIN_POLL, remaining))
        unfinished = sum(c.state in UNDRAINED for c in self.core.tcp.connections)
        self._close_stats["closed_reset"] += unfinished
        self._close_stats["closed_drained"] += max(closing - unfinished, 0)

    def _drained(self) -> bool:
        """No connection still holds data or a FIN the peer has not acknowledged."""
        return not self._transports and not any(
            connection.state in UNDRAINED for connection in self.core.tcp.connections
        )

    def _on_link_failed(self, error: OSError) -> None:
        """The link failed for good (a TUN deleted while in use): every connection and
        pending ping fails with an OSError saying so; new operations raise it."""
        self._link_error = error
        _logger.error("aionetstack: the link failed, the stack stopped: %s", error)
        failure = OSError(errno.ENETDOWN, f"the stack's link failed: {error}")
        for connection in self.core.tcp.connections:
            connection.fail(failure)
        while (event := self.core.next_event()) is not None:
            self._dispatch(event)
        self._pinger.fail_all(failure)

    def close(self) -> None:
        """What :meth:`aclose` does, callable where nothing can be awaited (loop shutdown)."""
        if self._closed:
            return
        self._closed = True
        for server in list(self._servers):
            server.close()
        for interception in list(self._interceptions):
            interception.close()
            interception.cancel_handlers()
        self.resolver.close()
        for transport in list(self._transports):
            transport.abort()  # as a process exit: open connections are reset
        if self._driver is not None:
            self._driver.flush_now()  # the RSTs go out before the link closes
            self._driver.stop()
        self._pinger.fail_all(ConnectionAbortedError("the stack was closed"))
        self.link.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def driver(self) -> AsyncioDriver:
        if self._driver is None:
            raise RuntimeError("the Stack is not running: use 'async with Stack(...)'")
        if self._link_error is not None:
            raise OSError(errno.ENETDOWN, f"the stack's link failed: {self._link_error}")
        return self._driver

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
        """Like :meth:`ping` but return the whole :class:`EchoReply`; a name is resolved first."""
        address = (await self.resolve_host(host))[0]
        return await self._pinger.echo(self.driver, address, timeout=timeout, size=size, ttl=ttl)

    async def getaddrinfo(
        self,
        host: str | bytes | None,
        port: str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfo]:
        """``loop.getaddrinfo`` through the stack: the hosts table, the cache, then DNS.

        Numeric hosts are never queried. Raises ``socket.gaierror``:
        ``EAI_NONAME`` (no such name / no address), ``EAI_AGAIN`` (timeouts,
        server failures), ``EAI_FAMILY``, ``EAI_SERVICE``.
        """
        families = {socket.AF_INET if i.version == 4 else socket.AF_INET6
                    for i in self.core.routes.interfaces}  # fmt: skip
        return await getaddrinfo(
            self.resolver.resolve, host, port, family=family, type=type, proto=proto,
            flags=flags, local_families=families,
        )  # fmt: skip

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        """``loop.getnameinfo``: names from the hosts table only (no PTR queries)."""
        return getnameinfo(self.resolver.machine.hosts.reverse, sockaddr, flags)

    async def resolve_host(
        self, host: str, *, family: int = 0, type: int = socket.SOCK_STREAM
    ) -> list[str]:
        """The addresses of ``host`` (itself if it is one), in getaddrinfo's order."""
        if not isinstance(host, str):
            raise TypeError(f"host must be a str, got {type(host).__name__}")
        infos = await self.getaddrinfo(host, None, family=family, type=type)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def _loop_task(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # a failed server-side TLS handshake already closed its transport

    async def intercept(
        self,
        *,
        tcp: TcpHandler | None = None,
        udp: UdpHandler | None = None,
        networks: Sequence[str],
        icmp_echo: bool = True,
    ) -> Interception:
        """Terminate flows to any address in ``networks`` (tun2socks-style).

        ``tcp(flow)`` runs as a task for every SYN to an intercepted address
        that no connection or listener owns; it decides with ``await
        flow.accept()`` or ``flow.reject()`` (the SYN is held until then).
        ``udp(flow)`` runs for every new (source, destination) pair of
        datagrams. ``icmp_echo`` answers pings to intercepted addresses.
        Bounds and timeouts: ``StackConfig.intercept``. Raises ``ValueError``
        for a bad or overlapping network, ``TypeError`` for a bad handler.
        """
        self.driver  # noqa: B018 - RuntimeError unless running
        interception = add_interception(
            self, self.core.intercept, tcp=tcp, udp=udp, networks=networks, icmp_echo=icmp_echo
        )
        self._interceptions.add(interception)
        return interception

    def streams_for(
        self, connection: TcpEndpoint, limit: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Wrap an established connection in asyncio streams (intercept's accept)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport = self._attach(connection, protocol, None)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    def _on_intercepted(
        self,
        event: InterceptedTcp | InterceptedTcpGone | InterceptedUdp | InterceptedUdpReadable
        | InterceptedUdpClosed,
    ) -> None:  # fmt: skip
        owner = event.flow.rule.user_data
        if not isinstance(owner, Interception):
            return
        if isinstance(event, InterceptedTcp):
            owner.on_tcp(event.flow)
        elif isinstance(event, InterceptedUdp):
            owner.on_udp(event.flow)
        elif isinstance(event, (InterceptedUdpReadable, InterceptedUdpClosed)):
            owner.on_udp_readable(event.flow)

    def routes(self) -> list[RouteEntry]:
        """The routing table as ``ip route`` lists it: connected prefixes, static, defaults."""
        return self.core.route_entries()

    def add_route(self, network: str, via: str) -> None:
        """Add a static route (``"198.19.0.0/16"`` via an on-link gateway)."""
        self.core.routes.add_route(network, via)

    def statistics(self) -> dict[str, dict[str, int | str]]:
        """Counters per layer (``ip``, ``icmp``, ``udp``, ``tcp``, ``link``): ``netstat -s``.

        The link may add descriptive strings (a ``TunLink``'s ``"offload"`` status).
        """
        result: dict[str, dict[str, int | str]] = {
            layer: dict(counters) for layer, counters in self.core.statistics().items()
        }
        result["link"] = dict(self.link.statistics())
        if self._driver is not None:
            result["driver"] = {
                "internal_errors": self._driver.internal_errors,
                "link_errors": self._driver.link_errors,
                **self._close_stats,
            }
        result["names"] = dict(self.resolver.machine.statistics())
        return result

"""``Stack``: the whole stack on an asyncio loop, and the "current stack" it becomes."""

from __future__ import annotations

import asyncio
import contextvars
import errno
import logging
import os
import random
import socket
import ssl as ssl_module
from asyncio import sslproto
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..config import StackConfig
from ..core.drain import DRAIN_POLL, UNDRAINED, close_unowned
from ..core.ethernet import EthernetHost
from ..core.events import (
    EchoReplyReceived,
    EchoUnreachable,
    UdpDatagramReceived,
    UdpErrorReceived,
)
from ..core.intercept import (
    InterceptedTcp,
    InterceptedTcpGone,
    InterceptedUdp,
    InterceptedUdpClosed,
    InterceptedUdpReadable,
)
from ..core.ip import RouteEntry
from ..core.stack import StackCore
from ..core.tcp.events import (
    TcpAccepted,
    TcpClosed,
    TcpConnected,
    TcpEofReceived,
    TcpReadable,
    TcpWritable,
)
from ..core.tcp.state import TcpState
from ..link.base import Link
from ..names import HostsTable, StubResolver
from .addresses import ip_literal, parse_endpoint
from .datagram import DatagramTransport
from .driver import AsyncioDriver
from .echo import DEFAULT_PING_SIZE, EchoReply, Pinger
from .getaddrinfo import AddrInfo, getaddrinfo, getnameinfo
from .happy_eyeballs import CONNECTION_ATTEMPT_DELAY, race
from .happy_eyeballs import interleave as interleave_families
from .intercept import Interception, TcpHandler, UdpHandler, add_interception
from .options import client_ssl_context, refuse_unsupported
from .resolver import StackResolver
from .server import Server, listen_addresses
from .transport import TcpTransport

if TYPE_CHECKING:
    from ..core.tcp import TcpEndpoint, TcpListenerEndpoint

__all__ = ["Stack", "current_stack"]

_current: contextvars.ContextVar[Stack | None] = contextvars.ContextVar(
    "aionetstack_current_stack", default=None
)


def current_stack() -> Stack:
    """Return the innermost running ``async with Stack(...)``; RuntimeError if none."""
    stack = _current.get()
    if stack is None:
        raise RuntimeError("no current aionetstack Stack: use 'async with Stack(...)' first")
    return stack


_logger = logging.getLogger("aionetstack")
#: The graceful-close states and poll interval (shared with the anyio stack).
_UNDRAINED, _DRAIN_POLL = UNDRAINED, DRAIN_POLL


class Stack:
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
            transmit_offload=link.transmit_offload, max_packet_size=link.max_packet_size,
        )  # fmt: skip
        #: What the driver runs: the core itself, or its Ethernet layer on a TAP.
        self._host: StackCore | EthernetHost = self.core
        if getattr(link, "framing", "ip") == "ethernet":
            self._host = EthernetHost(self.core, getattr(link, "mac"))  # noqa: B009
        if pcap is not None:
            from ..link.pcap import CapturingLink

            link = CapturingLink(link, os.fspath(pcap))
        self.link = link
        self._driver: AsyncioDriver | None = None
        self._token: contextvars.Token[Stack | None] | None = None
        self._pinger = Pinger(self.core, self._rng.getrandbits(16))
        self._handlers: dict[type, Callable[[Any], None]] = {
            EchoReplyReceived: self._pinger.on_reply,
            EchoUnreachable: self._pinger.on_unreachable,
            UdpDatagramReceived: self._on_udp_datagram,
            UdpErrorReceived: self._on_udp_error,
            TcpConnected: self._on_tcp_connected,
            TcpAccepted: self._on_tcp_accepted,
            TcpReadable: self._on_tcp_readable,
            TcpWritable: self._on_tcp_writable,
            TcpEofReceived: self._on_tcp_eof,
            TcpClosed: self._on_tcp_closed,
            InterceptedTcp: self._on_intercepted,
            InterceptedTcpGone: self._on_intercepted,
            InterceptedUdp: self._on_intercepted,
            InterceptedUdpReadable: self._on_intercepted,
            InterceptedUdpClosed: self._on_intercepted,
        }
        self._interceptions: set[Interception] = set()
        self._servers: set[Server] = set()
        self._listener_servers: dict[TcpListenerEndpoint, Server] = {}
        self._transports: dict[TcpTransport, Server | None] = {}
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        if isinstance(nameservers, str):
            nameservers = [nameservers]
        machine = StubResolver(
            nameservers, hosts=HostsTable(hosts), config=self.config.resolver, rng=self._rng
        )
        self.resolver = StackResolver(machine, self.core, lambda: self.driver, self.open_connection)

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
            await asyncio.sleep(min(_DRAIN_POLL, remaining))
        unfinished = sum(c.state in _UNDRAINED for c in self.core.tcp.connections)
        self._close_stats["closed_reset"] += unfinished
        self._close_stats["closed_drained"] += max(closing - unfinished, 0)

    def _drained(self) -> bool:
        """No connection still holds data or a FIN the peer has not acknowledged."""
        return not self._transports and not any(
            connection.state in _UNDRAINED for connection in self.core.tcp.connections
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
        """Like :meth:`ping` but return the whole :class:`EchoReply`; a name is resolved first."""
        address = (await self.resolve_host(host))[0]
        return await self._pinger.echo(self.driver, address, timeout=timeout, size=size, ttl=ttl)

    # -- names ------------------------------------------------------------------

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

    # -- TCP --------------------------------------------------------------------

    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        local_addr: tuple[str | None, int] | None = None,
        family: int = 0,
        happy_eyeballs_delay: float | None = CONNECTION_ATTEMPT_DELAY,
        interleave: int | None = None,
        all_errors: bool = False,
        **unsupported: Any,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """Open a TCP connection, as ``loop.create_connection`` does.

        ``host`` may be a name: its addresses are tried with Happy Eyeballs
        (RFC 8305: families interleaved, the next attempt after
        ``happy_eyeballs_delay`` or at once when one fails). Raises
        ``ConnectionRefusedError`` (RST to our SYN), ``TimeoutError`` (no
        answer after the SYN retries), ``OSError(ENETUNREACH)``,
        ``socket.gaierror`` (the name did not resolve).
        """
        refuse_unsupported(unsupported, ("proto", "flags"))
        context = client_ssl_context(ssl, server_hostname, ssl_handshake_timeout)
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 0xFFFF:
            raise ValueError(f"port must be an int in 1..65535, got {port!r}")
        if happy_eyeballs_delay is not None and not happy_eyeballs_delay >= 0:
            raise ValueError(f"happy_eyeballs_delay must be >= 0, got {happy_eyeballs_delay!r}")
        if local_addr is not None:  # its port now; its host (maybe a name) in connect_tcp
            host_part = (None, *local_addr[1:]) if isinstance(local_addr, tuple) else local_addr
            parse_endpoint(host_part, "local_addr")
        self.driver  # noqa: B018 - RuntimeError now if the stack is not running
        connection = await self.connect_tcp(
            host, port, local_addr=local_addr, family=family, delay=happy_eyeballs_delay,
            interleave=interleave or 1, all_errors=all_errors,
        )  # fmt: skip
        protocol = protocol_factory()
        if context is None:
            transport = self._attach(connection, protocol, None)
            return transport, protocol
        return await self._attach_tls(
            connection, protocol, context, server_side=False,
            server_hostname=host if server_hostname is None else server_hostname,
            handshake_timeout=ssl_handshake_timeout, shutdown_timeout=ssl_shutdown_timeout,
        )  # fmt: skip

    async def connect_tcp(
        self,
        host: str,
        port: int,
        *,
        local_addr: tuple[str | None, int] | None = None,
        family: int = 0,
        delay: float | None = CONNECTION_ATTEMPT_DELAY,
        interleave: int = 1,
        all_errors: bool = False,
    ) -> TcpEndpoint:
        """An established core connection to ``host`` (a name or an address), not yet
        attached to a transport: the part of ``create_connection`` before the protocol."""
        try:
            targets = [ip_literal(host)]
        except ValueError:
            infos = await self.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
            pairs = [(info[0], ip_literal(str(info[4][0]))) for info in infos]
            targets = list(dict.fromkeys(interleave_families(pairs, interleave)))
        local = None
        if local_addr is not None:
            local_host, local_port = local_addr[0], local_addr[1]
            if local_host not in (None, "") and not _is_literal(local_host):
                local_host = (await self.resolve_host(local_host))[0]
            local = parse_endpoint((local_host, local_port), "local_addr")

        def abort(connection: TcpEndpoint) -> None:
            connection.abort()
            self.driver.request_flush()

        if len(targets) == 1:
            return await self._connect_address(targets[0], port, local)
        return await race(
            targets, lambda remote: self._connect_address(remote, port, local), delay, abort,
            all_errors=all_errors,
        )  # fmt: skip

    async def _connect_address(
        self, remote: bytes, port: int, local: tuple[bytes | None, int] | None
    ) -> TcpEndpoint:
        driver = self.driver
        loop = asyncio.get_running_loop()
        route = self.core.routes.route(remote)
        local_address, local_port = (None, 0) if local is None else local
        if local_address is not None and len(local_address) != len(remote):
            family = "IPv6" if len(remote) == 16 else "IPv4"
            raise OSError(errno.EAFNOSUPPORT, f"local_addr is not an {family} address")
        connection = self.core.tcp.connect(
            local_address or route.source, remote, port, loop.time(), local_port=local_port
        )
        waiter: asyncio.Future[None] = loop.create_future()
        connection.user_data = waiter
        driver.request_flush()
        try:
            await waiter
        except asyncio.CancelledError:
            connection.abort()
            driver.request_flush()
            raise
        return connection

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | Sequence[str] | None = None,
        port: int = 0,
        *,
        backlog: int = 100,
        ssl: ssl_module.SSLContext | None = None,
        reuse_address: bool | None = None,
        reuse_port: bool | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
        **unsupported: Any,
    ) -> Server:
        """Listen on ``host``:``port`` (``None`` = every address; port 0 = ephemeral).

        Raises ``OSError(EADDRINUSE)`` when the port is taken.
        """
        refuse_unsupported(unsupported, ("family", "flags", "keep_alive"))
        if reuse_port:
            raise ValueError("reuse_port is not supported by aionetstack")
        del reuse_address  # listeners never conflict with TIME-WAIT connections here
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 0xFFFF:
            raise ValueError(f"port must be an int in 0..65535, got {port!r}")
        if not isinstance(backlog, int) or backlog < 1:
            raise ValueError(f"backlog must be a positive int, got {backlog!r}")
        if ssl is not None and not isinstance(ssl, ssl_module.SSLContext):
            raise TypeError("ssl must be an ssl.SSLContext for a server")
        if ssl is None and (ssl_handshake_timeout is not None or ssl_shutdown_timeout is not None):
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        driver = self.driver
        hosts: list[str | None] = []
        for text in listen_addresses(host):
            if text is None or text == "" or _is_literal(text):
                hosts.append(text)
            else:
                hosts.extend(await self.resolve_host(text))
        listeners: list[TcpListenerEndpoint] = []
        try:
            for text in dict.fromkeys(hosts):
                address = None if text is None else parse_endpoint((text, port), "host")[0]
                opened = self.core.tcp.listen(address, port, backlog)
                port = opened.local_port  # several hosts share the first ephemeral port
                listeners.append(opened)
        except BaseException:
            for endpoint in listeners:
                endpoint.close()
            raise

        def accept(server: Server, connection: TcpEndpoint) -> None:
            try:
                protocol = protocol_factory()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as error:
                # As asyncio's _accept_connection2: report, drop this connection, go on.
                connection.abort()
                asyncio.get_running_loop().call_exception_handler({
                    "message": "Error on transport creation for incoming connection",
                    "exception": error, "server": server,
                })  # fmt: skip
                return
            if ssl is None:
                self._attach(connection, protocol, server)
            else:
                self._loop_task(self._attach_tls(
                    connection, protocol, ssl, server_side=True, server_hostname=None,
                    handshake_timeout=ssl_handshake_timeout,
                    shutdown_timeout=ssl_shutdown_timeout, server=server,
                ))  # fmt: skip

        server = Server(self, listeners, accept)
        self._servers.add(server)
        for endpoint in listeners:
            self._listener_servers[endpoint] = server
        if start_serving:
            await server.start_serving()
        driver.request_flush()
        return server

    async def open_connection(
        self, host: str, port: int, *, limit: int = 2**16, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """``asyncio.open_connection`` over this stack."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport, _ = await self.create_connection(lambda: protocol, host, port, **kwargs)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return reader, writer

    async def start_server(
        self,
        client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
        host: str | Sequence[str] | None = None,
        port: int = 0,
        *,
        limit: int = 2**16,
        **kwargs: Any,
    ) -> Server:
        """``asyncio.start_server`` over this stack."""
        loop = asyncio.get_running_loop()

        def factory() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(limit=limit, loop=loop)
            return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

        return await self.create_server(factory, host, port, **kwargs)

    def _attach(
        self, connection: TcpEndpoint, protocol: asyncio.BaseProtocol, server: Server | None
    ) -> TcpTransport:
        """Wrap an established connection in a transport and start its callbacks."""
        loop = asyncio.get_running_loop()
        transport = TcpTransport(
            loop, self.driver, connection, protocol, on_lost=self._forget_transport
        )
        self._transports[transport] = server
        try:
            protocol.connection_made(transport)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as error:
            transport._fatal_error(error, "connection_made")
            return transport
        if connection.readable_bytes:
            transport.on_readable()
        if connection.eof_received:
            transport.on_eof()
        if connection.state is TcpState.CLOSED:
            # Reset while it waited in the backlog: the TcpClosed event found no transport.
            transport.on_closed(ConnectionResetError(errno.ECONNRESET, "connection reset by peer"))
        return transport

    async def _attach_tls(
        self,
        connection: TcpEndpoint,
        protocol: asyncio.BaseProtocol,
        context: ssl_module.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None,
        handshake_timeout: float | None,
        shutdown_timeout: float | None,
        server: Server | None = None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        ssl_protocol = sslproto.SSLProtocol(
            loop, protocol, context, waiter, server_side=server_side,
            server_hostname=server_hostname,
            ssl_handshake_timeout=handshake_timeout,  # type: ignore[arg-type]  # typeshed says int
            ssl_shutdown_timeout=shutdown_timeout,
        )  # fmt: skip
        transport = self._attach(connection, ssl_protocol, server)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return ssl_protocol._app_transport, protocol

    def _loop_task(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # a failed server-side TLS handshake already closed its transport

    def request_flush(self) -> None:
        """Flush the stack's output once in this loop tick (writes coalesce into it)."""
        if self._link_error is None:
            self.driver.request_flush()

    def forget_server(self, server: Server) -> None:
        """Called by ``Server.close()``."""
        self._servers.discard(server)
        for listener in server.listeners:
            self._listener_servers.pop(listener, None)

    def close_transports_of(self, server: Server, *, abort: bool) -> None:
        """Close (or abort) every connection ``server`` accepted."""
        for transport, owner in list(self._transports.items()):
            if owner is server:
                transport.abort() if abort else transport.close()

    def _on_tcp_connected(self, event: TcpConnected) -> None:
        waiter = event.connection.user_data
        if isinstance(waiter, asyncio.Future) and not waiter.done():
            waiter.set_result(None)

    def _on_tcp_accepted(self, event: TcpAccepted) -> None:
        server = self._listener_servers.get(event.listener)
        if server is not None:
            server.accept_ready(event.listener)

    def _on_tcp_readable(self, event: TcpReadable) -> None:
        transport = event.connection.user_data
        if isinstance(transport, TcpTransport):
            transport.on_readable()

    def _on_tcp_writable(self, event: TcpWritable) -> None:
        transport = event.connection.user_data
        if isinstance(transport, TcpTransport):
            transport.on_writable()

    def _on_tcp_eof(self, event: TcpEofReceived) -> None:
        transport = event.connection.user_data
        if isinstance(transport, TcpTransport):
            transport.on_eof()

    def _on_tcp_closed(self, event: TcpClosed) -> None:
        owner = event.connection.user_data
        if isinstance(owner, asyncio.Future):
            if not owner.done():
                owner.set_exception(event.error or ConnectionResetError("connection closed"))
        elif isinstance(owner, TcpTransport):
            owner.on_closed(event.error)

    def _forget_transport(self, transport: TcpTransport) -> None:
        """A transport delivered ``connection_lost``: the stack no longer tracks it."""
        self._transports.pop(transport, None)

    # -- intercept ----------------------------------------------------------------

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
        local_addr = await self._resolved_endpoint(local_addr, socket.SOCK_DGRAM)
        remote_addr = await self._resolved_endpoint(remote_addr, socket.SOCK_DGRAM)
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
        ipv6 = local_addr is not None and local_addr[0] == "::"
        transport = DatagramTransport(
            asyncio.get_running_loop(), driver, endpoint, protocol, ipv6=ipv6
        )
        protocol.connection_made(transport)
        return transport, protocol

    async def _resolved_endpoint(self, endpoint: Any, type: int) -> Any:
        """``(name, port)`` -> ``(address, port)``; anything else as it is."""
        if isinstance(endpoint, tuple) and len(endpoint) >= 2:
            host = endpoint[0]
            if isinstance(host, str) and host != "" and not _is_literal(host):
                return ((await self.resolve_host(host, type=type))[0], *endpoint[1:])
        return endpoint

    def _on_udp_datagram(self, event: UdpDatagramReceived) -> None:
        transport = event.endpoint.user_data
        if isinstance(transport, DatagramTransport):
            transport.deliver(event.data, event.source, event.source_port)

    def _on_udp_error(self, event: UdpErrorReceived) -> None:
        transport = event.endpoint.user_data
        if isinstance(transport, DatagramTransport):
            transport.deliver_error(event.error)

    # -- statistics ---------------------------------------------------------------

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

    # -- events -------------------------------------------------------------------

    def _dispatch(self, event: object) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)


def _is_literal(host: str) -> bool:
    try:
        ip_literal(host)
    except ValueError:
        return False
    return True

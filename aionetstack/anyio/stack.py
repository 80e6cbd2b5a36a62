"""``AnyioStack``: the whole stack under anyio (its asyncio or its trio backend)."""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import random
import socket
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Final

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from ..addrinfo import AddrInfo, getaddrinfo, getnameinfo
from ..assembly import assemble
from ..config import StackConfig
from ..core.addresses import parse_endpoint
from ..core.drain import DRAIN_POLL, close_unowned, undrained
from ..core.echo import DEFAULT_PING_SIZE, EchoReply, EchoRequests
from ..core.ethernet import EthernetHost
from ..core.events import (
    EchoReplyReceived,
    EchoUnreachable,
    UdpDatagramReceived,
    UdpErrorReceived,
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
from .connection import AsyncConnection
from .driver import AnyioDriver
from .happy_eyeballs import interleave, race
from .host import AcceptWatcher
from .resolver import AnyioResolver
from .streams import StackSocketListener, StackSocketStream
from .udp import DEFAULT_UDP_QUEUE, StackConnectedUDPSocket, StackUDPSocket, UdpQueue

__all__ = ["AnyioStack"]

logger = logging.getLogger("aionetstack")

#: Linux caps a listen backlog at net.core.somaxconn (4096 since 5.4).
MAX_BACKLOG: Final = 4096


class AnyioStack:
    """A TCP/IP stack running under anyio over ``link``: on asyncio or on trio.

    ``address``, ``gateway``, ``pcap``, ``config`` and ``seed`` are as for
    :class:`aionetstack.Stack`, and so are ``nameservers`` (addresses, or
    ``(address, port)``) and ``hosts`` (name -> address(es)): names are looked
    up in the hosts table, the cache, then by the stub resolver over the
    stack's own UDP (TCP when truncated); failures raise ``socket.gaierror``.

    Use it as ``async with AnyioStack(...) as stack:``. Its faces follow
    anyio's interfaces: :meth:`connect_tcp` (``anyio.abc.SocketStream``),
    :meth:`create_tcp_listener` (``anyio.abc.SocketListener``),
    :meth:`create_udp_socket` / :meth:`create_connected_udp_socket`, and
    :meth:`as_trio_network` makes unmodified trio code use the stack.
    Leaving the ``async with`` resets connections still open (as a process
    exit does) and closes the link; with ``close_timeout`` seconds it first
    closes them gracefully and waits for the peers' ACKs (``aclose(linger=)``).
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
        nameservers: str | Sequence[str | tuple[str, int]] = (),
        hosts: Mapping[str, str | Sequence[str]] | None = None,
        close_timeout: float = 0.0,
    ) -> None:
        if close_timeout < 0:
            raise ValueError(f"close_timeout must be >= 0 seconds, got {close_timeout}")
        #: Default ``linger`` of :meth:`aclose` (and of leaving ``async with``): 0 resets.
        self.close_timeout = close_timeout
        self._close_stats = {"closed_drained": 0, "closed_reset": 0}
        parts = assemble(link, address, gateway=gateway, config=config, seed=seed, pcap=pcap)
        self._rng: random.Random = parts.rng
        self.config = parts.config
        self.core = parts.core
        #: What the driver runs: the core itself, or its Ethernet layer on a TAP.
        self._host: StackCore | EthernetHost = parts.host
        self.link = parts.link
        #: Where the driver sends each of the core's events (by its class).
        self._dispatch = EventHandlers(
            {
                EchoReplyReceived: self._on_echo_reply,
                EchoUnreachable: self._on_echo_unreachable,
                UdpDatagramReceived: self._on_udp_datagram,
                UdpErrorReceived: self._on_udp_error,
                TcpConnected: self._on_tcp_connected,
                TcpAccepted: self._on_tcp_accepted,
                TcpReadable: self._on_tcp_readable,
                TcpWritable: self._on_tcp_writable,
                TcpEofReceived: self._on_tcp_readable,
                TcpClosed: self._on_tcp_closed,
            }
        )
        self.driver = AnyioDriver(
            self._host, self.link, self._dispatch, batch=self.config.receive_batch,
            on_link_error=self._on_link_failed,
        )  # fmt: skip
        #: Why the stack stopped, if its link failed for good (a TUN deleted under it).
        self.link_error: OSError | None = None
        if isinstance(nameservers, str):
            nameservers = [nameservers]
        machine = StubResolver(
            nameservers, hosts=HostsTable(hosts), config=self.config.resolver, rng=self._rng
        )
        #: The stub resolver (``resolver.machine.statistics()``, ``.hosts``).
        self.resolver = AnyioResolver(machine, self.core, self.driver)
        self._echo = EchoRequests(self.core, self._rng.getrandbits(16))
        self._pings: dict[tuple[int, int], _PendingPing] = {}
        self._listeners: dict[object, AcceptWatcher] = {}
        #: Port -> families of trio sockets on the wildcard address (``trio_socket.py``).
        self.wildcard_families: dict[int, set[int]] = {}
        self._endpoints: set[AsyncConnection] = set()
        self._udp: set[UdpQueue] = set()
        self._udp_dropped = 0  # by UDP sockets already closed
        self._group: anyio.abc.TaskGroup | None = None
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> AnyioStack:
        if self._closed or self._group is not None:
            raise RuntimeError("an AnyioStack runs once")
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        try:
            await group.start(self.driver.run)
            await group.start(self.resolver.run)
        except BaseException as error:
            await group.__aexit__(type(error), error, error.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if exc_type is None and self.close_timeout > 0:
            await self._drain(self.close_timeout)
        self._shutdown()
        group, self._group = self._group, None
        try:
            if group is not None:
                return await group.__aexit__(exc_type, exc, tb)
            return None
        finally:
            self.link.close()

    async def aclose(self, linger: float | None = None) -> None:
        """Stop the stack and close the link (idempotent).

        With ``linger`` seconds (default: ``close_timeout``), like ``SO_LINGER``:
        listeners stop, every connection is closed gracefully (what was sent goes
        out, then FIN) and the stack waits until the peers have acknowledged it all
        or ``linger`` passes; what is left is then reset. With 0 (the default) open
        connections are reset at once, as at a process exit. Leaving ``async with``
        normally does the same with ``close_timeout``.
        """
        linger = self.close_timeout if linger is None else linger
        if linger < 0:
            raise ValueError(f"linger must be >= 0 seconds, got {linger}")
        if self._closed:
            return
        if linger > 0:
            await self._drain(linger)
        self._shutdown()
        with anyio.CancelScope(shield=True):
            await self.driver.wait_stopped()
        self.link.close()

    async def _drain(self, linger: float) -> None:
        """Close everything gracefully; wait (at most ``linger`` s) for the peers' ACKs."""
        if self._closed or self.link_error is not None or not self.driver.running:
            return
        for face in list(self._listeners.values()):
            face.close_listener()
        for connection in list(self._endpoints):
            if not connection.closed and not connection.finished:
                connection.close()
        connections = self.core.tcp.connections
        closing = close_unowned(connections)
        self.driver.request_flush()
        with anyio.move_on_after(linger, shield=True):
            while undrained(self.core.tcp.connections):
                await anyio.sleep(DRAIN_POLL)
        unfinished = undrained(self.core.tcp.connections)
        self._close_stats["closed_reset"] += unfinished
        self._close_stats["closed_drained"] += max(closing - unfinished, 0)

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        for face in list(self._listeners.values()):
            face.close_listener()
        for endpoint in list(self._endpoints):
            if not endpoint.finished:
                endpoint.abort()  # as a process exit: open connections are reset
        for queue in list(self._udp):
            queue.close()
        self.resolver.close()
        self.driver.flush_now()  # the RSTs go out before the link closes
        self.driver.stop()
        for pending in self._pings.values():
            pending.fail(ConnectionAbortedError(errno.ECONNABORTED, "the stack was closed"))

    def _on_link_failed(self, error: OSError) -> None:
        """The link failed for good: every connection, UDP socket and pending ping fails
        with ``OSError(ENETDOWN)`` saying so (streams raise ``BrokenResourceError`` from
        it); new operations raise it. The ``async with`` body is not cancelled."""
        self.link_error = error
        logger.error("aionetstack: the link failed, the stack stopped: %s", error)
        failure = OSError(errno.ENETDOWN, f"the stack's link failed: {error}")
        for connection in self.core.tcp.connections:
            connection.fail(failure)
        while (event := self.core.next_event()) is not None:
            self._dispatch(event)
        for face in list(self._listeners.values()):
            face.close_listener()
        for queue in list(self._udp):
            queue.deliver_failure(failure)
        for pending in self._pings.values():
            pending.fail(failure)
        self.resolver.close()

    def running_driver(self) -> AnyioDriver:
        """The driver; RuntimeError when the stack is not running, the link's
        ``OSError(ENETDOWN)`` once it failed."""
        if self.link_error is not None:
            raise OSError(errno.ENETDOWN, f"the stack's link failed: {self.link_error}")
        if self._closed or not self.driver.running:
            raise RuntimeError("the AnyioStack is not running: use 'async with AnyioStack(...)'")
        return self.driver

    # -- names --------------------------------------------------------------------

    def local_families(self) -> list[int]:
        """The address families this stack has an address of."""
        lengths = {len(address) for address in self.core.routes.local_addresses}
        return [f for f, n in ((socket.AF_INET, 4), (socket.AF_INET6, 16)) if n in lengths]

    def resolve_local(self, host: str) -> bytes:
        """An IP literal or a hosts-table name, without a query (for bind addresses)."""
        if not isinstance(host, str):
            raise TypeError(f"host must be a str, got {type(host).__name__}")
        try:
            return ipaddress.ip_address(host).packed
        except ValueError:
            pass
        found = self.resolver.machine.hosts.lookup(host)
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host!r}")
        return found[0]

    def _bind_address(self, host: str | None) -> bytes | None:
        """None (every address) for the wildcard, else :meth:`resolve_local`."""
        return None if host in (None, "", "0.0.0.0", "::") else self.resolve_local(host)

    async def _dial_targets(self, host: str) -> list[bytes]:
        """The addresses to dial for ``host``: a literal is itself; a name's addresses
        in getaddrinfo's order with the families interleaved (RFC 8305 §4)."""
        if not isinstance(host, str):
            raise TypeError(f"host must be a str, got {type(host).__name__}")
        try:
            return [ipaddress.ip_address(host).packed]
        except ValueError:
            pass
        infos = await self.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        found = list(dict.fromkeys(
            ipaddress.ip_address(str(info[4][0]).split("%")[0]).packed for info in infos
        ))  # fmt: skip
        return interleave(found, len)

    async def resolve_remote(self, host: str, *, family: int = 0) -> bytes:
        """The first address of ``host`` in getaddrinfo's order (a literal is itself)."""
        if not isinstance(host, str):
            raise TypeError(f"host must be a str, got {type(host).__name__}")
        try:
            return ipaddress.ip_address(host).packed
        except ValueError:
            pass
        infos = await self.getaddrinfo(host, None, family=family, type=socket.SOCK_STREAM)
        return ipaddress.ip_address(str(infos[0][4][0]).split("%")[0]).packed

    async def getaddrinfo(
        self,
        host: str | bytes | None,
        port: int | str | None,
        *,
        family: int = 0,
        type: int = 0,  # the stdlib's argument name
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfo]:
        """``loop.getaddrinfo`` through the stack: the hosts table, the cache, then DNS.

        Numeric hosts are never queried. Raises ``socket.gaierror``.
        """
        await anyio.lowlevel.checkpoint()
        return await getaddrinfo(
            self.resolver.resolve, host, port, family=family, type=type, proto=proto,
            flags=flags, local_families=self.local_families(),
        )  # fmt: skip

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        """``getnameinfo``: names from the hosts table only (no PTR queries)."""
        await anyio.lowlevel.checkpoint()
        return getnameinfo(self.resolver.machine.hosts.reverse, sockaddr, flags)

    # -- TCP --------------------------------------------------------------------

    async def connect_tcp(
        self,
        remote_host: str,
        remote_port: int,
        *,
        local_host: str | None = None,
        tls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        tls_standard_compatible: bool = True,
        tls_hostname: str | None = None,
    ) -> anyio.abc.SocketStream | TLSStream:
        """``anyio.connect_tcp`` over this stack.

        Raises ``ConnectionRefusedError`` (an ``OSError``, as anyio's own
        ``connect_tcp`` raises) when the peer answers RST, ``TimeoutError``
        after the SYN retries, ``OSError(ENETUNREACH)`` without a route,
        ``socket.gaierror`` for an unknown name. With ``tls=True`` (or an
        ``ssl_context``) the stream is wrapped in anyio's ``TLSStream``.
        """
        driver = self.running_driver()
        if not isinstance(remote_port, int) or isinstance(remote_port, bool) \
                or not 1 <= remote_port <= 0xFFFF:  # fmt: skip
            raise ValueError(f"remote_port must be an int in 1..65535, got {remote_port!r}")
        targets = await self._dial_targets(remote_host)
        local = None if local_host is None else self.resolve_local(local_host)

        async def attempt(remote: bytes) -> AsyncConnection:
            route = self.core.routes.route(remote)
            connection = self.core.tcp.connect(local or route.source, remote, remote_port,
                                               anyio.current_time())  # fmt: skip
            endpoint = self._track(AsyncConnection(driver, connection))
            driver.request_flush()
            try:
                await endpoint.wait_connected()
            except BaseException:
                endpoint.abort()
                raise
            return endpoint

        if len(targets) == 1:
            endpoint = await attempt(targets[0])
        else:  # a name with several addresses: Happy Eyeballs (RFC 8305)
            endpoint = await race(targets, attempt, lambda extra: extra.abort())
        stream: anyio.abc.SocketStream = StackSocketStream(endpoint)
        if tls or ssl_context is not None:
            if ssl_context is None:
                ssl_context = ssl.create_default_context()
            try:
                return await TLSStream.wrap(
                    stream, hostname=tls_hostname or remote_host, ssl_context=ssl_context,
                    standard_compatible=tls_standard_compatible,
                )  # fmt: skip
            except BaseException:
                await anyio.aclose_forcefully(stream)
                raise
        return stream

    async def create_tcp_listener(
        self,
        *,
        local_host: str | None = None,
        local_port: int = 0,
        family: int = socket.AF_UNSPEC,
        backlog: int = 65536,
        reuse_port: bool = False,
    ) -> StackSocketListener:
        """``anyio.create_tcp_listener`` over this stack (one listener on every address
        when ``local_host`` is None). ``OSError(EADDRINUSE)`` when the port is taken."""
        driver = self.running_driver()
        if reuse_port:
            raise ValueError("reuse_port is not supported by aionetstack")
        del family  # the listener serves the stack's addresses of every family it has
        if not isinstance(local_port, int) or isinstance(local_port, bool) \
                or not 0 <= local_port <= 0xFFFF:  # fmt: skip
            raise ValueError(f"local_port must be an int in 0..65535, got {local_port!r}")
        if not isinstance(backlog, int) or backlog < 1:
            raise ValueError(f"backlog must be a positive int, got {backlog!r}")
        address = self._bind_address(local_host)
        listener = self.core.tcp.listen(address, local_port, min(backlog, MAX_BACKLOG))
        face = StackSocketListener(driver, listener, self.forget_listener, self._track)
        self._listeners[listener] = face
        await anyio.lowlevel.checkpoint()
        return face

    def watch_listener(self, listener: object, face: AcceptWatcher) -> None:
        """Tell ``face`` about accept events of the core ``listener`` (the trio socket)."""
        self._listeners[listener] = face

    def track_connection(self, connection: AsyncConnection) -> AsyncConnection:
        """Keep ``connection`` among those reset when the stack closes."""
        return self._track(connection)

    def _track(self, endpoint: AsyncConnection) -> AsyncConnection:
        self._endpoints.add(endpoint)
        return endpoint

    def forget_listener(self, listener: object) -> None:
        self._listeners.pop(listener, None)

    # -- UDP --------------------------------------------------------------------

    def open_udp(
        self,
        local_host: str | None,
        local_port: int,
        remote: tuple[bytes, int] | None,
    ) -> UdpQueue:
        """Bind a core UDP endpoint with an awaitable queue (for the faces)."""
        driver = self.running_driver()
        local = self._bind_address(local_host)
        if remote is not None:
            route = self.core.routes.route(remote[0])  # ENETUNREACH now, not on first send
            if local is None:  # as connect(2) on a UDP socket: the route's source is chosen
                local = route.source
        endpoint = self.core.udp.bind(local, local_port, remote)
        queue = UdpQueue(driver, endpoint, DEFAULT_UDP_QUEUE)
        queue.on_close = self._forget_udp
        self._udp.add(queue)
        return queue

    def _forget_udp(self, queue: UdpQueue) -> None:
        self._udp.discard(queue)
        self._udp_dropped += queue.dropped

    async def create_udp_socket(
        self,
        family: int = socket.AF_UNSPEC,
        *,
        local_host: str | None = None,
        local_port: int = 0,
        reuse_port: bool = False,
    ) -> StackUDPSocket:
        """``anyio.create_udp_socket`` over this stack."""
        if reuse_port:
            raise ValueError("reuse_port is not supported by aionetstack")
        del family
        parse_endpoint(("0.0.0.0", local_port), "local_port")
        queue = self.open_udp(local_host, local_port, None)
        await anyio.lowlevel.checkpoint()
        return StackUDPSocket(queue)

    async def create_connected_udp_socket(
        self,
        remote_host: str,
        remote_port: int,
        *,
        family: int = socket.AF_UNSPEC,
        local_host: str | None = None,
        local_port: int = 0,
        reuse_port: bool = False,
    ) -> StackConnectedUDPSocket:
        """``anyio.create_connected_udp_socket`` over this stack."""
        if reuse_port:
            raise ValueError("reuse_port is not supported by aionetstack")
        del family
        if not isinstance(remote_port, int) or isinstance(remote_port, bool) \
                or not 1 <= remote_port <= 0xFFFF:  # fmt: skip
            raise ValueError(f"remote_port must be an int in 1..65535, got {remote_port!r}")
        remote = await self.resolve_remote(remote_host)
        queue = self.open_udp(local_host, local_port, (remote, remote_port))
        await anyio.lowlevel.checkpoint()
        return StackConnectedUDPSocket(queue)

    # -- ping -------------------------------------------------------------------

    async def ping(
        self, host: str, timeout: float = 1.0, *, size: int = DEFAULT_PING_SIZE,
        ttl: int | None = None,
    ) -> float:  # fmt: skip
        """One ICMP echo; the round-trip time in seconds (``TimeoutError`` if none)."""
        return (await self.echo(host, timeout=timeout, size=size, ttl=ttl)).rtt

    async def echo(
        self, host: str, *, timeout: float = 1.0, size: int = DEFAULT_PING_SIZE,
        ttl: int | None = None,
    ) -> EchoReply:  # fmt: skip
        """Like :meth:`ping` but return the whole :class:`~aionetstack.EchoReply`."""
        driver = self.running_driver()
        destination = await self.resolve_remote(host)
        self._echo.validate(size, timeout)
        key = self._echo.next_key()
        pending = _PendingPing()
        self._pings[key] = pending
        try:
            self._echo.send(destination, key, size, ttl)
            sent_at = anyio.current_time()
            driver.flush_now()
            with anyio.move_on_after(timeout):
                await pending.event.wait()
        finally:
            self._pings.pop(key, None)
        if pending.error is not None:
            raise pending.error
        if pending.reply is None:
            raise TimeoutError(f"no echo reply from {host} within {timeout} s")
        received_at, event = pending.reply
        return EchoRequests.reply(event, received_at - sent_at)

    # -- trio -------------------------------------------------------------------

    @contextmanager
    def as_trio_network(self) -> Iterator[None]:
        """Under trio: route ``trio.socket`` (hence ``trio.open_tcp_stream``,
        ``trio.serve_tcp``, anyio-on-trio and httpx-on-trio) through this stack
        for the current ``trio.run``, restoring the previous hooks on exit."""
        from .trio_network import install_trio_network

        with install_trio_network(self):
            yield

    # -- statistics -------------------------------------------------------------

    def statistics(self) -> dict[str, dict[str, int | str]]:
        """Counters per layer (``ip``, ``icmp``, ``udp``, ``tcp``, ``link``, ``driver``).

        The link may add descriptive strings (a ``TunLink``'s ``"offload"`` status).
        """
        result: dict[str, dict[str, int | str]] = {
            layer: dict(counters) for layer, counters in self.core.statistics().items()
        }
        result["link"] = dict(self.link.statistics())
        result["driver"] = {
            "internal_errors": self.driver.internal_errors,
            "udp_queue_dropped": self._udp_dropped + sum(q.dropped for q in self._udp),
            "link_errors": self.driver.link_errors,
            **self._close_stats,
        }
        result["names"] = dict(self.resolver.machine.statistics())
        return result

    # -- events -------------------------------------------------------------------

    def _on_tcp_connected(self, event: TcpConnected) -> None:
        endpoint = event.connection.user_data
        if isinstance(endpoint, AsyncConnection):
            endpoint.on_connected()

    def _on_tcp_accepted(self, event: TcpAccepted) -> None:
        face = self._listeners.get(event.listener)
        if face is not None:
            face.on_accept_ready()

    def _on_tcp_readable(self, event: TcpReadable | TcpEofReceived) -> None:
        endpoint = event.connection.user_data
        if isinstance(endpoint, AsyncConnection):
            endpoint.on_readable()

    def _on_tcp_writable(self, event: TcpWritable) -> None:
        endpoint = event.connection.user_data
        if isinstance(endpoint, AsyncConnection):
            endpoint.on_writable()

    def _on_tcp_closed(self, event: TcpClosed) -> None:
        endpoint = event.connection.user_data
        if isinstance(endpoint, AsyncConnection):
            endpoint.on_closed(event.error)
            self._endpoints.discard(endpoint)

    def _on_udp_datagram(self, event: UdpDatagramReceived) -> None:
        queue = event.endpoint.user_data
        if isinstance(queue, UdpQueue):
            queue.deliver(event.data, event.source, event.source_port)

    def _on_udp_error(self, event: UdpErrorReceived) -> None:
        queue = event.endpoint.user_data
        if isinstance(queue, UdpQueue):
            queue.deliver_error(event.error)

    def _on_echo_reply(self, event: EchoReplyReceived) -> None:
        pending = self._pings.get((event.identifier, event.sequence))
        if pending is not None:
            pending.resolve((anyio.current_time(), event))

    def _on_echo_unreachable(self, event: EchoUnreachable) -> None:
        pending = self._pings.get((event.identifier, event.sequence))
        if pending is not None:
            pending.fail(event.error)


class _PendingPing:
    __slots__ = ("error", "event", "reply")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.reply: tuple[float, EchoReplyReceived] | None = None
        self.error: OSError | None = None

    def resolve(self, reply: tuple[float, EchoReplyReceived]) -> None:
        if self.reply is None and self.error is None:
            self.reply = reply
            self.event.set()

    def fail(self, error: OSError) -> None:
        if self.reply is None and self.error is None:
            self.error = error
            self.event.set()

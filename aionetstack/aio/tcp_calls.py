"""The asyncio TCP calls of a :class:`~.stack.Stack`: ``create_connection``,
``open_connection`` (names through Happy Eyeballs, RFC 8305), ``create_server`` and
``start_server`` (several hosts, both families, TLS), the transports they attach,
and the TCP events from the core that drive those transports.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl as ssl_module
from asyncio import sslproto
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..core.tcp.events import (
    TcpAccepted,
    TcpClosed,
    TcpConnected,
)
from ..core.tcp.state import TcpState
from .addresses import ip_literal, parse_endpoint
from .happy_eyeballs import CONNECTION_ATTEMPT_DELAY, race
from .happy_eyeballs import interleave as interleave_families
from .options import client_ssl_context, refuse_unsupported
from .server import Server, listen_addresses
from .transport import TcpTransport, on_tcp_closed

if TYPE_CHECKING:
    from ..core.tcp import TcpEndpoint, TcpListenerEndpoint
from .stack_state import StackState, _is_literal


class _TcpCalls(StackState):
    """The tcp calls part of :class:`Stack` (see the module docstring)."""

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
            loop, self.driver, connection, protocol, on_lost=self._on_transport_lost
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

    def _on_tcp_closed(self, event: TcpClosed) -> None:
        if on_tcp_closed(event):
            return
        waiter = event.connection.user_data
        if isinstance(waiter, asyncio.Future) and not waiter.done():
            waiter.set_exception(event.error or ConnectionResetError("connection closed"))

    def _forget_transport(self, transport: TcpTransport) -> None:
        """A transport delivered ``connection_lost``: the stack no longer tracks it."""
        self._transports.pop(transport, None)

"""``loop_factory``: an asyncio loop whose network calls go through a stack.

For ``asyncio.run(main(), loop_factory=aionetstack.loop_factory(link, ...))``
and ``asyncio.Runner(loop_factory=...)``. The loop is the default selector
loop with the network calls overridden; a :class:`~aionetstack.Stack` starts on
first use and closes with the loop. Which destinations go through the stack
is the *dial policy*: by default every IP address except loopback and the
unspecified address; Unix sockets, pipes, subprocesses and pre-made kernel
sockets (``sock=``) stay on the kernel. Names are resolved by the stack's
resolver (``hosts=``, then ``nameservers=``); ``localhost`` is in its hosts
table, so it dials the kernel's loopback.

Overridden: ``create_connection`` (also for ``asyncio.open_connection``),
``create_server`` (``asyncio.start_server``), ``create_datagram_endpoint``,
``getaddrinfo``, ``getnameinfo``, and ``sock_connect``/``sock_recv``/
``sock_recv_into``/``sock_sendall`` on socket objects whose connection the
stack made (see :mod:`aionetstack.aio.parked`). What cannot work: code that
watches a kernel socket itself (``add_reader`` on its fd, blocking I/O on it,
``select``) sees nothing, since the traffic is not on that socket.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl as ssl_module
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..config import StackConfig
from ..link.base import Link
from .parked import ParkedConnection, ParkedListener, ParkedSockets
from .stack import Stack

__all__ = ["StackEventLoop", "default_dial_policy", "loop_factory"]

DialPolicy = Callable[[str], bool]

#: RFC 6761 §6.3: "localhost" names resolve to the loopback addresses.
LOCALHOST = {"localhost": ["127.0.0.1", "::1"]}


def default_dial_policy(address: str) -> bool:
    """True (through the stack) for every address but loopback and unspecified."""
    try:
        ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_loopback or ip.is_unspecified)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", maxsplit=1)[0])
    except ValueError:
        return False
    return True


class StackEventLoop(asyncio.SelectorEventLoop):
    """The default selector loop with its network calls sent through a stack."""

    def __init__(
        self, make_stack: Callable[[], Stack], dial_policy: DialPolicy = default_dial_policy
    ) -> None:
        super().__init__()
        self._make_stack = make_stack
        self._stack: Stack | None = None
        self._dial_policy = dial_policy
        self._parked = ParkedSockets()
        self._listeners: weakref.WeakKeyDictionary[socket.socket, ParkedListener] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def stack(self) -> Stack:
        """The loop's stack, started on first use (the loop must be running)."""
        if self._stack is None:
            self._stack = self._make_stack()
            self._stack.start()
        return self._stack

    def through_stack(self, address: str) -> bool:
        """The dial policy's answer for a numeric address."""
        return bool(self._dial_policy(address))

    # -- lifecycle ----------------------------------------------------------------

    async def shutdown_asyncgens(self) -> None:
        """``asyncio.run``/``Runner.close`` call this last while the loop still runs."""
        await super().shutdown_asyncgens()
        self._close_stack()

    def close(self) -> None:
        self._close_stack()
        super().close()

    def _close_stack(self) -> None:
        self._parked.close()
        for listener in list(self._listeners.values()):
            listener.close()
        self._listeners.clear()
        if self._stack is not None and not self._stack.closed:
            self._stack.close()

    # -- names --------------------------------------------------------------------

    async def getaddrinfo(  # type: ignore[override]
        self,
        host: str | bytes | None,
        port: str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        return await self.stack.getaddrinfo(
            host, port, family=family, type=type, proto=proto, flags=flags
        )

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        return await self.stack.getnameinfo(sockaddr, flags)

    async def _destinations(self, host: str, port: Any, type: int, family: int = 0) -> bool:
        """Does ``host`` go through the stack? (A name: if any of its addresses does.)"""
        if _is_ip(host):
            return self.through_stack(host)
        infos = await self.stack.getaddrinfo(host, port, family=family, type=type)
        return any(self.through_stack(str(info[4][0])) for info in infos)

    # -- TCP ----------------------------------------------------------------------

    async def create_connection(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | None = None,
        *,
        sock: socket.socket | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        happy_eyeballs_delay: float | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        tls: dict[str, Any] = {"ssl": ssl, "server_hostname": server_hostname,
               "ssl_handshake_timeout": ssl_handshake_timeout,
               "ssl_shutdown_timeout": ssl_shutdown_timeout}  # fmt: skip
        if sock is not None:
            parked = self._parked.take(sock)
            if parked is not None:
                sock.close()  # the kernel socket was only a token: the stack has the connection
                return await self._adopt(parked, protocol_factory, host, **tls)
        elif (
            host is not None
            and port is not None
            and await self._destinations(host, port, socket.SOCK_STREAM, kwargs.get("family", 0))
        ):
            if happy_eyeballs_delay is not None:
                kwargs["happy_eyeballs_delay"] = happy_eyeballs_delay
            kwargs.pop("proto", None)
            kwargs.pop("flags", None)
            return await self.stack.create_connection(protocol_factory, host, port,
                                                      **tls, **kwargs)  # fmt: skip
        kernel: Any = super()  # typeshed's overloads do not take a forwarded **kwargs
        return await kernel.create_connection(  # type: ignore[no-any-return]
            protocol_factory, host, port, sock=sock, happy_eyeballs_delay=happy_eyeballs_delay,
            **tls, **kwargs,
        )  # fmt: skip

    async def _adopt(
        self,
        parked: ParkedConnection,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None,
        *,
        ssl: ssl_module.SSLContext | bool | None,
        server_hostname: str | None,
        ssl_handshake_timeout: float | None,
        ssl_shutdown_timeout: float | None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        protocol = protocol_factory()
        if not ssl:
            return parked.adopt(protocol), protocol
        context = ssl_module.create_default_context() if ssl is True else ssl
        assert isinstance(context, ssl_module.SSLContext)
        transport = await self.start_tls(
            _tls_ready(parked), protocol, context, server_side=False,
            server_hostname=server_hostname if server_hostname is not None else host,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )  # fmt: skip
        assert transport is not None
        protocol.connection_made(transport)
        return transport, protocol

    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        sock: socket.socket | None = None,
        family: int = 0,
        reuse_address: bool | None = None,
        **kwargs: Any,
    ) -> asyncio.AbstractServer:
        if sock is None and family in (0, socket.AF_INET, socket.AF_INET6):
            hosts = [host] if isinstance(host, str) or host is None else list(host)
            listen = [h for h in hosts if h in (None, "") or await self._destinations(
                h, port, socket.SOCK_STREAM)]  # fmt: skip
            if listen and len(listen) == len(hosts):
                kwargs.pop("flags", None)
                return await self.stack.create_server(
                    protocol_factory, host, port or 0, reuse_address=reuse_address, **kwargs
                )
        kernel: Any = super()
        return await kernel.create_server(  # type: ignore[no-any-return]
            protocol_factory, host, port, sock=sock, family=family,
            reuse_address=reuse_address, **kwargs,
        )  # fmt: skip

    # -- UDP ----------------------------------------------------------------------

    async def create_datagram_endpoint(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | str | None = None,
        remote_addr: tuple[str, int] | str | None = None,
        *,
        family: int = 0,
        sock: socket.socket | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        if sock is None and family in (0, socket.AF_INET, socket.AF_INET6):
            target = remote_addr if remote_addr is not None else local_addr
            if target is None or (
                isinstance(target, tuple)
                and (target[0] in (None, "")
                     or await self._destinations(target[0], target[1], socket.SOCK_DGRAM))
            ):  # fmt: skip
                kwargs.pop("proto", None)
                kwargs.pop("flags", None)
                return await self.stack.create_datagram_endpoint(
                    protocol_factory, local_addr, remote_addr,  # type: ignore[arg-type]
                    **kwargs,
                )  # fmt: skip
        kernel: Any = super()
        return await kernel.create_datagram_endpoint(  # type: ignore[no-any-return]
            protocol_factory, local_addr, remote_addr, family=family, sock=sock, **kwargs
        )

    # -- socket objects -------------------------------------------------------------

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        """Connect through the stack, parking the connection under ``sock``."""
        self._parked.sweep()
        if (
            sock.family in (socket.AF_INET, socket.AF_INET6)
            and sock.type == socket.SOCK_STREAM
            and isinstance(address, tuple)
            and isinstance(address[0], str)
            and _is_ip(address[0])
            and self.through_stack(address[0])
        ):
            bound = sock.getsockname()
            local = (bound[0], bound[1]) if bound[1] or not ipaddress.ip_address(
                bound[0].split("%", maxsplit=1)[0]).is_unspecified else None  # fmt: skip
            connection = await self.stack.connect_tcp(address[0], address[1], local_addr=local)
            parked = ParkedConnection()
            self.stack._attach(connection, parked, None)
            self._parked.park(sock, parked)
            return
        await super().sock_connect(sock, address)

    async def sock_accept(self, sock: socket.socket) -> tuple[socket.socket, Any]:
        """For a kernel listening socket bound to a wildcard or a stack address: accept
        from a stack server on the same port (anyio's listeners make such sockets)."""
        self._sweep_listeners()
        listener = self._listeners.get(sock)
        if listener is None and self._listens_on_stack(sock):
            host, port = sock.getsockname()[:2]
            wildcard = ipaddress.ip_address(host.split("%", maxsplit=1)[0]).is_unspecified
            key = (None if wildcard else host, port)
            # anyio listens on 0.0.0.0 and :: with one port: one stack server serves both.
            listener = next((li for li in self._listeners.values() if li.key == key), None)
            if listener is None:
                listener = ParkedListener(key)
                listener.server = await self.stack.create_server(listener.protocol, *key)
            self._listeners[sock] = listener
        if listener is None:
            return await super().sock_accept(sock)
        parked = await listener.ready.get()
        token = socket.socket(sock.family, socket.SOCK_STREAM)  # stands for the connection
        token.setblocking(False)
        self._parked.park(token, parked)
        assert parked.transport is not None
        return token, parked.transport.get_extra_info("peername")

    def _listens_on_stack(self, sock: socket.socket) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
            return False
        try:
            host = sock.getsockname()[0]
            listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        except OSError:
            return False
        if not listening:
            return False
        ip = ipaddress.ip_address(host.split("%", maxsplit=1)[0])
        if ip.is_unspecified:
            return True
        local = {i.address for i in self.stack.core.routes.interfaces}
        return ip.packed in local

    def _sweep_listeners(self) -> None:
        """Close the stack servers whose kernel listening sockets were all closed."""
        for sock, listener in list(self._listeners.items()):
            if sock.fileno() == -1:
                del self._listeners[sock]
                if listener not in self._listeners.values():
                    listener.close()

    async def connect_accepted_socket(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        sock: socket.socket,
        *,
        ssl: ssl_module.SSLContext | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        parked = self._parked.take(sock)
        if parked is None:
            kernel: Any = super()
            return await kernel.connect_accepted_socket(  # type: ignore[no-any-return]
                protocol_factory, sock, ssl=ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout,
            )  # fmt: skip
        sock.close()
        protocol = protocol_factory()
        if ssl is None:
            return parked.adopt(protocol), protocol
        transport = await self.start_tls(
            _tls_ready(parked), protocol, ssl, server_side=True,
            ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
        )  # fmt: skip
        assert transport is not None
        protocol.connection_made(transport)
        return transport, protocol

    async def sock_recv(self, sock: socket.socket, n: int) -> bytes:
        parked = self._parked.get(sock)
        if parked is None:
            return await super().sock_recv(sock, n)
        return await parked.recv(n)

    async def sock_recv_into(self, sock: socket.socket, buf: Any) -> int:
        parked = self._parked.get(sock)
        if parked is None:
            return await super().sock_recv_into(sock, buf)
        view = memoryview(buf).cast("B")
        data = await parked.recv(len(view))
        view[: len(data)] = data
        return len(data)

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None:
        parked = self._parked.get(sock)
        if parked is None:
            return await super().sock_sendall(sock, data)
        await parked.sendall(data)
        return None


def _tls_ready(parked: ParkedConnection) -> asyncio.Transport:
    """The parked transport, for ``start_tls`` (which takes it over, reading resumed)."""
    if parked.buffer or parked.transport is None:
        raise ValueError("TLS over a socket that was already read from is not supported")
    return parked.transport


def loop_factory(
    link: Link | Callable[[], Link],
    *,
    address: str | Sequence[str],
    gateway: str | None = None,
    nameservers: Sequence[str | tuple[str, int]] = (),
    hosts: Mapping[str, str | Sequence[str]] | None = None,
    pcap: str | None = None,
    config: StackConfig | None = None,
    seed: int | None = None,
    dial_policy: DialPolicy = default_dial_policy,
) -> Callable[[], StackEventLoop]:
    """A ``loop_factory`` for ``asyncio.run`` and ``asyncio.Runner``.

    Each loop it makes gets a :class:`Stack` over ``link`` (or over
    ``link()`` when a callable is given: one link per loop), started on first
    use, closed with the loop. The keywords are the Stack's; ``hosts`` is
    added to ``localhost``'s loopback entry. ``dial_policy(address) -> bool``
    says which numeric destinations go through the stack (default: all but
    loopback and unspecified).
    """
    if not callable(dial_policy):
        raise TypeError("dial_policy must be a callable taking an address string")
    table: dict[str, str | Sequence[str]] = {**LOCALHOST, **(hosts or {})}

    def make_stack() -> Stack:
        this_link = link if isinstance(link, Link) else link()
        return Stack(this_link, address=address, gateway=gateway, pcap=pcap, config=config,
                     seed=seed, nameservers=nameservers, hosts=table)  # fmt: skip

    def factory() -> StackEventLoop:
        return StackEventLoop(make_stack, dial_policy)

    return factory

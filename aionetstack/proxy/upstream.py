"""Where the relay sends each flow: the kernel's sockets, or a SOCKS5 server.

:class:`DirectUpstream` dials the original destination with kernel sockets.
Its traffic must not be routed back into the TUN it came from (a loop): set
``mark`` (``SO_MARK``, with a policy rule such as ``ip rule add fwmark 0x1
lookup 100`` and a table 100 that reaches the real destinations) or
``bind_interface`` (``SO_BINDTODEVICE``: leave by that interface). As a last
guard, the relay recognises its own connection attempts coming back through
the TUN (:meth:`Upstream.is_own`) and refuses them instead of looping.

:class:`Socks5Upstream` uses python-socks (RFC 1928 CONNECT) for TCP and
:mod:`.socks5_udp` (UDP ASSOCIATE, which python-socks does not implement) for
datagrams.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from typing import Protocol

from .socks5_udp import Socks5UdpAssociation, UdpUpstream, associate

__all__ = ["DirectUpstream", "Socks5Upstream", "UdpUpstream", "Upstream", "UpstreamError"]

#: Linux SO_MARK (socket(7)); ``socket.SO_MARK`` on Python >= 3.12 only.
SO_MARK = getattr(socket, "SO_MARK", 36)

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class UpstreamError(Exception):
    """The upstream refused the destination or could not reach it: reject the flow."""


class Upstream(Protocol):
    """A way out for relayed flows."""

    async def open_tcp(self, host: str, port: int) -> Streams:
        """Connect to ``host``:``port``; :class:`UpstreamError` when that fails."""

    async def open_udp(self, host: str, port: int) -> UdpUpstream:
        """A datagram path to ``host``:``port``; :class:`UpstreamError` when none."""

    def is_own(self, protocol: str, source: tuple[str, int], destination: tuple[str, int]) -> bool:
        """Whether a flow from ``source`` is this upstream's own attempt come back (a loop)."""


class _DatagramQueue(asyncio.DatagramProtocol):
    """Datagrams of one connected kernel UDP socket, bounded (excess dropped)."""

    def __init__(self, limit: int = 128) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(limit)
        self.dropped = 0

    def datagram_received(self, data: bytes, addr: object) -> None:
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.dropped += 1

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors for a relayed flow: the client hears nothing, as with a lost packet

    def connection_lost(self, exc: Exception | None) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class _KernelUdp:
    """A connected kernel UDP socket as a :class:`UdpUpstream`."""

    def __init__(
        self, transport: asyncio.DatagramTransport, protocol: _DatagramQueue, on_close: object
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._on_close = on_close

    def send(self, data: bytes) -> None:
        self._transport.sendto(data)

    async def receive(self) -> bytes | None:
        if self._transport.is_closing() and self._protocol.queue.empty():
            return None
        return await self._protocol.queue.get()

    def close(self) -> None:
        if not self._transport.is_closing():
            self._transport.close()
            if callable(self._on_close):
                self._on_close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


class DirectUpstream:
    """Kernel sockets to the original destination (or to ``redirect``, same port).

    ``mark`` sets ``SO_MARK`` and ``bind_interface`` sets ``SO_BINDTODEVICE``
    on every upstream socket (both need CAP_NET_ADMIN); see the module docstring.
    """

    def __init__(
        self,
        *,
        mark: int | None = None,
        bind_interface: str | None = None,
        redirect: str | None = None,
        connect_timeout: float = 4.0,
    ) -> None:
        if redirect is not None:
            ipaddress.ip_address(redirect)  # ValueError for a bad address
        self.mark = mark
        self.bind_interface = bind_interface
        self.redirect = redirect
        self.connect_timeout = connect_timeout
        #: (protocol, local port, destination) of our sockets being connected / open.
        self._own: set[tuple[str, int, tuple[str, int]]] = set()

    def _socket(self, host: str, kind: socket.SocketKind) -> socket.socket:
        sock = socket.socket(_family(host), kind)
        try:
            if self.mark is not None:
                sock.setsockopt(socket.SOL_SOCKET, SO_MARK, self.mark)
            if self.bind_interface is not None:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.bind_interface.encode()
                )
            sock.setblocking(False)
            sock.bind(("::" if sock.family == socket.AF_INET6 else "0.0.0.0", 0))
        except BaseException:
            sock.close()
            raise
        return sock

    def is_own(self, protocol: str, source: tuple[str, int], destination: tuple[str, int]) -> bool:
        return (protocol, source[1], destination) in self._own

    async def open_tcp(self, host: str, port: int) -> Streams:
        target = self.redirect or host
        sock = self._socket(target, socket.SOCK_STREAM)
        key = ("tcp", sock.getsockname()[1], (target, port))
        self._own.add(key)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (target, port)), self.connect_timeout)
        except (OSError, TimeoutError) as error:
            sock.close()
            raise UpstreamError(f"{target}:{port}: {error}") from error
        except BaseException:
            sock.close()
            raise
        finally:
            self._own.discard(key)
        return await asyncio.open_connection(sock=sock, limit=2**17)

    async def open_udp(self, host: str, port: int) -> UdpUpstream:
        target = self.redirect or host
        sock = self._socket(target, socket.SOCK_DGRAM)
        try:
            sock.connect((target, port))
        except OSError as error:
            sock.close()
            raise UpstreamError(f"{target}:{port}: {error}") from error
        key = ("udp", sock.getsockname()[1], (target, port))
        self._own.add(key)
        transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
            _DatagramQueue, sock=sock
        )
        return _KernelUdp(transport, protocol, lambda: self._own.discard(key))


class Socks5Upstream:
    """A SOCKS5 server (RFC 1928): CONNECT through python-socks, UDP ASSOCIATE for datagrams."""

    def __init__(self, host: str, port: int, *, connect_timeout: float = 4.0) -> None:
        if not 1 <= port <= 0xFFFF:
            raise ValueError(f"SOCKS5 port must be in 1..65535, got {port}")
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout

    def is_own(self, protocol: str, source: tuple[str, int], destination: tuple[str, int]) -> bool:
        return False  # the SOCKS server's own traffic is its routing's business

    async def open_tcp(self, host: str, port: int) -> Streams:
        # python-socks is the optional extra ``aionetstack[proxy]``; --direct runs without it.
        from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError
        from python_socks.async_.asyncio import Proxy

        proxy = Proxy.from_url(f"socks5://{_bracket(self.host)}:{self.port}", rdns=False)
        try:
            sock = await proxy.connect(host, port, timeout=self.connect_timeout)
        except (ProxyError, ProxyConnectionError, ProxyTimeoutError) as error:
            raise UpstreamError(f"SOCKS5 CONNECT {host}:{port}: {error}") from error
        return await asyncio.open_connection(sock=sock, limit=2**17)

    async def open_udp(self, host: str, port: int) -> Socks5UdpAssociation:
        try:
            return await asyncio.wait_for(
                associate(self.host, self.port, (host, port)), self.connect_timeout
            )
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as error:
            raise UpstreamError(f"SOCKS5 UDP ASSOCIATE: {error}") from error


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host

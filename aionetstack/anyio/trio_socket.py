"""``StackTrioSocket``: a ``trio.socket.SocketType`` whose I/O goes through the stack.

What trio's own networking calls on a socket, implemented over the core
(``trio.open_tcp_stream``, ``trio.open_tcp_listeners``/``serve_tcp``,
``trio.SocketStream``/``SocketListener``, anyio's trio backend, httpcore's trio
backend): ``bind``, ``listen``, ``accept``, ``connect``, ``send``, ``recv``,
``recv_into``, ``recvfrom``, ``recvfrom_into``, ``sendto``, ``shutdown``,
``close``, ``getsockname``, ``getpeername``, ``setsockopt``/``getsockopt``
(``TCP_NODELAY`` and ``SO_KEEPALIVE`` act on the connection, ``SO_ACCEPTCONN``,
``SO_TYPE`` and ``SO_ERROR`` answer, anything else is remembered),
``family``/``type``/``proto``, ``did_shutdown_SHUT_WR``, ``is_readable``,
``wait_writable`` and the context-manager protocol. Errors are the kernel's
``OSError``s (``ConnectionRefusedError``, ``ConnectionResetError``,
``OSError(EBADF)`` after ``close()``, ``OSError(ENOTCONN)``...), so trio maps
them to its own exceptions exactly as for a kernel socket.

There is no kernel descriptor: ``fileno()`` returns a placeholder number
(never a real fd, never -1 while open; -1 once closed, which is how
``trio.SocketStream`` tells a closed socket), and ``detach``/``dup``/
``recvmsg``/``sendmsg`` raise ``OSError(EOPNOTSUPP)``. Do not hand
``fileno()`` to ``select``/``wait_readable``: use ``is_readable()``.
"""

from __future__ import annotations

import builtins
import errno
import itertools
import operator
import socket as stdlib_socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import anyio.lowlevel
import trio

from ..core.addresses import text_address
from .connection import AsyncConnection, Signal, closed_error

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from ..core.tcp import TcpListener
    from .host import SocketHost
    from .udp import UdpQueue

__all__ = ["StackTrioSocket"]

#: Placeholder "descriptors" start far above any real fd (RLIMIT_NOFILE is < 2**20).
_PLACEHOLDER_BASE: Final = 1 << 30
_placeholders = itertools.count(_PLACEHOLDER_BASE)
#: Bits Linux accepts OR-ed into a socket type.
_TYPE_FLAGS: Final = getattr(stdlib_socket, "SOCK_NONBLOCK", 0) | getattr(
    stdlib_socket, "SOCK_CLOEXEC", 0
)


def _unsupported(what: str) -> OSError:
    return OSError(errno.EOPNOTSUPP, f"{what} is not supported on an aionetstack socket")


def _int_option(value: int | Buffer | None) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    return int.from_bytes(bytes(memoryview(value)), "little")


class StackTrioSocket(trio.socket.SocketType):
    """One TCP or UDP socket of an :class:`~aionetstack.anyio.AnyioStack`, for trio."""

    def __init__(
        self,
        stack: SocketHost,
        family: stdlib_socket.AddressFamily,
        kind: stdlib_socket.SocketKind,
        proto: int = 0,
        *,
        endpoint: AsyncConnection | None = None,
    ) -> None:
        super().__init__()
        self._stack = stack
        self._family = family
        self._kind = kind
        self._proto = proto
        self._fileno = next(_placeholders)
        self._endpoint = endpoint
        self._listener: TcpListener | None = None
        #: A wildcard port whose core listener a socket of the other family owns (below).
        self._shared_port: int | None = None
        self._accepted = Signal()
        self._udp: UdpQueue | None = None
        self._bound: tuple[str | None, int] | None = None
        self._closed = False
        self._options: dict[tuple[int, int], int] = {}
        self._receiving = False
        self._sending = False
        if endpoint is not None:
            self._bound = endpoint.sockname()

    # -- identity -----------------------------------------------------------------

    @property
    def family(self) -> stdlib_socket.AddressFamily:
        return self._family

    @property
    def type(self) -> stdlib_socket.SocketKind:
        return self._kind

    @property
    def proto(self) -> int:
        return self._proto

    @property
    def did_shutdown_SHUT_WR(self) -> bool:  # noqa: N802  # trio's name
        return self._endpoint is not None and self._endpoint.write_shut

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<aionetstack StackTrioSocket {self._kind.name} {self._safe_name()} {state}>"

    def _safe_name(self) -> object:
        try:
            return self.getsockname()
        except OSError:
            return None

    def fileno(self) -> int:
        return -1 if self._closed else self._fileno

    def detach(self) -> int:
        raise _unsupported("detach()")

    def dup(self) -> trio.socket.SocketType:
        raise _unsupported("dup()")

    def get_inheritable(self) -> bool:
        return False

    def set_inheritable(self, inheritable: bool) -> None:
        if inheritable:
            raise _unsupported("an inheritable socket")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: builtins.type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- addresses and options -------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise closed_error()

    def _sockaddr(self, host: str, port: int) -> Any:
        """``(host, port)``, or ``(host, port, 0, 0)`` for AF_INET6 as the kernel gives."""
        if self._family == stdlib_socket.AF_INET6:
            return (host, port, 0, 0)
        return (host, port)

    def getsockname(self) -> Any:
        self._check_open()
        if self._endpoint is not None:
            return self._sockaddr(*self._endpoint.sockname())
        if self._listener is not None:
            listener = self._listener
            host = self._any_address() if listener.local_address is None \
                else text_address(listener.local_address)  # fmt: skip
            return self._sockaddr(host, listener.local_port)
        if self._shared_port is not None:
            return self._sockaddr(self._any_address(), self._shared_port)
        if self._udp is not None:
            endpoint = self._udp.endpoint
            host = self._any_address() if endpoint.local_address is None \
                else text_address(endpoint.local_address)  # fmt: skip
            return self._sockaddr(host, endpoint.local_port)
        if self._bound is not None:
            return self._sockaddr(self._bound[0] or self._any_address(), self._bound[1])
        return self._sockaddr(self._any_address(), 0)

    def _any_address(self) -> str:
        return "::" if self._family == stdlib_socket.AF_INET6 else "0.0.0.0"

    def getpeername(self) -> Any:
        self._check_open()
        if self._endpoint is not None:
            return self._sockaddr(*self._endpoint.peername())
        if self._udp is not None and self._udp.endpoint.remote is not None:
            remote = self._udp.endpoint.remote
            return self._sockaddr(text_address(remote[0]), remote[1])
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")

    def getsockopt(  # type: ignore[override]
        self, level: int, optname: int, buflen: int | None = None
    ) -> int | bytes:
        self._check_open()
        key = (level, optname)
        if key == (stdlib_socket.SOL_SOCKET, stdlib_socket.SO_ACCEPTCONN):
            value = int(self._listener is not None or self._shared_port is not None)
        elif key == (stdlib_socket.SOL_SOCKET, stdlib_socket.SO_TYPE):
            value = int(self._kind)
        elif key == (stdlib_socket.SOL_SOCKET, stdlib_socket.SO_ERROR):
            value = 0
        elif key == (stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY) \
                and self._endpoint is not None:  # fmt: skip
            value = int(self._endpoint.connection.nodelay)
        else:
            value = self._options.get(key, 0)
        if buflen is None:
            return value
        return value.to_bytes(max(buflen, 4), "little")[:buflen]

    def setsockopt(
        self, level: int, optname: int, value: int | Buffer | None, optlen: int | None = None
    ) -> None:
        self._check_open()
        flag = _int_option(value)
        self._options[(level, optname)] = flag
        if self._endpoint is not None:
            self._apply_option(level, optname, flag)
            if (level, optname) == (stdlib_socket.SOL_SOCKET, stdlib_socket.SO_KEEPALIVE):
                self._stack.running_driver().request_flush()  # re-arms the timer for probes

    def _apply_option(self, level: int, optname: int, flag: int) -> None:
        assert self._endpoint is not None
        connection = self._endpoint.connection
        if (level, optname) == (stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY):
            connection.set_nodelay(bool(flag))
        elif (level, optname) == (stdlib_socket.SOL_SOCKET, stdlib_socket.SO_KEEPALIVE):
            connection.set_keepalive(bool(flag))

    # -- binding, listening, connecting ------------------------------------------------

    def _parse(self, address: Any, what: str) -> tuple[str | None, int]:
        if not isinstance(address, tuple) or len(address) < 2:
            raise TypeError(f"{what} must be a (host, port) tuple, got {address!r}")
        host, port = address[0], address[1]
        if isinstance(host, bytes):
            host = host.decode("ascii")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 0xFFFF:
            raise OverflowError(f"{what}: port must be 0-65535, got {port!r}")
        if host in (None, "", "0.0.0.0", "::"):
            return (None, port)
        if not isinstance(host, str):
            raise TypeError(f"{what}: host must be a str, got {type(host).__name__}")
        return (host, port)

    async def bind(self, address: Any) -> None:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        if self._bound is not None or self._udp is not None or self._endpoint is not None:
            raise OSError(errno.EINVAL, "Invalid argument: the socket is already bound")
        host, port = self._parse(address, "bind address")
        local_addresses = self._stack.core.routes.local_addresses
        if host is not None and self._stack.resolve_local(host) not in local_addresses:
            raise OSError(errno.EADDRNOTAVAIL, f"Cannot assign requested address: {host}")
        if self._kind == stdlib_socket.SOCK_DGRAM:
            self._udp = self._stack.open_udp(host, port, None)
        self._bound = (host, port)

    def listen(self, backlog: int = 128) -> None:
        """Listen. A core listener serves every family of the stack on its port, so the
        second socket of a dual-stack wildcard pair (``trio.open_tcp_listeners`` makes an
        AF_INET and an AF_INET6 one on the same port) shares the first one's listener:
        its own ``accept`` simply waits (the first socket accepts both families)."""
        self._check_open()
        if self._kind != stdlib_socket.SOCK_STREAM:
            raise _unsupported("listen() on a datagram socket")
        if self._listener is not None or self._shared_port is not None:
            return
        if self._endpoint is not None:
            raise OSError(errno.EINVAL, "Invalid argument: the socket is connected")
        host, port = self._bound or (None, 0)
        address = None if host is None else self._stack.resolve_local(host)
        owners = self._stack.wildcard_families.setdefault(port, set()) if address is None \
            else None  # fmt: skip
        try:
            listener = self._stack.core.tcp.listen(address, port, max(1, min(backlog, 4096)))
        except OSError as error:
            if error.errno == errno.EADDRINUSE and owners and self._family not in owners:
                owners.add(self._family)
                self._shared_port = port
                return
            raise
        self._listener = listener
        if address is None:
            self._stack.wildcard_families[listener.local_port] = {self._family}
        self._stack.watch_listener(listener, self)

    def on_accept_ready(self) -> None:
        """The stack's dispatch: a connection waits in this listener's backlog."""
        self._accepted.fire()

    def close_listener(self) -> None:
        """The stack is closing: close this socket (``accept`` raises ``EBADF``)."""
        self.close()

    async def accept(self) -> tuple[trio.socket.SocketType, tuple[str, int]]:
        self._check_open()
        listener = self._listener
        if listener is None and self._shared_port is None:
            raise OSError(errno.EINVAL, "Invalid argument: the socket is not listening")
        await anyio.lowlevel.checkpoint()
        while True:
            if self._closed:
                raise closed_error()
            connection = None if listener is None else listener.accept()
            if connection is not None:
                endpoint = self._stack.track_connection(
                    AsyncConnection(self._stack.running_driver(), connection)
                )
                family = stdlib_socket.AF_INET6 if endpoint.family_is_ipv6 \
                    else stdlib_socket.AF_INET  # a wildcard listener serves both  # fmt: skip
                sock = StackTrioSocket(self._stack, family, self._kind, self._proto,
                                       endpoint=endpoint)  # fmt: skip
                return sock, sock._sockaddr(*endpoint.peername())
            await self._accepted.wait()

    async def connect(self, address: Any) -> None:
        self._check_open()
        host, port = self._parse(address, "address")
        if host is None or port == 0:
            raise OSError(errno.ECONNREFUSED, "Connection refused")
        remote = await self._stack.resolve_remote(host)
        if self._kind == stdlib_socket.SOCK_DGRAM:
            await anyio.lowlevel.checkpoint()
            self._connect_udp(remote, port)
            return
        if self._endpoint is not None:
            raise OSError(errno.EISCONN, "Transport endpoint is already connected")
        if self._listener is not None:
            raise OSError(errno.EINVAL, "Invalid argument: the socket is listening")
        stack = self._stack
        driver = stack.running_driver()
        local_host, local_port = self._bound or (None, 0)
        local = stack.core.routes.route(remote).source if local_host is None \
            else stack.resolve_local(local_host)  # fmt: skip
        connection = stack.core.tcp.connect(local, remote, port, anyio.current_time(),
                                            local_port=local_port)  # fmt: skip
        endpoint = stack.track_connection(AsyncConnection(driver, connection))
        self._endpoint = endpoint
        for (level, optname), flag in self._options.items():
            self._apply_option(level, optname, flag)
        driver.request_flush()
        try:
            await endpoint.wait_connected()
        except BaseException:
            endpoint.abort()
            self._endpoint = None
            raise

    def _connect_udp(self, remote: bytes, port: int) -> None:
        local_host, local_port = self._bound or (None, 0)
        if self._udp is not None:
            local_port = self._udp.endpoint.local_port
            self._udp.close()
        self._udp = self._stack.open_udp(local_host, local_port, (remote, port))

    # -- data ---------------------------------------------------------------------------

    @contextmanager
    def _receive_guard(self) -> Iterator[None]:
        """One task at a time may wait to receive (trio's kernel sockets say the same)."""
        if self._receiving:
            raise trio.BusyResourceError("another task is already reading from this socket")
        self._receiving = True
        try:
            yield
        finally:
            self._receiving = False

    @contextmanager
    def _send_guard(self) -> Iterator[None]:
        if self._sending:
            raise trio.BusyResourceError("another task is already writing to this socket")
        self._sending = True
        try:
            yield
        finally:
            self._sending = False

    def _tcp(self) -> AsyncConnection:
        self._check_open()
        if self._endpoint is None:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return self._endpoint

    def _datagram(self) -> UdpQueue:
        self._check_open()
        if self._udp is None:  # an unbound datagram socket gets an ephemeral port
            self._udp = self._stack.open_udp(None, 0, None)
        return self._udp

    async def _recv(self, buflen: int, flags: int = 0, /) -> bytes:
        buflen = operator.index(buflen)
        if buflen < 0:
            raise ValueError("negative buffersize in recv")
        if self._kind == stdlib_socket.SOCK_DGRAM:
            return (await self._datagram().receive())[0][:buflen]
        if buflen == 0:
            self._tcp()
            await anyio.lowlevel.checkpoint()
            return b""
        return await self._tcp().receive(buflen)

    async def _recv_into(self, buffer: Buffer, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        if nbytes:
            view = view[:nbytes]
        if self._kind == stdlib_socket.SOCK_DGRAM:
            data = (await self._datagram().receive())[0][: len(view)]
            view[: len(data)] = data
            return len(data)
        if not view:
            self._tcp()
            await anyio.lowlevel.checkpoint()
            return 0
        return await self._tcp().receive_into(view)

    async def _recvfrom(self, bufsize: int, flags: int = 0, /) -> tuple[bytes, Any]:
        if self._kind == stdlib_socket.SOCK_DGRAM:
            data, source = await self._datagram().receive()
            return data[:bufsize], self._sockaddr(*source)
        return await self._recv(bufsize), None

    async def _recvfrom_into(
        self, buffer: Buffer, nbytes: int = 0, flags: int = 0
    ) -> tuple[int, Any]:
        view = memoryview(buffer).cast("B")
        if nbytes:
            view = view[:nbytes]
        if self._kind == stdlib_socket.SOCK_DGRAM:
            data, source = await self._datagram().receive()
            data = data[: len(view)]
            view[: len(data)] = data
            return len(data), self._sockaddr(*source)
        return await self._recv_into(view), None

    async def _send(self, data: Buffer, flags: int = 0, /) -> int:
        view = memoryview(data).cast("B")
        if self._kind == stdlib_socket.SOCK_DGRAM:
            queue = self._datagram()
            await queue.send(bytes(view), None)
            return len(view)
        return await self._tcp().send_some(view)

    async def _sendto(self, *args: Any) -> int:
        if len(args) == 2:
            data, address = args
        elif len(args) == 3:
            data, _flags, address = args
        else:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args)} given)")
        if self._kind != stdlib_socket.SOCK_DGRAM:
            raise OSError(errno.EISCONN, "Transport endpoint is already connected")
        host, port = self._parse(address, "address")
        if host is None or port == 0:
            raise OSError(errno.EINVAL, f"Invalid argument: cannot send to {address!r}")
        view = memoryview(data).cast("B")
        remote = await self._stack.resolve_remote(host)
        await self._datagram().send(bytes(view), (remote, port))
        return len(view)

    async def recv(self, buflen: int, flags: int = 0, /) -> bytes:
        with self._receive_guard():
            return await self._recv(buflen, flags)

    async def recv_into(self, buffer: Buffer, nbytes: int = 0, flags: int = 0) -> int:
        with self._receive_guard():
            return await self._recv_into(buffer, nbytes, flags)

    async def recvfrom(self, bufsize: int, flags: int = 0, /) -> tuple[bytes, Any]:
        with self._receive_guard():
            return await self._recvfrom(bufsize, flags)

    async def recvfrom_into(
        self, buffer: Buffer, nbytes: int = 0, flags: int = 0
    ) -> tuple[int, Any]:
        with self._receive_guard():
            return await self._recvfrom_into(buffer, nbytes, flags)

    async def send(self, data: Buffer, flags: int = 0, /) -> int:
        with self._send_guard():
            return await self._send(data, flags)

    async def sendto(self, *args: Any) -> int:
        with self._send_guard():
            return await self._sendto(*args)

    async def recvmsg(self, *args: Any) -> Any:
        raise _unsupported("recvmsg()")

    async def recvmsg_into(self, *args: Any) -> Any:
        raise _unsupported("recvmsg_into()")

    async def sendmsg(self, *args: Any) -> int:
        raise _unsupported("sendmsg()")

    # -- readiness, shutdown, close --------------------------------------------------------

    def is_readable(self) -> bool:
        if self._closed:
            return True
        if self._endpoint is not None:
            return self._endpoint.is_readable()
        if self._listener is not None:
            return self._listener.pending > 0
        if self._udp is not None:
            return self._udp.is_readable()
        return False

    async def wait_writable(self) -> None:
        with self._send_guard():
            if self._endpoint is not None and not self._closed:
                await self._endpoint.wait_writable()
            else:
                await anyio.lowlevel.checkpoint()

    def shutdown(self, flag: int) -> None:
        endpoint = self._tcp()
        if flag in (stdlib_socket.SHUT_WR, stdlib_socket.SHUT_RDWR):
            endpoint.shutdown_write()
        elif flag != stdlib_socket.SHUT_RD:
            raise OSError(errno.EINVAL, f"Invalid argument: shutdown({flag!r})")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._endpoint is not None:
            self._endpoint.close()
        if self._listener is not None:
            self._listener.close()
            self._stack.forget_listener(self._listener)
            self._stack.wildcard_families.pop(self._listener.local_port, None)
        if self._listener is not None or self._shared_port is not None:
            self._accepted.fire()
        if self._udp is not None:
            self._udp.close()

"""trio's networking hooks, pointed at an :class:`~aionetstack.anyio.AnyioStack`.

``trio.socket.set_custom_socket_factory`` and ``set_custom_hostname_resolver``
store into trio ``RunVar``s: they apply to the current ``trio.run`` only. While
installed, every ``trio.socket.socket()`` call (without ``fileno=``) makes a
:class:`~aionetstack.anyio.trio_socket.StackTrioSocket`, and names that are not
IP literals resolve through the stack (hosts table, cache, DNS over the stack).
So unmodified
``trio.open_tcp_stream``, ``trio.serve_tcp``, ``trio.open_tcp_listeners``,
anyio on its trio backend and httpx/httpcore under trio run over the stack.
"""

from __future__ import annotations

import errno
import socket as stdlib_socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sniffio
import trio

from ..addrinfo import getaddrinfo, getnameinfo
from .trio_socket import _TYPE_FLAGS, StackTrioSocket

if TYPE_CHECKING:
    from .host import SocketHost

__all__ = ["StackHostnameResolver", "StackSocketFactory", "install_trio_network"]


class StackSocketFactory(trio.abc.SocketFactory):
    """Makes :class:`StackTrioSocket`\\ s: TCP and UDP in the families the stack has."""

    def __init__(self, stack: SocketHost) -> None:
        self._stack = stack

    def socket(
        self,
        family: stdlib_socket.AddressFamily | int = stdlib_socket.AF_INET,
        type: stdlib_socket.SocketKind | int = stdlib_socket.SOCK_STREAM,
        proto: int = 0,
    ) -> trio.socket.SocketType:
        family = stdlib_socket.AddressFamily(family)
        kind = stdlib_socket.SocketKind(int(type) & ~_TYPE_FLAGS)
        wanted = 16 if family == stdlib_socket.AF_INET6 else 4
        if family not in (stdlib_socket.AF_INET, stdlib_socket.AF_INET6) or not any(
            len(address) == wanted for address in self._stack.core.routes.local_addresses
        ):
            raise OSError(errno.EAFNOSUPPORT, f"Address family not supported: {family.name}")
        if kind not in (stdlib_socket.SOCK_STREAM, stdlib_socket.SOCK_DGRAM):
            raise OSError(errno.ESOCKTNOSUPPORT, f"Socket type not supported: {kind!r}")
        return StackTrioSocket(self._stack, family, kind, proto)


class StackHostnameResolver(trio.abc.HostnameResolver):
    """Names through the stack's resolver (trio resolves IP literals itself)."""

    def __init__(self, stack: SocketHost) -> None:
        self._stack = stack

    async def getaddrinfo(  # noqa: PLR0917  # trio's signature
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        if isinstance(port, bytes):
            port = port.decode("ascii")
        return await getaddrinfo(
            self._stack.resolver.resolve, host, port, family=family, type=type, proto=proto,
            flags=flags, local_families=self._stack.local_families(),
        )  # fmt: skip

    async def getnameinfo(
        self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int
    ) -> tuple[str, str]:
        await trio.lowlevel.checkpoint()
        return getnameinfo(self._stack.resolver.machine.hosts.reverse, sockaddr, flags)


@contextmanager
def install_trio_network(stack: SocketHost) -> Iterator[None]:
    """Install the stack's socket factory and resolver for the current trio run."""
    if sniffio.current_async_library() != "trio":
        raise RuntimeError("as_trio_network() works under trio only")
    previous_factory = trio.socket.set_custom_socket_factory(StackSocketFactory(stack))
    previous_resolver = trio.socket.set_custom_hostname_resolver(StackHostnameResolver(stack))
    try:
        yield
    finally:
        trio.socket.set_custom_socket_factory(previous_factory)
        trio.socket.set_custom_hostname_resolver(previous_resolver)

"""What the trio socket layer needs from the stack (so it never imports ``stack.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..core.stack import StackCore
    from .connection import AsyncConnection
    from .driver import AnyioDriver
    from .resolver import AnyioResolver
    from .udp import UdpQueue

__all__ = ["AcceptWatcher", "SocketHost"]


class AcceptWatcher(Protocol):
    """A face told when its listener has a connection to accept."""

    def on_accept_ready(self) -> None: ...

    def close_listener(self) -> None: ...


class SocketHost(Protocol):
    """The running stack as its sockets see it (``AnyioStack`` satisfies this)."""

    core: StackCore
    resolver: AnyioResolver
    #: Port -> families of the trio sockets listening there on the wildcard address.
    wildcard_families: dict[int, set[int]]

    def running_driver(self) -> AnyioDriver: ...

    def local_families(self) -> list[int]: ...

    def resolve_local(self, host: str) -> bytes: ...

    async def resolve_remote(self, host: str, *, family: int = 0) -> bytes: ...

    async def getaddrinfo(
        self,
        host: str | None,
        port: int | str | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]: ...

    def open_udp(
        self, local_host: str | None, local_port: int, remote: tuple[bytes, int] | None
    ) -> UdpQueue: ...

    def track_connection(self, connection: AsyncConnection) -> AsyncConnection: ...

    def watch_listener(self, listener: object, face: AcceptWatcher) -> None: ...

    def forget_listener(self, listener: object) -> None: ...

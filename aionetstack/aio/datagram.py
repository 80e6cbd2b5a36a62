"""``asyncio.DatagramTransport`` over a core UDP endpoint."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..core.udp import UdpEndpoint
from .addresses import parse_endpoint, socket_address
from .transport import BYTES_LIKE

if TYPE_CHECKING:
    from .driver import AsyncioDriver

__all__ = ["DatagramTransport"]


class DatagramTransport(asyncio.DatagramTransport):
    """A UDP endpoint of the stack, with the asyncio datagram-transport contract.

    As with asyncio's own transport, a send that fails with an ``OSError``
    (no route, datagram too big for the MTU) is reported to
    ``protocol.error_received`` rather than raised; bad arguments raise.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        driver: AsyncioDriver,
        endpoint: UdpEndpoint,
        protocol: asyncio.DatagramProtocol,
        *,
        ipv6: bool = False,
    ) -> None:
        """``ipv6``: the endpoint is an IPv6 one (bound to ``"::"`` or connected to an IPv6
        peer), so a wildcard ``sockname`` reads ``('::', port, 0, 0)`` as asyncio's does."""
        super().__init__()
        self._loop = loop
        self._driver = driver
        self._endpoint = endpoint
        self._protocol = protocol
        self._closing = False
        endpoint.user_data = self
        sockname: Any = socket_address(endpoint.local_address, endpoint.local_port)
        if endpoint.local_address is None and (
            ipv6 or (endpoint.remote is not None and len(endpoint.remote[0]) == 16)
        ):
            sockname = ("::", endpoint.local_port, 0, 0)
        self._extra: dict[str, Any] = {"sockname": sockname, "socket": None}
        if endpoint.remote is not None:
            self._extra["peername"] = socket_address(endpoint.remote[0], endpoint.remote[1])

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def is_closing(self) -> bool:
        return self._closing

    def get_write_buffer_size(self) -> int:
        return 0  # datagrams go straight into the stack's output

    def sendto(self, data: Any, addr: Any = None) -> None:
        if not isinstance(data, BYTES_LIKE):
            raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
        if self._closing:
            return  # as asyncio: silently ignored once closing
        target = None
        if addr is not None:
            host, port = parse_endpoint(addr, "addr")
            if host is None:
                raise ValueError(f"cannot send to the wildcard address {addr!r}")
            target = (host, port)
        try:
            self._endpoint.sendto(data, target)
        except OSError as error:
            self._protocol.error_received(error)
            return
        self._driver.request_flush()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._endpoint.close()
        self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        self.close()

    def _call_connection_lost(self, error: Exception | None) -> None:
        self._protocol.connection_lost(error)

    # -- called by the stack's event dispatch ----------------------------------

    def deliver(self, data: bytes, source: bytes, port: int) -> None:
        if self._closing:
            return
        try:
            self._protocol.datagram_received(data, socket_address(source, port))
        except Exception as error:  # a protocol bug must not stop the stack
            self._report(error, "datagram_received")

    def deliver_error(self, error: OSError) -> None:
        if self._closing:
            return
        try:
            self._protocol.error_received(error)
        except Exception as failure:
            self._report(failure, "error_received")

    def _report(self, error: Exception, callback: str) -> None:
        self._loop.call_exception_handler({
            "message": f"exception in {type(self._protocol).__name__}.{callback}",
            "exception": error, "transport": self, "protocol": self._protocol,
        })  # fmt: skip

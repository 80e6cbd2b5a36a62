"""The asyncio UDP calls of a :class:`~.stack.Stack`: ``create_datagram_endpoint``
(either family, names resolved first) and the UDP events that drive its endpoints.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.events import UdpDatagramReceived, UdpErrorReceived
from .addresses import parse_endpoint
from .datagram import DatagramTransport

if TYPE_CHECKING:
    pass
from .stack_state import StackState, _is_literal


class _UdpCalls(StackState):
    """The udp calls part of :class:`Stack` (see the module docstring)."""

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

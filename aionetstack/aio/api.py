"""Module-level calls that act on the current stack (the innermost ``async with Stack``).

``aionetstack.open_connection(host, port)`` is ``current_stack().open_connection(host, port)``,
and so on; each raises RuntimeError when no stack is running in this context.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .server import Server
from .stack import current_stack

__all__ = [
    "create_connection",
    "create_datagram_endpoint",
    "create_server",
    "open_connection",
    "ping",
    "start_server",
]


async def open_connection(
    host: str, port: int, **kwargs: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` over the current stack."""
    return await current_stack().open_connection(host, port, **kwargs)


async def start_server(
    client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
    host: Any = None,
    port: int = 0,
    **kwargs: Any,
) -> Server:
    """``asyncio.start_server`` over the current stack."""
    return await current_stack().start_server(client_connected_cb, host, port, **kwargs)


async def create_connection(
    protocol_factory: Callable[[], asyncio.BaseProtocol], host: str, port: int, **kwargs: Any
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """``loop.create_connection`` over the current stack."""
    return await current_stack().create_connection(protocol_factory, host, port, **kwargs)


async def create_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: Any = None,
    port: int = 0,
    **kwargs: Any,
) -> Server:
    """``loop.create_server`` over the current stack."""
    return await current_stack().create_server(protocol_factory, host, port, **kwargs)


async def create_datagram_endpoint(
    protocol_factory: Callable[[], asyncio.DatagramProtocol], **kwargs: Any
) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
    """``loop.create_datagram_endpoint`` over the current stack."""
    return await current_stack().create_datagram_endpoint(protocol_factory, **kwargs)


async def ping(host: str, timeout: float = 1.0, **kwargs: Any) -> float:
    """One ICMP echo from the current stack: the round-trip time in seconds."""
    return await current_stack().ping(host, timeout, **kwargs)

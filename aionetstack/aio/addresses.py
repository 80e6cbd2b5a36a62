"""Address conversion at the API edge (shared with the anyio faces: ``core/addresses.py``)."""

from __future__ import annotations

from ..core.addresses import (
    WILDCARD_HOSTS,
    SocketAddress,
    ip_literal,
    parse_endpoint,
    socket_address,
    text_address,
)

__all__ = [
    "WILDCARD_HOSTS",
    "SocketAddress",
    "ip_literal",
    "parse_endpoint",
    "socket_address",
    "text_address",
]

"""Address conversion at the API edge: text for users, packed bytes inside.

Loop-independent, so the asyncio and anyio drivers share it. Socket addresses
take the shapes asyncio gives them: ``(host, port)`` for IPv4 and
``(host, port, flowinfo, scope_id)`` for IPv6.
"""

from __future__ import annotations

import ipaddress
from typing import Any

__all__ = [
    "WILDCARD_HOSTS",
    "SocketAddress",
    "ip_literal",
    "parse_endpoint",
    "socket_address",
    "text_address",
]

#: A socket address as asyncio gives it: IPv4's 2-tuple or IPv6's 4-tuple.
SocketAddress = tuple[str, int] | tuple[str, int, int, int]
#: Hosts that mean "every address" when binding (asyncio's None, "" and the unspecified ones).
WILDCARD_HOSTS = (None, "", "0.0.0.0", "::")


def ip_literal(host: str) -> bytes:
    """Pack an IP address literal; anything else raises a ValueError saying why."""
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, got {type(host).__name__}")
    try:
        return ipaddress.ip_address(host).packed
    except ValueError:
        raise ValueError(f"host {host!r} is not an IP address literal") from None


def parse_endpoint(address: Any, what: str) -> tuple[bytes | None, int]:
    """Turn ``(host, port)`` (or IPv6's 4-tuple) into packed form; a wildcard host is None."""
    if not isinstance(address, tuple) or len(address) not in (2, 4):
        raise TypeError(f"{what} must be a (host, port) tuple, got {address!r}")
    host, port = address[0], address[1]
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 0xFFFF:
        raise ValueError(f"{what} port must be an int in 0..65535, got {port!r}")
    if host in WILDCARD_HOSTS:
        return None, port
    return ip_literal(host), port


def text_address(packed: bytes | None) -> str:
    """The text form of a packed address (``"0.0.0.0"`` for the wildcard)."""
    if packed is None:
        return "0.0.0.0"
    return str(ipaddress.ip_address(packed))


def socket_address(packed: bytes | None, port: int) -> SocketAddress:
    """``(host, port)`` for IPv4 (and the wildcard), ``(host, port, 0, 0)`` for IPv6.

    The shape asyncio hands out for ``AF_INET`` and ``AF_INET6`` sockets.
    """
    if packed is not None and len(packed) == 16:
        return (str(ipaddress.IPv6Address(packed)), port, 0, 0)
    return (text_address(packed), port)

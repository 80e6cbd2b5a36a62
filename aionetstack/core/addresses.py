"""Address conversion at the API edge: text for users, packed bytes inside.

Loop-independent, so the asyncio and anyio drivers share it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

__all__ = ["ip_literal", "parse_endpoint", "text_address"]


def ip_literal(host: str) -> bytes:
    """Pack an IP address literal; anything else raises a ValueError saying why."""
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, got {type(host).__name__}")
    try:
        return ipaddress.ip_address(host).packed
    except ValueError:
        raise ValueError(f"host {host!r} is not an IP address literal") from None


def parse_endpoint(address: Any, what: str) -> tuple[bytes | None, int]:
    """Turn ``(host, port)`` into packed form; a host of ``None``/"" means any address."""
    if not isinstance(address, tuple) or len(address) < 2:
        raise TypeError(f"{what} must be a (host, port) tuple, got {address!r}")
    host, port = address[0], address[1]
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 0xFFFF:
        raise ValueError(f"{what} port must be an int in 0..65535, got {port!r}")
    if host in (None, "", "0.0.0.0"):
        return None, port
    return ip_literal(host), port


def text_address(packed: bytes | None) -> str:
    """The text form of a packed address (``"0.0.0.0"`` for the wildcard)."""
    if packed is None:
        return "0.0.0.0"
    return str(ipaddress.ip_address(packed))

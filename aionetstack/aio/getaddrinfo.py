"""``getaddrinfo``/``getnameinfo`` in ``loop.getaddrinfo``'s shape (shared: ``..addrinfo``)."""

from __future__ import annotations

from ..addrinfo import AddrInfo, getaddrinfo, getnameinfo, host_text, numeric

__all__ = ["AddrInfo", "getaddrinfo", "getnameinfo", "host_text", "numeric"]

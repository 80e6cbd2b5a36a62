"""Validation of the asyncio keyword arguments the Stack accepts."""

from __future__ import annotations

import ssl as ssl_module
from typing import Any

__all__ = ["client_ssl_context", "refuse_unsupported"]


def refuse_unsupported(options: dict[str, Any], known: tuple[str, ...]) -> None:
    """asyncio parameters that make no sense here must be left at their defaults."""
    for name, value in options.items():
        if name not in known:
            raise TypeError(f"unexpected keyword argument {name!r}")
        if value not in (None, 0, False):
            raise ValueError(f"{name}={value!r} is not supported by aionetstack")


def client_ssl_context(
    ssl: ssl_module.SSLContext | bool | None,
    server_hostname: str | None,
    handshake_timeout: float | None,
) -> ssl_module.SSLContext | None:
    """The context ``create_connection`` will use, validated as asyncio does."""
    if not ssl:
        if server_hostname is not None:
            raise ValueError("server_hostname is only meaningful with ssl")
        if handshake_timeout is not None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        return None
    if ssl is True:
        return ssl_module.create_default_context()
    if not isinstance(ssl, ssl_module.SSLContext):
        raise TypeError(f"ssl must be an SSLContext, True or None, got {type(ssl).__name__}")
    return ssl

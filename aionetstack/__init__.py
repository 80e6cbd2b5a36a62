"""aionetstack: a user-space TCP/IP stack for asyncio.

Public API (DESIGN.md §4)::

    from aionetstack import Stack, TunLink, MemoryLink, Impairment

    async with Stack(link, address="198.18.0.2/24") as stack:
        rtt = await stack.ping("198.18.0.1")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The module-level ping() lives in aionetstack.aio.api: ``aionetstack.ping`` is the
# command-line module (``python -m aionetstack.ping``), and a function of the same
# name here would be replaced by that module as soon as anything imported it.
from .aio.api import (
    create_connection,
    create_datagram_endpoint,
    create_server,
    open_connection,
    start_server,
)
from .aio.echo import EchoReply
from .aio.intercept import Interception, TcpFlow, UdpFlow
from .aio.loop import loop_factory
from .aio.stack import Stack, current_stack
from .config import InterceptConfig, IpConfig, ResolverConfig, StackConfig, TcpConfig
from .errors import AionetstackError, MissingPrivilegeError, WireError

if TYPE_CHECKING:
    from .link.impair import Impairment
    from .link.memory import MemoryLink
    from .link.tap import TapLink
    from .link.tun import TunLink

#: Link classes load on first use: TunLink pulls in python-pytun, which
#: in-process users of MemoryLink do not need.
_LAZY = {
    "Impairment": "aionetstack.link.impair",
    "MemoryLink": "aionetstack.link.memory",
    "TapLink": "aionetstack.link.tap",
    "TunLink": "aionetstack.link.tun",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aionetstack' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AionetstackError",
    "EchoReply",
    "Impairment",
    "InterceptConfig",
    "Interception",
    "IpConfig",
    "MemoryLink",
    "MissingPrivilegeError",
    "ResolverConfig",
    "Stack",
    "StackConfig",
    "TapLink",
    "TcpConfig",
    "TcpFlow",
    "TunLink",
    "UdpFlow",
    "WireError",
    "create_connection",
    "create_datagram_endpoint",
    "create_server",
    "current_stack",
    "loop_factory",
    "open_connection",
    "start_server",
]

__version__ = "0.1.0.dev0"

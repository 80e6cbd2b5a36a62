"""aionetstack under anyio: the same sans-I/O core driven by anyio, so it runs on
anyio's asyncio backend and on trio, with faces that follow anyio's interfaces.

::

    from aionetstack.anyio import AnyioStack

    async with AnyioStack(link, address="198.18.0.2/24") as stack:
        stream = await stack.connect_tcp("198.18.0.1", 7)          # anyio.abc.SocketStream
        listener = await stack.create_tcp_listener(local_port=7)   # anyio.abc.SocketListener
        with stack.as_trio_network():                              # under trio
            stream = await trio.open_tcp_stream("198.18.0.1", 7)

Absolute imports of the real ``anyio`` library work inside this package (it is
``aionetstack.anyio``; Python 3 imports are absolute), and this package never
imports ``aionetstack.aio`` (DESIGN.md §1).
"""

from __future__ import annotations

from .stack import AnyioStack
from .streams import StackAttribute, StackSocketListener, StackSocketStream
from .udp import StackConnectedUDPSocket, StackUDPSocket

__all__ = [
    "AnyioStack",
    "StackAttribute",
    "StackConnectedUDPSocket",
    "StackSocketListener",
    "StackSocketStream",
    "StackUDPSocket",
]

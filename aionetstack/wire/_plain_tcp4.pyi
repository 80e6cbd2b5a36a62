"""The plain IPv4 TCP receive classification in C (``wire/_plain_tcp4.c``).

See :func:`aionetstack.wire.plain_tcp4.parse_plain_tcp4`.
"""

from .plain_tcp4 import PlainTcp4
from .tcp import TcpOptions

def bind(options_type: type[TcpOptions], /) -> None: ...
def parse(
    data: bytes | bytearray | memoryview,
    verify_header: bool,
    verify_transport: bool,
    destinations: frozenset[bytes],
    refused_sources: frozenset[bytes],
    /,
) -> PlainTcp4 | None: ...

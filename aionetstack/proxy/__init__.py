"""A tun2socks-style relay on intercept mode: ``python -m aionetstack.proxy``.

Every TCP connection and UDP flow a TUN delivers to the intercepted networks is
relayed to a SOCKS5 server (RFC 1928: CONNECT, UDP ASSOCIATE) or straight to
the kernel's sockets (``--direct``). The SYN is held until the upstream
connection is up, so a refused upstream is a refused connection for the client.
"""

from __future__ import annotations

from .relay import ProxyStatistics, Relay
from .upstream import DirectUpstream, Socks5Upstream, Upstream, UpstreamError

__all__ = [
    "DirectUpstream",
    "ProxyStatistics",
    "Relay",
    "Socks5Upstream",
    "Upstream",
    "UpstreamError",
]

"""Names for the anyio faces and trio's resolver: IP literals and a hosts table.

Names that are neither go to the stub resolver (``aionetstack.names`` driven by
``anyio/resolver.py``) when the stack has ``nameservers=``; without them the
stack raises ``socket.gaierror`` (``EAI_NONAME``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping

from ..core.addresses import ip_literal

__all__ = ["AddrInfo", "HostsTable"]

#: One ``getaddrinfo`` entry: (family, type, proto, canonname, sockaddr).
AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int]]


class HostsTable:
    """Name -> packed address, case-insensitive, trailing dot ignored."""

    __slots__ = ("_table",)

    def __init__(self, hosts: Mapping[str, str] | None = None) -> None:
        self._table: dict[str, bytes] = {}
        for name, literal in (hosts or {}).items():
            self._table[self._key(name)] = ip_literal(literal)

    @staticmethod
    def _key(name: str) -> str:
        return name.lower().rstrip(".")

    def items(self) -> list[tuple[str, bytes]]:
        return list(self._table.items())

    def resolve(self, host: str) -> bytes:
        """The packed address of an IP literal or a known name; ``socket.gaierror`` else."""
        if not isinstance(host, str):
            raise TypeError(f"host must be a str, got {type(host).__name__}")
        try:
            return ipaddress.ip_address(host).packed
        except ValueError:
            pass
        packed = self._table.get(self._key(host))
        if packed is None:
            raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host!r}")
        return packed

    def name_of(self, packed: bytes) -> str | None:
        """A name for ``packed`` (the first one given), or None."""
        for name, address in self._table.items():
            if address == packed:
                return name
        return None

    def getaddrinfo(
        self, host: str | None, port: int | str | None, *, family: int = 0, type_: int = 0,
        proto: int = 0,
    ) -> list[AddrInfo]:  # fmt: skip
        """``socket.getaddrinfo``'s answer for ``host`` (None: the wildcard address)."""
        if isinstance(port, str):
            try:
                port = int(port)
            except ValueError:
                raise socket.gaierror(socket.EAI_SERVICE, f"unknown service {port!r}") from None
        port = port or 0
        packed = bytes(4) if host is None else self.resolve(host)
        text = str(ipaddress.ip_address(packed))
        address_family = socket.AF_INET6 if len(packed) == 16 else socket.AF_INET
        if family not in (0, socket.AF_UNSPEC, address_family):
            raise socket.gaierror(socket.EAI_ADDRFAMILY, f"{host!r} has no address of that family")
        kinds = [(socket.SOCK_STREAM, socket.IPPROTO_TCP), (socket.SOCK_DGRAM, socket.IPPROTO_UDP)]
        if type_:
            kinds = [(kind, number) for kind, number in kinds if kind == type_]
        return [(address_family, kind, proto or number, "", (text, port)) for kind, number in kinds]

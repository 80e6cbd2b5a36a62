"""SOCKS5 UDP ASSOCIATE (RFC 1928 §4, §7), which python-socks does not implement.

One association per relayed UDP flow: a TCP control connection (no
authentication, method 0x00) asks for UDP ASSOCIATE; the server answers with
the relay's address (BND.ADDR/BND.PORT, its own address when it says
0.0.0.0); every datagram to the relay carries the request header RSV(2)
FRAG(1) ATYP DST.ADDR DST.PORT before the data. Fragmented datagrams
(FRAG != 0) are dropped, as §7 allows. The association lasts as long as the
control connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct
from typing import Protocol

__all__ = ["Socks5UdpAssociation", "UdpUpstream", "associate", "decapsulate", "encapsulate"]

_VERSION = 5
_NO_AUTHENTICATION = 0
_UDP_ASSOCIATE = 3
_ATYP_IPV4, _ATYP_DOMAIN, _ATYP_IPV6 = 1, 3, 4
_PORT = struct.Struct("!H")


class UdpUpstream(Protocol):
    """A datagram path for one relayed UDP flow."""

    def send(self, data: bytes) -> None:
        """Send one datagram towards the flow's destination."""

    async def receive(self) -> bytes | None:
        """The next datagram back, or None when the path closed."""

    def close(self) -> None:
        """Release the path. Idempotent."""


def _address(host: str) -> bytes:
    address = ipaddress.ip_address(host)
    atyp = _ATYP_IPV4 if address.version == 4 else _ATYP_IPV6
    return bytes([atyp]) + address.packed


def encapsulate(destination: tuple[str, int], data: bytes) -> bytes:
    """The RFC 1928 §7 UDP request header for ``destination``, then ``data``."""
    return b"\x00\x00\x00" + _address(destination[0]) + _PORT.pack(destination[1]) + data


def decapsulate(datagram: bytes) -> bytes | None:
    """The data of a datagram from the relay, or None for a malformed or fragmented one."""
    if len(datagram) < 4 or datagram[2] != 0:
        return None
    atyp = datagram[3]
    if atyp == _ATYP_IPV4:
        offset = 4 + 4
    elif atyp == _ATYP_IPV6:
        offset = 4 + 16
    elif atyp == _ATYP_DOMAIN and len(datagram) > 4:
        offset = 5 + datagram[4]
    else:
        return None
    if len(datagram) < offset + 2:
        return None
    return datagram[offset + 2 :]


class _RelayProtocol(asyncio.DatagramProtocol):
    def __init__(self, limit: int = 128) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(limit)

    def datagram_received(self, data: bytes, addr: object) -> None:
        payload = decapsulate(data)
        if payload is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(payload)

    def error_received(self, exc: Exception) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class Socks5UdpAssociation:
    """One UDP association: datagrams to one destination through the SOCKS5 relay."""

    def __init__(
        self,
        destination: tuple[str, int],
        control: asyncio.StreamWriter,
        transport: asyncio.DatagramTransport,
        protocol: _RelayProtocol,
    ) -> None:
        self._destination = destination
        self._control = control
        self._transport = transport
        self._protocol = protocol

    def send(self, data: bytes) -> None:
        self._transport.sendto(encapsulate(self._destination, data))

    async def receive(self) -> bytes | None:
        if self._transport.is_closing() and self._protocol.queue.empty():
            return None
        return await self._protocol.queue.get()

    def close(self) -> None:
        self._transport.close()
        self._control.close()


async def associate(
    server_host: str, server_port: int, destination: tuple[str, int]
) -> Socks5UdpAssociation:
    """Open a UDP association with the SOCKS5 server for ``destination``.

    ``ConnectionRefusedError`` when the server refuses (its reply code in the
    message), ``ValueError`` for a reply that is not SOCKS5.
    """
    reader, writer = await asyncio.open_connection(server_host, server_port)
    try:
        writer.write(bytes([_VERSION, 1, _NO_AUTHENTICATION]))
        version, method = await reader.readexactly(2)
        if version != _VERSION or method != _NO_AUTHENTICATION:
            raise ValueError(f"SOCKS5 server chose method {method} (version {version})")
        # DST.ADDR/DST.PORT: where our datagrams will come from; zeros: not known yet.
        writer.write(bytes([_VERSION, _UDP_ASSOCIATE, 0, _ATYP_IPV4]) + bytes(6))
        version, reply, _reserved, atyp = await reader.readexactly(4)
        if version != _VERSION:
            raise ValueError(f"not a SOCKS5 reply (version {version})")
        if reply != 0:
            raise ConnectionRefusedError(f"SOCKS5 UDP ASSOCIATE refused (reply {reply})")
        if atyp == _ATYP_IPV4:
            relay_host = str(ipaddress.ip_address(await reader.readexactly(4)))
        elif atyp == _ATYP_IPV6:
            relay_host = str(ipaddress.ip_address(await reader.readexactly(16)))
        elif atyp == _ATYP_DOMAIN:
            length = (await reader.readexactly(1))[0]
            relay_host = (await reader.readexactly(length)).decode("idna")
        else:
            raise ValueError(f"SOCKS5 reply with address type {atyp}")
        (relay_port,) = _PORT.unpack(await reader.readexactly(2))
        if ipaddress.ip_address(relay_host).is_unspecified if atyp != _ATYP_DOMAIN else False:
            relay_host = server_host  # RFC 1928 leaves it to the client: the server's address
        transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
            _RelayProtocol, remote_addr=(relay_host, relay_port)
        )
    except BaseException:
        writer.close()
        raise
    return Socks5UdpAssociation(destination, writer, transport, protocol)

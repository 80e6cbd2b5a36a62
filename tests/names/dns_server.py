"""A small authoritative DNS server for tests, written with dnspython.

``Zone.answer(query_bytes, tcp=)`` is the server's whole logic (no I/O), so the
same zone serves from a peer stack (``serve_on_stack``) and from kernel
sockets in the test's namespace (``KernelDnsServer``, a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from aionetstack import Stack

SOA = "ns.test. admin.test. 1 3600 600 86400 60"


@dataclass
class Zone:
    """Names of ``.test`` and how the server misbehaves, per name."""

    addresses: dict[str, list[str]] = field(default_factory=dict)
    cnames: dict[str, str] = field(default_factory=dict)
    ttl: int = 300
    #: Over UDP, answers with more addresses than this come back truncated (TC).
    udp_limit: int = 1000
    servfail: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    #: Before the real answer, send these forgeries: "id", "question", "loop", "junk";
    #: "source": the real answer also comes from another port first (on a stack only).
    forgeries: list[str] = field(default_factory=list)
    #: (protocol, name, type) of every query seen.
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def answer(self, data: bytes, *, tcp: bool) -> list[bytes]:
        """The datagrams (or TCP messages) to send back for ``data``."""
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.seen.append(("tcp" if tcp else "udp", name, rdtype))
        if name in self.silent:
            return []
        response = dns.message.make_response(query)
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return [response.to_wire()]
        owner = name
        while owner in self.cnames:
            target = self.cnames[owner]
            response.answer.append(dns.rrset.from_text(owner + ".", self.ttl, "IN", "CNAME",
                                                       target + "."))  # fmt: skip
            owner = target
        wanted = [a for a in self.addresses.get(owner, []) if (":" in a) == (rdtype == "AAAA")]
        if owner not in self.addresses and owner == name:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(dns.rrset.from_text("test.", 60, "IN", "SOA", SOA))
        elif wanted:
            response.answer.append(
                dns.rrset.from_text_list(owner + ".", self.ttl, "IN", rdtype, wanted)
            )
        else:
            response.authority.append(dns.rrset.from_text("test.", 60, "IN", "SOA", SOA))
        if not tcp and len(wanted) > self.udp_limit:
            del response.answer[:]
            response.flags |= dns.flags.TC
        out = [self._forge(k, query, response) for k in self.forgeries if k != "source"]
        return [*out, response.to_wire()]

    @staticmethod
    def _forge(kind: str, query: dns.message.Message, response: dns.message.Message) -> bytes:
        if kind == "id":
            forged = dns.message.make_response(query)
            forged.id = query.id ^ 0x5A5A
            forged.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A",
                                                     "198.18.66.6"))  # fmt: skip
            return forged.to_wire()
        if kind == "question":
            other = dns.message.make_query("evil.test", "A", id=query.id)
            forged = dns.message.make_response(other)
            forged.answer.append(dns.rrset.from_text("evil.test.", 60, "IN", "A", "198.18.66.6"))
            return forged.to_wire()
        if kind == "loop":  # the question name is a compression pointer to itself
            header = query.id.to_bytes(2, "big") + bytes.fromhex("8180 0001 0000 0000 0000")
            return header + b"\xc0\x0c\x00\x01\x00\x01"
        return query.id.to_bytes(2, "big") + b"\x81"  # "junk": a header cut short


class _StackUdp(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None
        self.other_port: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        replies = self.zone.answer(data, tcp=False)
        if "source" in self.zone.forgeries and replies and self.other_port is not None:
            self.other_port.sendto(replies[-1], addr)
        for reply in replies:
            self.transport.sendto(reply, addr)


async def serve_on_stack(stack: Stack, zone: Zone, host: str, port: int = 53) -> None:
    """Answer ``zone`` on ``host``:``port`` of ``stack``, UDP and TCP."""

    async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length = int.from_bytes(await reader.readexactly(2), "big")
                for reply in zone.answer(await reader.readexactly(length), tcp=True):
                    writer.write(len(reply).to_bytes(2, "big") + reply)
        writer.close()

    _, protocol = await stack.create_datagram_endpoint(
        lambda: _StackUdp(zone), local_addr=(host, port)
    )
    protocol.other_port, _ = await stack.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=(host, port + 1000)
    )
    await stack.start_server(on_tcp, host, port)


class KernelDnsServer:
    """``zone`` served on kernel UDP and TCP sockets at ``host``:``port``, in a thread.

    Bounded: each ``select`` waits at most 0.2 s and the thread ends on ``close()``.
    """

    def __init__(self, zone: Zone, host: str, port: int = 53) -> None:
        self.zone = zone
        self.sources: list[tuple[str, int]] = []
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind((host, port))
        self._tcp = socket.create_server((host, port))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._udp, selectors.EVENT_READ)
            selector.register(self._tcp, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(0.2):
                    if key.fileobj is self._udp:
                        data, source = self._udp.recvfrom(65535)
                        self.sources.append(source)
                        for reply in self.zone.answer(data, tcp=False):
                            self._udp.sendto(reply, source)
                    else:
                        connection, source = self._tcp.accept()
                        self.sources.append(source)
                        with connection:
                            connection.settimeout(2.0)
                            self._serve_tcp(connection)

    def _serve_tcp(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError):
            for message in _frames(connection):
                for reply in self.zone.answer(message, tcp=True):
                    connection.sendall(len(reply).to_bytes(2, "big") + reply)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._udp.close()
        self._tcp.close()


def _frames(connection: socket.socket) -> Iterator[bytes]:
    buffer = b""
    while True:
        while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
            length = int.from_bytes(buffer[:2], "big")
            yield buffer[2 : 2 + length]
            buffer = buffer[2 + length :]
        data = connection.recv(65535)
        if not data:
            return
        buffer += data

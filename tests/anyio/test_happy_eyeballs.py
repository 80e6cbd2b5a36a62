"""Happy Eyeballs (RFC 8305) on the anyio face: connect_tcp to a name with several
addresses, over DNS served by a peer stack (both backends)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from aionetstack import MemoryLink, ResolverConfig, StackConfig
from aionetstack.anyio import AnyioStack

from .conftest import FAR, NEAR

pytestmark = pytest.mark.anyio

WAIT = 10.0
ZONE = {
    "web.test": [FAR],
    "many.test": [f"198.18.1.{i}" for i in range(1, 41)],
    "dual.test": [FAR, "2001:2::99"],
}  # nobody answers at 2001:2::99
SOA = "ns.test. admin.test. 1 3600 600 86400 60"


def answer(data: bytes, *, tcp: bool, seen: list[str]) -> bytes | None:
    """The zone's answer (TC over UDP past 10 records; silent.test is never answered)."""
    query = dns.message.from_wire(data)
    question = query.question[0]
    name = question.name.to_text(omit_final_dot=True)
    seen.append(f"{'tcp' if tcp else 'udp'} {name}")
    if name == "silent.test":
        return None
    response = dns.message.make_response(query)
    addresses = ZONE.get(name)
    if addresses is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(dns.rrset.from_text("test.", 60, "IN", "SOA", SOA))
    elif question.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        rdtype = dns.rdatatype.to_text(question.rdtype)
        wanted = [a for a in addresses if (":" in a) == (rdtype == "AAAA")]
        if len(wanted) > 10 and not tcp:
            response.flags |= dns.flags.TC
        elif wanted:
            response.answer.append(dns.rrset.from_text_list(name + ".", 300, "IN", rdtype, wanted))
        else:
            response.authority.append(dns.rrset.from_text("test.", 60, "IN", "SOA", SOA))
    else:  # NODATA, with the SOA that lets it be cached (RFC 2308 §5)
        response.authority.append(dns.rrset.from_text("test.", 60, "IN", "SOA", SOA))
    return response.to_wire()


@asynccontextmanager
async def resolving_stacks(
    *, dual: bool = False
) -> AsyncIterator[tuple[AnyioStack, AnyioStack, list[str]]]:
    """``(near, far, seen)``: near asks far, whose UDP and TCP port 53 serve ZONE
    (``dual``: both stacks have an IPv6 address too)."""
    near_link, far_link = MemoryLink.pair(mtu=1500)
    config = StackConfig(resolver=ResolverConfig(timeout=0.2, attempts=2))
    seen: list[str] = []
    far_addresses = [f"{FAR}/24", "2001:2::1/64"] if dual else f"{FAR}/24"
    near_addresses = [f"{NEAR}/24", "2001:2::2/64"] if dual else f"{NEAR}/24"
    async with (
        AnyioStack(far_link, address=far_addresses, seed=2) as far,
        AnyioStack(near_link, address=near_addresses, seed=1, config=config,
                   nameservers=[FAR], hosts={"hosts.test": FAR}) as near,
        anyio.create_task_group() as group,
    ):  # fmt: skip
        udp = await far.create_udp_socket(local_host=FAR, local_port=53)
        listener = await far.create_tcp_listener(local_host=FAR, local_port=53)

        async def serve_udp() -> None:
            async for data, source in udp:
                reply = answer(data, tcp=False, seen=seen)
                if reply is not None:
                    await udp.sendto(reply, *source)

        async def serve_tcp_client(stream: anyio.abc.ByteStream) -> None:
            async with stream:
                data = await stream.receive()
                reply = answer(data[2:], tcp=True, seen=seen)
                if reply is not None:
                    await stream.send(len(reply).to_bytes(2, "big") + reply)

        group.start_soon(serve_udp)
        group.start_soon(listener.serve, serve_tcp_client)
        yield near, far, seen
        group.cancel_scope.cancel()


async def test_connect_tcp_happy_eyeballs_past_a_silent_ipv6_address() -> None:
    async with resolving_stacks(dual=True) as (near, far, _):
        listener = await far.create_tcp_listener(local_port=9)

        async def hello(stream: anyio.abc.ByteStream) -> None:
            async with stream:
                await stream.send(b"hi")

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as group:
                group.start_soon(listener.serve, hello)
                infos = await near.getaddrinfo("dual.test", 9, type=socket.SOCK_STREAM)
                assert [info[0] for info in infos] == [socket.AF_INET6, socket.AF_INET]
                started = anyio.current_time()
                async with await near.connect_tcp("dual.test", 9) as stream:
                    assert await stream.receive() == b"hi"
                    remote = stream.extra(anyio.abc.SocketAttribute.remote_address)
                assert remote[0] == FAR  # IPv6 went unanswered: IPv4 after 250 ms won
                assert anyio.current_time() - started >= 0.25
                group.cancel_scope.cancel()

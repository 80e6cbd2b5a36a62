"""Names through AnyioStack's stub resolver (DNS over the stack), on both backends,
and through trio's hostname resolver under ``as_trio_network()``."""

from __future__ import annotations

import socket

import anyio
import anyio.abc
import pytest

from aionetstack import MemoryLink
from aionetstack.anyio import AnyioStack

from ..names.dns_server import Zone
from .conftest import FAR, NEAR

pytestmark = pytest.mark.anyio

WAIT = 10.0


async def serve_zone(stack: AnyioStack, zone: Zone, *, task_status: anyio.abc.TaskStatus[None] =
                     anyio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
    """An authoritative server for ``zone`` on the stack's UDP port 53 (anyio faces)."""
    udp = await stack.create_udp_socket(local_port=53)
    task_status.started()
    async with udp:
        while True:
            data, source = await udp.receive()
            for reply in zone.answer(data, tcp=False):
                await udp.sendto(reply, *source)


async def test_getaddrinfo_and_connect_by_name_over_dns() -> None:
    zone = Zone(addresses={"web.test": [FAR], "v6less.test": [FAR]})
    near_link, far_link = MemoryLink.pair()
    async with (
        AnyioStack(far_link, address=f"{FAR}/24", seed=2) as far,
        AnyioStack(near_link, address=f"{NEAR}/24", seed=1, nameservers=[FAR],
                   hosts={"local.test": FAR}) as near,
        anyio.create_task_group() as group,
    ):  # fmt: skip
        await group.start(serve_zone, far, zone)
        listener = await far.create_tcp_listener(local_port=7200)
        with anyio.fail_after(WAIT):
            infos = await near.getaddrinfo("web.test", 7200, type=socket.SOCK_STREAM)
            assert infos == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                              (FAR, 7200))]  # fmt: skip
            stream = await near.connect_tcp("web.test", 7200)  # cached now: no new query
            assert stream.extra(anyio.abc.SocketAttribute.remote_address) == (FAR, 7200)
            await stream.aclose()
            await near.connect_tcp("local.test", 7200)  # the hosts table: no query
            with pytest.raises(socket.gaierror) as caught:
                await near.getaddrinfo("missing.test", 80)
            assert caught.value.errno == socket.EAI_NONAME
            assert await near.getnameinfo((FAR, 7200)) == ("local.test", "7200")
        queried = [(name, rdtype) for _, name, rdtype in zone.seen]
        assert ("web.test", "A") in queried and ("local.test", "A") not in queried
        assert near.statistics()["names"]
        await listener.aclose()
        group.cancel_scope.cancel()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_resolves_names_through_the_stack(anyio_backend: str) -> None:
    import trio

    zone = Zone(addresses={"web.test": [FAR]})
    near_link, far_link = MemoryLink.pair()
    async with (
        AnyioStack(far_link, address=f"{FAR}/24", seed=2) as far,
        AnyioStack(near_link, address=f"{NEAR}/24", seed=1, nameservers=[FAR]) as near,
        anyio.create_task_group() as group,
    ):
        await group.start(serve_zone, far, zone)
        listener = await far.create_tcp_listener(local_port=7201)
        with near.as_trio_network(), trio.fail_after(WAIT):
            assert await trio.socket.getaddrinfo("web.test", 7201, type=socket.SOCK_STREAM) == [
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (FAR, 7201))
            ]
            stream = await trio.open_tcp_stream("web.test", 7201)
            server = await listener.accept()
            await stream.send_all(b"by name")
            assert await server.receive() == b"by name"
            await stream.aclose()
            await server.aclose()
            with pytest.raises(OSError):
                await trio.open_tcp_stream("missing.test", 7201)
        await listener.aclose()
        group.cancel_scope.cancel()

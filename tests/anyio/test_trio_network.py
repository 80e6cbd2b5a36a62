"""Unmodified trio (and anyio-on-trio) networking over the stack: ``as_trio_network()``."""

from __future__ import annotations

import socket

import anyio
import anyio.abc
import pytest
import trio

from aionetstack import MemoryLink
from aionetstack.anyio import AnyioStack

from .conftest import FAR, NEAR, Stacks, open_stacks, with_stacks

pytestmark = pytest.mark.anyio

WAIT = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def echo(stream: trio.SocketStream) -> None:
    async with stream:
        async for chunk in stream:
            await stream.send_all(chunk)


@with_stacks
async def test_serve_tcp_and_open_tcp_stream_by_name(stacks: Stacks) -> None:
    near, far = stacks
    async with trio.open_nursery() as nursery:
        with far.as_trio_network():
            listeners = await nursery.start(trio.serve_tcp, echo, 0)
        port = listeners[0].socket.getsockname()[1]
        with near.as_trio_network(), trio.fail_after(WAIT):
            stream = await trio.open_tcp_stream("far.test", port)  # the stack's hosts table
            assert stream.socket.getpeername() == (FAR, port)
            assert stream.socket.getsockname()[0] == NEAR
            assert stream.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            await stream.send_all(b"hello trio")
            assert await stream.receive_some() == b"hello trio"
            await stream.send_eof()
            assert await stream.receive_some() == b""
            await stream.aclose()
        nursery.cancel_scope.cancel()


@with_stacks
async def test_refused_connection_is_trios_oserror(stacks: Stacks) -> None:
    near, _ = stacks
    with (
        near.as_trio_network(),
        trio.fail_after(WAIT),
        pytest.raises(OSError, match="all attempts to connect") as caught,
    ):
        await trio.open_tcp_stream(FAR, 9)
    causes = caught.value.__cause__
    assert isinstance(causes, ExceptionGroup)
    assert all(isinstance(error, ConnectionRefusedError) for error in causes.exceptions)


@with_stacks
async def test_reset_is_broken_resource_and_close_is_closed_resource(stacks: Stacks) -> None:
    near, far = stacks
    with far.as_trio_network():
        listeners = await trio.open_tcp_listeners(0, host=FAR)
    port = listeners[0].socket.getsockname()[1]
    with near.as_trio_network(), trio.fail_after(WAIT):
        client = await trio.open_tcp_stream(FAR, port)
        server = await listeners[0].accept()
        await client.send_all(b"never read")
        while not server.socket.is_readable():
            await trio.sleep(0.001)  # on its way over the memory link
        await server.aclose()  # unread data: RST
        with pytest.raises(trio.BrokenResourceError):
            await client.receive_some()
        await client.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await client.receive_some()
    await listeners[0].aclose()


@with_stacks
async def test_anyio_on_trio_goes_through_the_stack(stacks: Stacks) -> None:
    """anyio's trio backend builds its sockets with trio.socket: they are the stack's."""
    near, far = stacks
    listener = await far.create_tcp_listener(local_port=7100)
    with near.as_trio_network(), trio.fail_after(WAIT):
        stream = await anyio.connect_tcp(FAR, 7100)
        server = await listener.accept()
        await stream.send(b"anyio.connect_tcp")
        assert await server.receive() == b"anyio.connect_tcp"
        await stream.aclose()
    await server.aclose()
    await listener.aclose()


@with_stacks
async def test_udp_through_trio_socket(stacks: Stacks) -> None:
    near, far = stacks
    server = await far.create_udp_socket(local_port=5400)
    with near.as_trio_network(), trio.fail_after(WAIT):
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await sock.bind(("", 0))
        assert await sock.sendto(b"ping", (FAR, 5400)) == 4
        data, source = await server.receive()
        assert data == b"ping" and source[1] == sock.getsockname()[1]
        await server.sendto(b"pong", *source)
        assert await sock.recvfrom(100) == (b"pong", (FAR, 5400))
        await sock.connect((FAR, 5400))
        await sock.send(b"connected")
        assert (await server.receive())[0] == b"connected"
        sock.close()
    await server.aclose()


@with_stacks
async def test_the_hooks_are_restored_and_ipv6_is_refused(stacks: Stacks) -> None:
    near, _ = stacks
    with near.as_trio_network():
        with pytest.raises(OSError) as caught:
            trio.socket.socket(socket.AF_INET6)  # the stack has no IPv6 address
        assert caught.value.errno == 97  # EAFNOSUPPORT: open_tcp_listeners skips the family
    sock = trio.socket.socket()  # after the block: a kernel socket again
    assert sock.fileno() >= 0
    assert type(sock).__module__.startswith("trio")
    sock.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_as_trio_network_needs_trio(anyio_backend: str) -> None:
    async with open_stacks() as (near, _):
        with pytest.raises(RuntimeError, match="trio"), near.as_trio_network():
            pass


async def test_dual_stack_serve_tcp_and_ipv6_clients() -> None:
    """open_tcp_listeners(host=None) makes an AF_INET and an AF_INET6 socket on one port:
    they share the stack's one listener; IPv6 addresses come as the kernel's 4-tuples."""
    near_link, far_link = MemoryLink.pair()
    async with (
        AnyioStack(far_link, address=[f"{FAR}/24", "2001:2::1/64"], seed=2) as far,
        AnyioStack(near_link, address=[f"{NEAR}/24", "2001:2::2/64"], seed=1) as near,
        trio.open_nursery() as nursery,
    ):
        with far.as_trio_network():
            listeners = await nursery.start(trio.serve_tcp, echo, 7300)
        assert sorted(listener.socket.family for listener in listeners) == [
            socket.AF_INET, socket.AF_INET6
        ]
        with near.as_trio_network(), trio.fail_after(WAIT):
            for host, family in (("2001:2::1", socket.AF_INET6), (FAR, socket.AF_INET)):
                stream = await trio.open_tcp_stream(host, 7300)
                assert stream.socket.family == family
                peer = stream.socket.getpeername()
                assert peer == ((host, 7300, 0, 0) if family == socket.AF_INET6 else (host, 7300))
                await stream.send_all(b"dual stack")
                assert await stream.receive_some() == b"dual stack"
                await stream.aclose()
        anyio_stream = await near.connect_tcp("2001:2::1", 7300)
        assert anyio_stream.extra(anyio.abc.SocketAttribute.family) == socket.AF_INET6
        await anyio_stream.aclose()
        nursery.cancel_scope.cancel()

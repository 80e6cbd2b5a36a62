"""The anyio faces over a memory link, on anyio's asyncio and trio backends.

The conformance checks of anyio's stream interfaces: exact bytes both ways,
``EndOfStream`` at EOF, half-close, ``ClosedResourceError`` after ``aclose``,
``BrokenResourceError`` after a reset, ``BusyResourceError`` for concurrent use,
the typed attributes, flow control (an unread stream closes the window).
"""

from __future__ import annotations

import errno
import hashlib
import random
import socket

import anyio
import anyio.abc
import pytest
import sniffio

from aionetstack import MemoryLink, StackConfig, TcpConfig
from aionetstack.anyio import AnyioStack, StackAttribute, StackSocketStream

from .conftest import FAR, NEAR, Stacks, with_stacks

pytestmark = pytest.mark.anyio

WAIT = 10.0


async def pair(near: AnyioStack, far: AnyioStack, port: int) -> tuple[
    anyio.abc.SocketStream, anyio.abc.SocketStream
]:  # fmt: skip
    """A connected (client on near, server on far) stream pair."""
    listener = await far.create_tcp_listener(local_port=port)
    client = await near.connect_tcp(FAR, port)
    with anyio.fail_after(WAIT):
        server = await listener.accept()
    await listener.aclose()
    assert isinstance(client, StackSocketStream)
    return client, server


async def receive_all(stream: anyio.abc.ByteReceiveStream) -> bytes:
    received = bytearray()
    try:
        while True:
            received += await stream.receive()
    except anyio.EndOfStream:
        return bytes(received)


@with_stacks
async def test_the_backend_is_the_one_asked_for(stacks: Stacks, anyio_backend: str) -> None:
    """anyio's plugin runs these tests (pytest-asyncio in auto mode does not grab them),
    and the stacks are driven by the test's own loop: a ping goes and comes back."""
    assert sniffio.current_async_library() == anyio_backend
    near, _ = stacks
    with anyio.fail_after(WAIT):
        assert await near.ping(FAR) > 0


@with_stacks
async def test_megabytes_both_ways_at_once_exact(stacks: Stacks) -> None:
    near, far = stacks
    client, server = await pair(near, far, 7001)
    rng = random.Random(13)
    up = rng.randbytes(3 << 20)
    down = rng.randbytes(2 << 20)
    results: dict[str, bytes] = {}

    async def send(stream: anyio.abc.SocketStream, data: bytes) -> None:
        for offset in range(0, len(data), 50_000):  # uneven writes
            await stream.send(data[offset : offset + 50_000])
        await stream.send_eof()

    async def collect(name: str, stream: anyio.abc.SocketStream) -> None:
        results[name] = await receive_all(stream)

    with anyio.fail_after(WAIT * 3):
        async with anyio.create_task_group() as group:
            group.start_soon(send, client, up)
            group.start_soon(send, server, down)
            group.start_soon(collect, "at_server", server)
            group.start_soon(collect, "at_client", client)
    assert hashlib.sha256(results["at_server"]).digest() == hashlib.sha256(up).digest()
    assert results["at_client"] == down
    await client.aclose()
    await server.aclose()


@with_stacks
async def test_end_of_stream_is_raised_every_time(stacks: Stacks) -> None:
    near, far = stacks
    client, server = await pair(near, far, 7002)
    await server.send(b"last words")
    await server.aclose()
    with anyio.fail_after(WAIT):
        assert await client.receive() == b"last words"
        for _ in range(3):
            with pytest.raises(anyio.EndOfStream):
                await client.receive()
    await client.aclose()


@with_stacks
async def test_half_close_keeps_the_other_direction(stacks: Stacks) -> None:
    near, far = stacks
    client, server = await pair(near, far, 7003)
    await client.send(b"request")
    await client.send_eof()
    await client.send_eof()  # idempotent
    with pytest.raises(anyio.ClosedResourceError):
        await client.send(b"more")
    with anyio.fail_after(WAIT):
        assert await receive_all(server) == b"request"
        await server.send(b"reply after the client's FIN")
        await server.aclose()
        assert await receive_all(client) == b"reply after the client's FIN"
    await client.aclose()


@with_stacks
async def test_closed_resource_error_after_aclose(stacks: Stacks) -> None:
    near, far = stacks
    client, server = await pair(near, far, 7004)
    await client.aclose()
    await client.aclose()  # idempotent
    with pytest.raises(anyio.ClosedResourceError):
        await client.receive()
    with pytest.raises(anyio.ClosedResourceError):
        await client.send(b"x")
    with pytest.raises(anyio.ClosedResourceError):
        await client.send_eof()
    with anyio.fail_after(WAIT):
        with pytest.raises(anyio.EndOfStream):
            await server.receive()
    await server.aclose()


@with_stacks
async def test_aclose_wakes_a_blocked_receive(stacks: Stacks) -> None:
    near, far = stacks
    client, server = await pair(near, far, 7005)
    outcome: list[type[BaseException]] = []

    async def blocked() -> None:
        try:
            await client.receive()
        except anyio.ClosedResourceError as error:
            outcome.append(type(error))

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(blocked)
            await anyio.wait_all_tasks_blocked()
            await client.aclose()
    assert outcome == [anyio.ClosedResourceError]
    await server.aclose()


@with_stacks
async def test_concurrent_receive_or_send_is_busy(stacks: Stacks) -> None:
    near, far = stacks
    client, server = await pair(near, far, 7006)
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(client.receive)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(anyio.BusyResourceError):
                await client.receive()
            await server.send(b"x")  # lets the first receive finish
    await client.aclose()
    await server.aclose()


@with_stacks
async def test_reset_by_peer_is_broken_resource(stacks: Stacks) -> None:
    near, far = stacks
    client, server = await pair(near, far, 7007)
    await client.send(b"unread by the server")
    with anyio.fail_after(WAIT):
        while not server.extra(StackAttribute.connection).readable_bytes:
            await anyio.sleep(0.001)  # the bytes are on their way (memory link)
    await server.aclose()  # unread data: the close is a reset (RFC 2525 §2.17)
    with anyio.fail_after(WAIT):
        with pytest.raises(anyio.BrokenResourceError) as caught:
            await client.receive()
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    with pytest.raises(anyio.BrokenResourceError):
        await client.send(b"after the reset")
    await client.aclose()


@with_stacks
async def test_refused_connection_raises_connection_refused(stacks: Stacks) -> None:
    near, _ = stacks
    with anyio.fail_after(WAIT), pytest.raises(ConnectionRefusedError) as caught:
        await near.connect_tcp(FAR, 9)
    assert isinstance(caught.value, OSError)  # what code written for anyio.connect_tcp catches


@with_stacks
async def test_a_cancelled_connect_leaves_no_connection_behind(stacks: Stacks) -> None:
    near, _ = stacks
    with anyio.move_on_after(0.2) as scope:
        await near.connect_tcp("198.18.0.77", 80)  # nobody there: SYNs go unanswered
    assert scope.cancelled_caught
    assert [c for c in near.core.tcp.connections if c.state.name != "CLOSED"] == []


@with_stacks
async def test_names_from_the_hosts_table_and_unknown_names(stacks: Stacks) -> None:
    near, far = stacks
    listener = await far.create_tcp_listener(local_port=7008)
    stream = await near.connect_tcp("far.test", 7008)
    assert stream.extra(anyio.abc.SocketAttribute.remote_address) == (FAR, 7008)
    await stream.aclose()
    await listener.aclose()
    with pytest.raises(socket.gaierror):
        await near.connect_tcp("nowhere.test", 7008)
    infos = await near.getaddrinfo("far.test", 80, type=socket.SOCK_STREAM)
    assert infos == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (FAR, 80))]


@with_stacks
async def test_typed_attributes_and_no_raw_socket(stacks: Stacks) -> None:
    near, far = stacks
    client, server = await pair(near, far, 7009)
    attribute = anyio.abc.SocketAttribute
    assert client.extra(attribute.family) == socket.AF_INET
    assert client.extra(attribute.remote_address) == (FAR, 7009)
    assert client.extra(attribute.remote_port) == 7009
    local = client.extra(attribute.local_address)
    assert local[0] == NEAR and client.extra(attribute.local_port) == local[1]
    assert server.extra(attribute.remote_address) == local
    assert server.extra(attribute.local_address) == (FAR, 7009)
    with pytest.raises(anyio.TypedAttributeLookupError):
        client.extra(attribute.raw_socket)
    assert client.extra(attribute.raw_socket, None) is None
    assert client.extra(StackAttribute.connection).remote_port == 7009
    await client.aclose()
    await server.aclose()


@with_stacks
async def test_listener_serve_handles_many_clients(stacks: Stacks) -> None:
    near, far = stacks
    listener = await far.create_tcp_listener(local_port=7010)
    assert listener.extra(anyio.abc.SocketAttribute.local_port) == 7010

    async def upper(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.send((await receive_all(stream)).upper())

    async def client(number: int, replies: dict[int, bytes]) -> None:
        async with await near.connect_tcp(FAR, 7010) as stream:
            await stream.send(b"hello %d" % number)
            await stream.send_eof()
            replies[number] = await receive_all(stream)

    replies: dict[int, bytes] = {}
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as server_group:
            server_group.start_soon(listener.serve, upper, server_group)
            async with anyio.create_task_group() as clients:
                for number in range(20):
                    clients.start_soon(client, number, replies)
            server_group.cancel_scope.cancel()
    assert replies == {n: b"HELLO %d" % n for n in range(20)}
    await listener.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await listener.accept()


@with_stacks
async def test_port_in_use(stacks: Stacks) -> None:
    _, far = stacks
    listener = await far.create_tcp_listener(local_port=7011)
    with pytest.raises(OSError) as caught:
        await far.create_tcp_listener(local_port=7011)
    assert caught.value.errno == 98  # EADDRINUSE
    await listener.aclose()


async def test_an_unread_stream_closes_the_peers_window() -> None:
    """Bytes stay in the connection until receive(): the sender blocks, nothing is lost."""
    small = StackConfig(tcp=TcpConfig(send_buffer=16 * 1024, receive_buffer=16 * 1024))
    near_link, far_link = MemoryLink.pair(mtu=1500)
    async with (
        AnyioStack(far_link, address=f"{FAR}/24", seed=2, config=small) as far,
        AnyioStack(near_link, address=f"{NEAR}/24", seed=1, config=small) as near,
    ):
        client, server = await pair(near, far, 7012)
        data = random.Random(5).randbytes(1 << 20)
        sent = 0

        async def writer() -> None:
            nonlocal sent
            for offset in range(0, len(data), 4096):
                await client.send(data[offset : offset + 4096])
                sent = offset + 4096
            await client.send_eof()

        server_connection = server.extra(StackAttribute.connection)
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as group:
                group.start_soon(writer)
                # Wait (bounded) until the receiver holds a full window, then until every
                # task is blocked: the writer stalls with bytes still to send.
                while server_connection.readable_bytes < 16 * 1024:
                    await anyio.sleep(0.005)
                await anyio.wait_all_tasks_blocked()
                stalled_at = sent
                await anyio.sleep(0.05)  # zero-window probes may run; the writer must not
                await anyio.wait_all_tasks_blocked()
                assert sent == stalled_at
                assert server_connection.readable_bytes <= 16 * 1024
                assert stalled_at <= 2 * 16 * 1024  # one receive window + one send buffer
                # The rest waits in the sender (its buffer is bounded) until we read.
                assert client.extra(StackAttribute.connection).send_buffer_used <= 16 * 1024
                received = await receive_all(server)
        assert received == data
        await client.aclose()
        await server.aclose()


async def test_stack_exit_resets_open_connections() -> None:
    near_link, far_link = MemoryLink.pair(mtu=1500)
    async with AnyioStack(far_link, address=f"{FAR}/24", seed=2) as far:
        listener = await far.create_tcp_listener(local_port=7013)
        async with AnyioStack(near_link, address=f"{NEAR}/24", seed=1) as near:
            client = await near.connect_tcp(FAR, 7013)
            with anyio.fail_after(WAIT):
                server = await listener.accept()
            del client  # left open when the stack exits
        with anyio.fail_after(WAIT), pytest.raises(anyio.BrokenResourceError):
            await server.receive()
        assert far.statistics()["driver"]["internal_errors"] == 0


async def test_stack_exit_resets_accepted_connections_too() -> None:
    near_link, far_link = MemoryLink.pair(mtu=1500)
    async with AnyioStack(near_link, address=f"{NEAR}/24", seed=1) as near:
        async with AnyioStack(far_link, address=f"{FAR}/24", seed=2) as far:
            listener = await far.create_tcp_listener(local_port=7014)
            client = await near.connect_tcp(FAR, 7014)
            with anyio.fail_after(WAIT):
                accepted = await listener.accept()
            del accepted  # left open when the serving stack exits
        with anyio.fail_after(WAIT), pytest.raises(anyio.BrokenResourceError):
            await client.receive()
        await client.aclose()


async def test_close_timeout_lingers_until_the_peer_has_everything() -> None:
    """Like SO_LINGER: leaving the stack sends what was written, then FIN, and waits."""
    data = random.Random(9).randbytes(300_000)
    near_link, far_link = MemoryLink.pair(mtu=1500)
    async with AnyioStack(far_link, address=f"{FAR}/24", seed=2) as far:
        listener = await far.create_tcp_listener(local_port=7016)
        received: list[bytes] = []
        async with anyio.create_task_group() as group:

            async def serve() -> None:
                stream = await listener.accept()
                received.append(await receive_all(stream))
                await stream.aclose()

            group.start_soon(serve)
            async with AnyioStack(near_link, address=f"{NEAR}/24", seed=1,
                                  close_timeout=WAIT) as near:  # fmt: skip
                client = await near.connect_tcp(FAR, 7016)
                await client.send(data)  # queued; the stack exits right away
            assert near.statistics()["driver"]["closed_drained"] == 1
            assert near.statistics()["driver"]["closed_reset"] == 0
        assert received == [data]
        await listener.aclose()


class FailingLink:
    """A MemoryLink end whose device "disappears" on demand (receive raises, as a
    deleted TUN does)."""

    def __init__(self, link: MemoryLink) -> None:
        self._link = link
        self.gone = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._link, name)

    def receive_batch(self, limit: int, now: float) -> list[bytes]:
        if self.gone:
            from aionetstack.errors import LinkGoneError

            raise LinkGoneError(77, "File descriptor in bad state")
        return self._link.receive_batch(limit, now)


async def test_a_link_that_fails_fails_everything_not_the_task_group() -> None:
    near_link, far_link = MemoryLink.pair(mtu=1500)
    failing = FailingLink(near_link)
    async with AnyioStack(far_link, address=f"{FAR}/24", seed=2) as far:
        listener = await far.create_tcp_listener(local_port=7015)
        async with AnyioStack(failing, address=f"{NEAR}/24", seed=1) as near:  # type: ignore[arg-type]
            client = await near.connect_tcp(FAR, 7015)
            udp = await near.create_udp_socket(local_port=5302)
            failing.gone = True
            with anyio.fail_after(WAIT):
                with pytest.raises(TimeoutError):
                    await far.ping(NEAR, timeout=0.3)  # wakes near's reader: the link raises
                with pytest.raises(anyio.BrokenResourceError) as caught:
                    await client.receive()
                assert caught.value.__cause__.errno == errno.ENETDOWN  # type: ignore[union-attr]
                with pytest.raises(anyio.BrokenResourceError):
                    await udp.receive()
            with pytest.raises(OSError) as refused:
                await near.connect_tcp(FAR, 7015)
            assert refused.value.errno == errno.ENETDOWN
            assert near.link_error is not None
            assert near.driver.link_errors == 1
        await listener.aclose()


@with_stacks
async def test_udp_sockets_unconnected_and_connected(stacks: Stacks) -> None:
    near, far = stacks
    server = await far.create_udp_socket(local_port=5300)
    assert server.extra(anyio.abc.SocketAttribute.local_port) == 5300
    client = await near.create_connected_udp_socket(FAR, 5300)
    assert client.extra(anyio.abc.SocketAttribute.remote_address) == (FAR, 5300)
    with anyio.fail_after(WAIT):
        for number in range(10):
            await client.send(b"datagram %d" % number)
            data, source = await server.receive()
            assert data == b"datagram %d" % number
            assert source == client.extra(anyio.abc.SocketAttribute.local_address)
            await server.sendto(data.upper(), *source)
            assert await client.receive() == data.upper()
    await server.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await server.receive()
    await client.aclose()


@with_stacks
async def test_connected_udp_reports_port_unreachable(stacks: Stacks) -> None:
    near, _ = stacks
    client = await near.create_connected_udp_socket(FAR, 5301)  # nobody listens there
    await client.send(b"anyone?")
    with anyio.fail_after(WAIT), pytest.raises(anyio.BrokenResourceError) as caught:
        await client.receive()
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    await client.aclose()


@with_stacks
async def test_ping(stacks: Stacks) -> None:
    near, _ = stacks
    rtt = await near.ping(FAR, timeout=WAIT)
    assert 0 < rtt < WAIT
    reply = await near.echo(FAR, size=1000, timeout=WAIT)
    assert reply.source == FAR and reply.size == 1008
    with pytest.raises(TimeoutError):
        await near.ping("198.18.0.77", timeout=0.2)  # no such host on the link
    with pytest.raises(ValueError, match="size"):
        await near.ping(FAR, size=100_000)


@with_stacks
async def test_bad_arguments_say_what_was_wrong(stacks: Stacks) -> None:
    near, _ = stacks
    with pytest.raises(ValueError, match="remote_port"):
        await near.connect_tcp(FAR, 0)
    with pytest.raises(ValueError, match="local_port"):
        await near.create_tcp_listener(local_port=70000)
    with pytest.raises(TypeError, match="link"):
        AnyioStack("not a link", address="198.18.0.9/24")  # type: ignore[arg-type]

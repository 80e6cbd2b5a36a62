"""``Server`` over a memory link: the ``asyncio.Server`` interface."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable

import pytest

from aionetstack import Stack
from aionetstack.aio.server import Server

NEAR = "198.18.0.2"
FAR = "198.18.0.1"
WAIT = 5.0


class Peer(asyncio.Protocol):
    """Echoes what it receives; records its callbacks."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.calls: list[str] = []
        self.received = bytearray()
        self.made: asyncio.Future[asyncio.Transport] = loop.create_future()
        self.lost: asyncio.Future[Exception | None] = loop.create_future()
        self.data_arrived = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.calls.append("connection_made")
        self.made.set_result(transport)

    def data_received(self, data: bytes) -> None:
        self.calls.append("data_received")
        self.received += data
        self.data_arrived.set()

    def eof_received(self) -> bool:
        self.calls.append("eof_received")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("connection_lost")
        self.lost.set_result(exc)


class Accepting:
    def __init__(self) -> None:
        self.protocols: asyncio.Queue[Peer] = asyncio.Queue()

    def __call__(self) -> Peer:
        peer = Peer()
        self.protocols.put_nowait(peer)
        return peer

    async def next(self) -> Peer:
        return await asyncio.wait_for(self.protocols.get(), WAIT)


async def until(condition: Callable[[], bool]) -> None:
    """Wait (polling each millisecond, at most WAIT seconds) until ``condition()`` holds."""
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.001)


async def test_server_basics_and_addresses(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    accepting = Accepting()
    server = await far.create_server(accepting, FAR, 7000)
    assert isinstance(server, asyncio.AbstractServer)
    assert server.is_serving()
    assert server.get_loop() is asyncio.get_running_loop()
    assert server.get_port() == 7000
    assert server.get_addresses() == [(FAR, 7000)]
    (sock,) = server.sockets
    assert sock.getsockname() == (FAR, 7000)
    transport, _ = await near.create_connection(Peer, FAR, 7000)
    accepted = await accepting.next()
    await asyncio.wait_for(accepted.made, WAIT)
    server.close()
    assert not server.is_serving()
    assert server.sockets == ()
    await asyncio.wait_for(server.wait_closed(), WAIT)
    # Accepted connections outlive the server, as with asyncio.
    transport.write(b"still here")
    await asyncio.wait_for(accepted.data_arrived.wait(), WAIT)
    assert accepted.received == b"still here"
    # And the port no longer accepts.
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(near.create_connection(Peer, FAR, 7000), WAIT)


async def test_wildcard_host_and_ephemeral_port(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    server = await far.create_server(Accepting(), None, 0)
    port = server.get_port()
    assert 32768 <= port <= 60999
    assert server.get_addresses() == [("0.0.0.0", port)]
    transport, _ = await asyncio.wait_for(near.create_connection(Peer, FAR, port), WAIT)
    assert transport.get_extra_info("peername") == (FAR, port)
    other = await far.create_server(Accepting(), "", 0)
    assert other.get_port() != port


async def test_address_in_use(stacks: tuple[Stack, Stack]) -> None:
    _, far = stacks
    await far.create_server(Accepting(), FAR, 7001)
    with pytest.raises(OSError) as caught:
        await far.create_server(Accepting(), None, 7001)
    assert caught.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as caught:
        await far.start_server(lambda r, w: None, FAR, 7001)
    assert caught.value.errno == errno.EADDRINUSE


async def test_port_is_free_again_after_close(stacks: tuple[Stack, Stack]) -> None:
    _, far = stacks
    server = await far.create_server(Accepting(), FAR, 7002)
    server.close()
    again = await far.create_server(Accepting(), FAR, 7002)
    assert again.get_port() == 7002


async def test_start_serving_false_queues_in_the_backlog(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    accepting = Accepting()
    server = await far.create_server(accepting, FAR, 7003, start_serving=False)
    assert not server.is_serving()
    # The handshake completes in the stack (the backlog), but no protocol is made yet.
    transport, _ = await asyncio.wait_for(near.create_connection(Peer, FAR, 7003), WAIT)
    transport.write(b"early bytes")
    transport.write_eof()
    (queued,) = [c for c in far.core.tcp.connections if c.local_port == 7003]
    await until(lambda: queued.eof_received)
    assert server.listeners[0].pending == 1
    assert accepting.protocols.empty()
    await server.start_serving()
    assert server.is_serving()
    accepted = await accepting.next()
    assert await asyncio.wait_for(accepted.lost, WAIT) is None
    assert accepted.received == b"early bytes"
    assert accepted.calls == [
        "connection_made", "data_received", "eof_received", "connection_lost"
    ]  # fmt: skip


async def test_reset_while_in_the_backlog_still_reaches_connection_lost(
    stacks: tuple[Stack, Stack],
) -> None:
    near, far = stacks
    accepting = Accepting()
    server = await far.create_server(accepting, FAR, 7004, start_serving=False)
    transport, _ = await asyncio.wait_for(near.create_connection(Peer, FAR, 7004), WAIT)
    transport.abort()
    await until(lambda: not [c for c in far.core.tcp.connections if c.local_port == 7004])
    assert server.listeners[0].pending == 1
    await server.start_serving()
    accepted = await accepting.next()
    assert isinstance(await asyncio.wait_for(accepted.lost, WAIT), ConnectionResetError)
    assert accepted.calls == ["connection_made", "connection_lost"]


async def test_serve_forever_is_cancellable_and_closes(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    server = await far.create_server(Accepting(), FAR, 7005, start_serving=False)
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0)
    assert server.is_serving()
    with pytest.raises(RuntimeError, match="serve_forever"):
        await server.serve_forever()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert not server.is_serving()
    with pytest.raises(RuntimeError, match="closed"):
        await server.start_serving()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(near.create_connection(Peer, FAR, 7005), WAIT)


async def test_close_ends_serve_forever_and_wakes_wait_closed(stacks: tuple[Stack, Stack]) -> None:
    _, far = stacks
    server = await far.create_server(Accepting(), FAR, 7006)
    serving = asyncio.create_task(server.serve_forever())
    waiting = asyncio.create_task(server.wait_closed())
    await asyncio.sleep(0)
    assert not waiting.done()
    server.close()
    await asyncio.wait_for(waiting, WAIT)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(serving, WAIT)
    server.close()  # idempotent


async def test_async_with_closes(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    async with await far.create_server(Accepting(), FAR, 7007) as server:
        assert isinstance(server, Server)
        assert server.is_serving()
    assert not server.is_serving()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(near.create_connection(Peer, FAR, 7007), WAIT)


async def test_several_hosts_share_one_port(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    server = await far.create_server(Accepting(), [FAR, "198.18.0.1"][:1], 0)
    assert server.get_addresses() == [(FAR, server.get_port())]
    await asyncio.wait_for(near.create_connection(Peer, FAR, server.get_port()), WAIT)


async def test_close_and_abort_clients(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    accepting = Accepting()
    server = await far.create_server(accepting, FAR, 7008)
    clients = []
    for _ in range(2):
        _, client = await near.create_connection(Peer, FAR, 7008)
        clients.append(client)
        await asyncio.wait_for((await accepting.next()).made, WAIT)
    server.close_clients()
    for client in clients:
        assert isinstance(client, Peer)
        assert await asyncio.wait_for(client.lost, WAIT) is None
        assert client.calls[-2:] == ["eof_received", "connection_lost"]
    _, third = await near.create_connection(Peer, FAR, 7008)
    await asyncio.wait_for((await accepting.next()).made, WAIT)
    server.abort_clients()
    assert isinstance(third, Peer)
    assert isinstance(await asyncio.wait_for(third.lost, WAIT), ConnectionResetError)


async def test_many_concurrent_connections(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read())
        writer.close()

    server = await far.start_server(echo, FAR, 7009, backlog=200)

    async def one(index: int) -> bytes:
        reader, writer = await near.open_connection(FAR, 7009)
        writer.write(b"%d" % index)
        writer.write_eof()
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        return data

    results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(100))), WAIT)
    assert results == [b"%d" % i for i in range(100)]
    server.close()


async def test_a_failing_protocol_factory_resets_only_that_connection(
    stacks: tuple[Stack, Stack],
) -> None:
    near, far = stacks
    loop = asyncio.get_running_loop()
    contexts: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: contexts.append(context))
    calls = 0

    def sometimes_failing() -> Peer:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("factory bug")
        return Peer()

    try:
        server = await far.create_server(sometimes_failing, FAR, 7010)
        _, victim = await near.create_connection(Peer, FAR, 7010)
        assert isinstance(victim, Peer)
        assert isinstance(await asyncio.wait_for(victim.lost, WAIT), ConnectionResetError)
        (context,) = contexts
        assert isinstance(context["exception"], RuntimeError)
        assert context["server"] is server
        transport, _ = await near.create_connection(Peer, FAR, 7010)
        assert not transport.is_closing()
        assert server.is_serving()
    finally:
        loop.set_exception_handler(previous)

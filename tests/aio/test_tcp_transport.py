"""TCP transports over a memory link: the asyncio Transport/Protocol contract.

Every protocol here records its callbacks; the grammar asyncio promises is
``connection_made (data_received | get_buffer/buffer_updated)* eof_received?
connection_lost`` with ``connection_lost`` exactly once, on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aionetstack import MemoryLink, Stack, StackConfig, TcpConfig
from aionetstack.core.tcp.connection import TcpState

NEAR = "198.18.0.2"
FAR = "198.18.0.1"
PORT = 8080
WAIT = 5.0  # seconds: an upper bound for anything on an unimpaired memory link

#: Small buffers make back-pressure reachable with little data.
SMALL = StackConfig(tcp=TcpConfig(send_buffer=16 * 1024, receive_buffer=16 * 1024))


@contextlib.asynccontextmanager
async def stack_pair(config: StackConfig | None = None) -> AsyncIterator[tuple[Stack, Stack]]:
    """``(near, far)`` stacks on one memory link, both with ``config``."""
    near_link, far_link = MemoryLink.pair(mtu=1500)
    async with (
        Stack(far_link, address=f"{FAR}/24", seed=2, config=config) as far,
        Stack(near_link, address=f"{NEAR}/24", seed=1, config=config) as near,
    ):
        yield near, far


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-looking bytes (so reordering would show)."""
    return bytes((i * 7 + seed + (i >> 8)) & 0xFF for i in range(size))


class Recorder(asyncio.Protocol):
    """Records every callback; futures for the interesting moments."""

    def __init__(self, *, keep_open_on_eof: bool = False, pause_on_connect: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self.calls: list[str] = []
        self.data = bytearray()
        self.keep_open_on_eof = keep_open_on_eof
        self.pause_on_connect = pause_on_connect
        self.transport: asyncio.Transport | None = None
        self.made: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[Exception | None] = loop.create_future()
        self.paused: asyncio.Future[int] = loop.create_future()
        self.resumed: asyncio.Future[int] = loop.create_future()
        self.data_waiters: list[tuple[int, asyncio.Future[None]]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.calls.append("connection_made")
        self.transport = transport
        if self.pause_on_connect:
            transport.pause_reading()
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        assert data, "data_received must never get empty bytes"
        self.calls.append("data_received")
        self.data += data
        for count, waiter in self.data_waiters:
            if len(self.data) >= count and not waiter.done():
                waiter.set_result(None)

    def eof_received(self) -> bool:
        self.calls.append("eof_received")
        self.eof.set_result(None)
        return self.keep_open_on_eof

    def pause_writing(self) -> None:
        self.calls.append("pause_writing")
        assert self.transport is not None
        if not self.paused.done():
            self.paused.set_result(self.transport.get_write_buffer_size())

    def resume_writing(self) -> None:
        self.calls.append("resume_writing")
        assert self.transport is not None
        if not self.resumed.done():
            self.resumed.set_result(self.transport.get_write_buffer_size())

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("connection_lost")
        self.lost.set_result(exc)

    async def received(self, count: int) -> bytes:
        """Wait until ``count`` bytes arrived."""
        if len(self.data) < count:
            waiter = asyncio.get_running_loop().create_future()
            self.data_waiters.append((count, waiter))
            await asyncio.wait_for(waiter, WAIT)
        return bytes(self.data)

    def stream_calls(self) -> list[str]:
        """The reading/lifecycle callbacks, without the write flow-control ones."""
        return [c for c in self.calls if c not in ("pause_writing", "resume_writing")]


def assert_grammar(calls: list[str], *, eof: bool | None = None) -> None:
    """made, data*, eof?, lost (exactly once); ``eof`` says whether EOF must be there."""
    calls = [c for c in calls if c not in ("pause_writing", "resume_writing")]
    assert calls[0] == "connection_made", calls
    assert calls.count("connection_made") == 1, calls
    assert calls[-1] == "connection_lost", calls
    assert calls.count("connection_lost") == 1, calls
    assert calls.count("eof_received") <= 1, calls
    if "eof_received" in calls:
        assert calls.index("eof_received") == len(calls) - 2, f"data after EOF: {calls}"
    middle = set(calls[1:-1]) - {"eof_received"}
    assert middle <= {"data_received", "get_buffer", "buffer_updated"}, calls
    if eof is not None:
        assert ("eof_received" in calls) is eof, calls


class Listening:
    """A server on ``far`` that records every accepted protocol."""

    def __init__(self, make: Callable[[], Recorder] = Recorder) -> None:
        self.make = make
        self.accepted: asyncio.Queue[Recorder] = asyncio.Queue()

    def __call__(self) -> Recorder:
        protocol = self.make()
        self.accepted.put_nowait(protocol)
        return protocol

    async def next(self) -> Recorder:
        protocol = await asyncio.wait_for(self.accepted.get(), WAIT)
        await asyncio.wait_for(protocol.made, WAIT)
        return protocol


async def connect(
    near: Stack, far: Stack, client: Recorder | None = None, server: Listening | None = None
) -> tuple[Recorder, Recorder, Listening]:
    """Listen on far, connect from near; return (client, server) protocols once both are made."""
    listening = server or Listening()
    await far.create_server(listening, FAR, PORT)
    client_protocol = client or Recorder()
    await asyncio.wait_for(near.create_connection(lambda: client_protocol, FAR, PORT), WAIT)
    server_protocol = await listening.next()
    return client_protocol, server_protocol, listening


async def until(condition: Callable[[], bool]) -> None:
    """Wait (polling each millisecond, at most WAIT seconds) until ``condition()`` holds."""
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.001)


def transport_of(protocol: Recorder) -> asyncio.Transport:
    assert protocol.transport is not None
    return protocol.transport


# -- callback grammar -------------------------------------------------------------------


@pytest.mark.parametrize("closer", ["client", "server"])
async def test_clean_close_by_either_side(closer: str) -> None:
    async with stack_pair() as (near, far):
        client, server, _ = await connect(near, far)
        payload = pattern(100_000)
        writer, reader = (client, server) if closer == "client" else (server, client)
        transport_of(writer).write(payload)
        transport_of(writer).close()
        assert transport_of(writer).is_closing()
        assert await asyncio.wait_for(writer.lost, WAIT) is None
        assert await asyncio.wait_for(reader.lost, WAIT) is None
        assert bytes(reader.data) == payload
        assert_grammar(writer.calls, eof=False)
        assert_grammar(reader.calls, eof=True)


@pytest.mark.parametrize("aborter", ["client", "server"])
async def test_abort_resets_the_peer(aborter: str) -> None:
    async with stack_pair() as (near, far):
        client, server, _ = await connect(near, far)
        transport_of(client).write(b"hello")
        await server.received(5)
        local, peer = (client, server) if aborter == "client" else (server, client)
        transport_of(local).abort()
        assert transport_of(local).is_closing()
        assert await asyncio.wait_for(local.lost, WAIT) is None
        error = await asyncio.wait_for(peer.lost, WAIT)
        assert isinstance(error, ConnectionResetError)
        assert transport_of(peer).is_closing()
        assert_grammar(local.calls, eof=False)
        assert_grammar(peer.calls, eof=False)


async def test_abort_is_idempotent_and_close_after_abort_is_harmless() -> None:
    async with stack_pair() as (near, far):
        client, server, _ = await connect(near, far)
        transport = transport_of(client)
        transport.abort()
        transport.abort()
        transport.close()
        assert await asyncio.wait_for(client.lost, WAIT) is None
        await asyncio.wait_for(server.lost, WAIT)
        assert client.calls == ["connection_made", "connection_lost"]


@pytest.mark.parametrize("keep_open", [True, False])
async def test_write_eof_and_eof_received_return_value(keep_open: bool) -> None:
    async with stack_pair() as (near, far):
        listening = Listening(lambda: Recorder(keep_open_on_eof=keep_open))
        client, server, _ = await connect(near, far, Recorder(keep_open_on_eof=True), listening)
        transport = transport_of(client)
        assert transport.can_write_eof()
        transport.write(b"request")
        transport.write_eof()
        with pytest.raises(RuntimeError, match="write_eof"):
            transport.write(b"more")
        await asyncio.wait_for(server.eof, WAIT)
        assert server.data == b"request"
        if keep_open:
            # The server's half is still open: it answers after the client's EOF.
            assert not transport_of(server).is_closing()
            transport_of(server).write(b"response")
            transport_of(server).close()
            await asyncio.wait_for(client.eof, WAIT)
            assert client.data == b"response"
        else:
            # eof_received() returning False closes the server's transport.
            assert transport_of(server).is_closing()
            await asyncio.wait_for(client.eof, WAIT)
            assert client.data == b""
        assert await asyncio.wait_for(server.lost, WAIT) is None
        assert await asyncio.wait_for(client.lost, WAIT) is None
        assert_grammar(client.calls, eof=True)
        assert_grammar(server.calls, eof=True)


async def test_half_close_both_ways_then_close() -> None:
    async with stack_pair() as (near, far):
        listening = Listening(lambda: Recorder(keep_open_on_eof=True))
        client, server, _ = await connect(near, far, Recorder(keep_open_on_eof=True), listening)
        transport_of(client).write_eof()
        await asyncio.wait_for(server.eof, WAIT)
        transport_of(server).write(b"late reply")
        transport_of(server).write_eof()
        await asyncio.wait_for(client.eof, WAIT)
        assert client.data == b"late reply"
        transport_of(client).close()
        transport_of(server).close()
        assert await asyncio.wait_for(client.lost, WAIT) is None
        assert await asyncio.wait_for(server.lost, WAIT) is None
        assert_grammar(client.calls, eof=True)
        assert_grammar(server.calls, eof=True)


async def test_writelines_sends_in_order() -> None:
    async with stack_pair() as (near, far):
        client, server, _ = await connect(near, far)
        parts: list[bytes | bytearray | memoryview] = [
            b"alpha ",
            bytearray(b"beta "),
            memoryview(b"gamma"),
            b"",
        ]
        transport_of(client).writelines(parts)
        assert await server.received(16) == b"alpha beta gamma"


async def test_write_rejects_non_bytes() -> None:
    async with stack_pair() as (near, far):
        client, _, _ = await connect(near, far)
        with pytest.raises(TypeError, match="bytes-like"):
            transport_of(client).write("text")  # type: ignore[arg-type]


# -- close vs abort with buffered data ------------------------------------------------------


async def test_close_delivers_everything_buffered_then_finishes_as_orphan() -> None:
    async with stack_pair(SMALL) as (near, far):
        client, server, _ = await connect(near, far)
        payload = pattern(600_000, seed=3)
        transport = transport_of(client)
        transport.write(payload)
        assert transport.get_write_buffer_size() > 0  # more than the TCP send buffer took
        transport.close()
        assert client.calls[-1] != "connection_lost"  # not before the buffer drained
        assert await asyncio.wait_for(server.lost, WAIT) is None
        assert server.data == payload
        assert await asyncio.wait_for(client.lost, WAIT) is None
        assert_grammar(server.calls, eof=True)
        # The closing side's connection lives on inside the stack (FIN handshake, TIME-WAIT).
        states = {c.state for c in near.core.tcp.connections}
        assert states & {TcpState.TIME_WAIT, TcpState.FIN_WAIT_2, TcpState.FIN_WAIT_1}


async def test_abort_drops_buffered_data() -> None:
    async with stack_pair(SMALL) as (near, far):
        listening = Listening(lambda: Recorder(pause_on_connect=True))
        client, server, _ = await connect(near, far, server=listening)
        transport = transport_of(client)
        transport.write(pattern(300_000))
        assert transport.get_write_buffer_size() > 0
        transport.abort()
        assert transport.get_write_buffer_size() == 0
        assert await asyncio.wait_for(client.lost, WAIT) is None
        assert isinstance(await asyncio.wait_for(server.lost, WAIT), ConnectionResetError)
        assert len(server.data) < 300_000


# -- write flow control -------------------------------------------------------------------


async def test_write_buffer_limits_validation_and_defaults() -> None:
    async with stack_pair() as (near, far):
        client, _, _ = await connect(near, far)
        transport = transport_of(client)
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        transport.set_write_buffer_limits(high=1000)
        assert transport.get_write_buffer_limits() == (250, 1000)
        transport.set_write_buffer_limits(low=100)
        assert transport.get_write_buffer_limits() == (100, 400)
        transport.set_write_buffer_limits(high=10, low=10)
        assert transport.get_write_buffer_limits() == (10, 10)
        with pytest.raises(ValueError, match="high"):
            transport.set_write_buffer_limits(high=10, low=20)
        with pytest.raises(ValueError, match="low"):
            transport.set_write_buffer_limits(high=10, low=-1)
        assert transport.get_write_buffer_limits() == (10, 10)
        assert transport.get_write_buffer_size() == 0


async def test_pause_writing_strictly_above_high_resume_at_or_below_low() -> None:
    async with stack_pair(SMALL) as (near, far):
        listening = Listening(lambda: Recorder(pause_on_connect=True))
        client, server, _ = await connect(near, far, server=listening)
        transport = transport_of(client)
        transport.set_write_buffer_limits(high=10**9)  # never pause while we fill the pipe
        payload = bytearray(pattern(100_000, seed=5))
        transport.write(bytes(payload))
        size = transport.get_write_buffer_size()
        assert size > 0
        transport.set_write_buffer_limits(high=size + 10, low=size // 2)
        transport.write(b"x" * 10)
        payload += b"x" * 10
        assert transport.get_write_buffer_size() == size + 10
        assert "pause_writing" not in client.calls  # exactly at the high-water mark
        transport.write(b"y")
        payload += b"y"
        assert client.calls.count("pause_writing") == 1  # strictly above it
        assert await client.paused == size + 11
        transport.write(b"z")  # still paused: no second call
        payload += b"z"
        assert client.calls.count("pause_writing") == 1
        transport_of(server).resume_reading()
        assert await asyncio.wait_for(client.resumed, WAIT) <= size // 2
        assert await server.received(len(payload)) == payload
        assert client.calls.count("resume_writing") == 1


async def test_set_write_buffer_limits_can_pause_at_once() -> None:
    async with stack_pair(SMALL) as (near, far):
        listening = Listening(lambda: Recorder(pause_on_connect=True))
        client, _, _ = await connect(near, far, server=listening)
        transport = transport_of(client)
        transport.write(pattern(50_000))
        assert 0 < transport.get_write_buffer_size() <= 64 * 1024
        assert "pause_writing" not in client.calls
        transport.set_write_buffer_limits(high=0)
        assert client.calls.count("pause_writing") == 1


# -- read flow control --------------------------------------------------------------------


async def test_pause_reading_closes_the_window_and_resume_delivers_in_order() -> None:
    async with stack_pair(SMALL) as (near, far):
        listening = Listening(lambda: Recorder(pause_on_connect=True))
        client, server, _ = await connect(near, far, server=listening)
        server_transport = transport_of(server)
        assert not server_transport.is_reading()
        payload = pattern(300_000, seed=9)
        transport_of(client).write(payload)
        transport_of(client).write_eof()
        # Nothing is delivered: the peer's bytes pile up in its own buffers.
        await asyncio.wait_for(client.paused, WAIT)
        assert server.data == b""
        assert transport_of(client).get_write_buffer_size() > 64 * 1024
        (connection,) = [c for c in far.core.tcp.connections if c.remote_port != 0]
        assert connection.readable_bytes <= 16 * 1024  # the window bounded what was sent
        unacknowledged = [c.send_buffer_used for c in near.core.tcp.connections]
        assert unacknowledged and unacknowledged[0] > 0
        server_transport.resume_reading()
        assert server_transport.is_reading()
        await asyncio.wait_for(server.eof, WAIT)
        assert server.data == payload
        assert "resume_writing" in client.calls


async def test_pause_and_resume_reading_are_idempotent() -> None:
    async with stack_pair() as (near, far):
        client, server, _ = await connect(near, far)
        transport = transport_of(server)
        transport.pause_reading()
        transport.pause_reading()
        transport_of(client).write(b"abc")
        transport_of(client).close()
        await asyncio.wait_for(client.lost, WAIT)
        transport.resume_reading()
        transport.resume_reading()
        assert await asyncio.wait_for(server.lost, WAIT) is None
        assert server.data == b"abc"
        assert_grammar(server.calls, eof=True)


async def test_clean_end_while_paused_keeps_the_last_bytes() -> None:
    """Both FINs exchanged while reading is paused: data and EOF still arrive, then lost."""
    async with stack_pair() as (near, far):
        listening = Listening(lambda: Recorder(pause_on_connect=True))
        client, server, _ = await connect(
            near, far, Recorder(keep_open_on_eof=True), server=listening
        )
        transport_of(server).write_eof()
        await asyncio.wait_for(client.eof, WAIT)
        transport_of(client).write(b"last words")
        transport_of(client).close()
        assert await asyncio.wait_for(client.lost, WAIT) is None
        # The server's connection is over inside the stack, its bytes still undelivered.
        await until(lambda: {c.state for c in far.core.tcp.connections} == {TcpState.TIME_WAIT})
        assert server.calls == ["connection_made"]
        transport_of(server).resume_reading()
        assert await asyncio.wait_for(server.lost, WAIT) is None
        assert server.data == b"last words"
        assert_grammar(server.calls, eof=True)


# -- extra info, protocol switching, buffered protocols -----------------------------------


async def test_extra_info_shapes() -> None:
    async with stack_pair() as (near, far):
        client, server, _ = await connect(near, far)
        transport = transport_of(client)
        host, port = transport.get_extra_info("sockname")
        assert host == NEAR and isinstance(port, int) and 32768 <= port <= 60999
        assert transport.get_extra_info("peername") == (FAR, PORT)
        assert transport_of(server).get_extra_info("sockname") == (FAR, PORT)
        assert transport_of(server).get_extra_info("peername") == (NEAR, port)
        sock = transport.get_extra_info("socket")
        assert sock.getsockname() == (NEAR, port)
        assert sock.getpeername() == (FAR, PORT)
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        assert transport.get_extra_info("no such thing") is None
        assert transport.get_extra_info("no such thing", "dflt") == "dflt"
        # Small writes still go out at once with Nagle off.
        transport.write(b"a")
        transport.write(b"b")
        assert await server.received(2) == b"ab"


async def test_keepalive_turned_on_by_setsockopt_probes_an_idle_connection() -> None:
    """SO_KEEPALIVE set on an idle stack: the option asks for a pass, which arms the
    loop's timer for the first probe (without it nothing would wake the stack)."""
    config = StackConfig(tcp=TcpConfig(keepalive_idle=0.05, keepalive_interval=0.05))
    async with stack_pair(config) as (near, far):
        client, _, _ = await connect(near, far)
        await until(lambda: near.statistics()["tcp"].get("segments_out", 0) >= 2)
        [connection] = near.core.tcp.connections
        sock = transport_of(client).get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        probe_due = connection.next_deadline()
        assert probe_due is not None
        await asyncio.sleep(0)  # the pass the option asked for
        armed = near._driver._timer_deadline  # type: ignore[union-attr]
        assert armed is not None and armed <= probe_due  # the loop wakes for the probe
        await until(lambda: near.statistics()["tcp"].get("keepalive_probes_sent", 0) >= 1)


async def test_set_protocol_mid_stream() -> None:
    async with stack_pair() as (near, far):
        client, first, _ = await connect(near, far)
        transport_of(client).write(b"one")
        await first.received(3)
        transport = transport_of(first)
        second = Recorder()
        transport.set_protocol(second)
        second.transport = transport
        assert transport.get_protocol() is second
        transport_of(client).write(b"two")
        transport_of(client).close()
        assert await asyncio.wait_for(second.lost, WAIT) is None
        assert first.data == b"one" and second.data == b"two"
        assert first.calls == ["connection_made", "data_received"]
        assert second.calls == ["data_received", "eof_received", "connection_lost"]


class BufferedRecorder(asyncio.BufferedProtocol):
    def __init__(self, size: int) -> None:
        self.buffer = bytearray(size)
        self.data = bytearray()
        self.calls: list[str] = []
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append("connection_made")

    def get_buffer(self, sizehint: int) -> memoryview:
        self.calls.append("get_buffer")
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes: int) -> None:
        assert 0 < nbytes <= len(self.buffer)
        self.calls.append("buffer_updated")
        self.data += self.buffer[:nbytes]

    def eof_received(self) -> bool:
        self.calls.append("eof_received")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("connection_lost")
        self.lost.set_result(exc)


@pytest.mark.parametrize("size", [7, 65536])
async def test_buffered_protocol(size: int) -> None:
    async with stack_pair() as (near, far):
        protocols: list[BufferedRecorder] = []

        def factory() -> BufferedRecorder:
            protocols.append(BufferedRecorder(size))
            return protocols[-1]

        await far.create_server(factory, FAR, PORT)
        client = Recorder()
        await near.create_connection(lambda: client, FAR, PORT)
        payload = pattern(50_000, seed=11)
        transport_of(client).write(payload)
        transport_of(client).close()
        await asyncio.wait_for(client.lost, WAIT)
        await until(lambda: bool(protocols))
        (server,) = protocols
        assert await asyncio.wait_for(server.lost, WAIT) is None
        assert server.data == payload
        assert_grammar(server.calls, eof=True)
        pairs = server.calls[1:-2]
        assert pairs == ["get_buffer", "buffer_updated"] * (len(pairs) // 2)
        if size == 7:
            assert len(pairs) // 2 >= 50_000 // 7


# -- errors ---------------------------------------------------------------------------------


async def test_connection_refused_on_a_closed_port() -> None:
    async with stack_pair() as (near, _):
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(near.create_connection(Recorder, FAR, 9), WAIT)


async def test_syn_retries_exhausted_raise_timeout_error() -> None:
    config = StackConfig(tcp=TcpConfig(syn_retries=2, initial_rto=0.02, min_rto=0.02))
    near_link, _silent_peer = MemoryLink.pair(mtu=1500)  # nothing runs on the far side
    async with Stack(near_link, address=f"{NEAR}/24", seed=1, config=config) as near:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(near.create_connection(Recorder, FAR, PORT), WAIT)
        # 0.02 + 0.04 + 0.08 s of backoff: SYN and two retries, nothing more.
        assert 0.1 <= loop.time() - started < 2.0
        assert near.core.tcp.connections == []
    _silent_peer.close()


async def test_cancelled_connect_leaves_nothing_behind() -> None:
    near_link, _silent_peer = MemoryLink.pair(mtu=1500)
    async with Stack(near_link, address=f"{NEAR}/24", seed=1) as near:
        task = asyncio.create_task(near.create_connection(Recorder, FAR, PORT))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert near.core.tcp.connections == []
    _silent_peer.close()


async def test_writes_after_peer_reset_are_dropped_then_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with stack_pair() as (near, far):
        client, server, _ = await connect(near, far)
        transport_of(server).abort()
        assert isinstance(await asyncio.wait_for(client.lost, WAIT), ConnectionResetError)
        transport = transport_of(client)
        assert transport.is_closing()
        with caplog.at_level(logging.WARNING, logger="aionetstack"):
            for _ in range(4):
                transport.write(b"into the void")
            assert not caplog.records  # asyncio stays quiet for the first few
            transport.write(b"into the void")
        assert "socket.send() raised exception." in caplog.text
        assert transport.get_write_buffer_size() == 0


async def test_writing_to_a_peer_that_closed_gets_reset() -> None:
    """As with a kernel socket: data sent to a closed peer is answered by RST."""
    async with stack_pair() as (near, far):
        client, server, _ = await connect(near, far, Recorder(keep_open_on_eof=True))
        transport_of(server).close()
        await asyncio.wait_for(client.eof, WAIT)
        transport_of(client).write(b"anyone there?")
        assert isinstance(await asyncio.wait_for(client.lost, WAIT), ConnectionResetError)
        assert_grammar(client.calls, eof=True)


class Exploding(Recorder):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if b"boom" in data:
            raise ZeroDivisionError("protocol bug")


async def test_callback_exception_goes_to_the_loop_and_aborts_only_that_connection() -> None:
    loop = asyncio.get_running_loop()
    contexts: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: contexts.append(context))
    try:
        async with stack_pair() as (near, far):
            listening = Listening(Exploding)
            await far.create_server(listening, FAR, PORT)
            healthy, victim = Recorder(), Recorder()
            await near.create_connection(lambda: healthy, FAR, PORT)
            healthy_server = await listening.next()
            await near.create_connection(lambda: victim, FAR, PORT)
            victim_server = await listening.next()
            transport_of(victim).write(b"boom")
            error = await asyncio.wait_for(victim_server.lost, WAIT)
            assert isinstance(error, ZeroDivisionError)
            assert isinstance(await asyncio.wait_for(victim.lost, WAIT), ConnectionResetError)
            (context,) = contexts
            assert context["exception"] is error
            assert context["protocol"] is victim_server
            assert "data_received" in context["message"]
            # The other connection is untouched.
            transport_of(healthy).write(b"still fine")
            assert await healthy_server.received(10) == b"still fine"
            assert not transport_of(healthy).is_closing()
            assert_grammar(victim_server.calls, eof=False)
    finally:
        loop.set_exception_handler(previous)


async def test_transports_turn_nagle_off_as_asyncio_does(stacks: tuple[Stack, Stack]) -> None:
    """asyncio sets TCP_NODELAY on every TCP transport; code written for asyncio expects it."""
    near, far = stacks
    await far.start_server(lambda r, w: None, None, 8123)
    _, writer = await near.open_connection(FAR, 8123)
    sock = writer.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    writer.close()


async def test_closing_a_stack_resets_its_open_connections() -> None:
    """As a process exit does: the peer learns at once, instead of waiting for a timeout."""
    a, b = MemoryLink.pair()
    async with Stack(b, address=f"{FAR}/24", seed=2) as far:
        accepted: asyncio.Queue[asyncio.StreamReader] = asyncio.Queue()

        async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.put_nowait(reader)

        await far.start_server(keep, None, 8124)
        near = Stack(a, address="198.18.0.2/24", seed=1)
        async with near:
            _, writer = await near.open_connection(FAR, 8124)  # held: no FIN from GC
            reader = await asyncio.wait_for(accepted.get(), 1)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(10), 1)
        assert writer.is_closing()

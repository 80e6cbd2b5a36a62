"""trio's own stream conformance suite on the stack's streams (trio backend).

``trio.testing.check_half_closeable_stream`` (which runs the two-way and
one-way checks too, and with a clogged maker the ``wait_send_all_might_not_block``
checks) on:

* ``trio.SocketStream`` over :class:`~aionetstack.anyio.trio_socket.StackTrioSocket`
  (made by unmodified ``trio.open_tcp_stream`` / ``trio.open_tcp_listeners``
  under ``as_trio_network()``);
* the anyio face :class:`~aionetstack.anyio.StackSocketStream`, seen through a
  thin adapter that maps anyio's exceptions to trio's.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from aionetstack import StackConfig, TcpConfig
from aionetstack.anyio import AnyioStack, StackAttribute, StackSocketStream

from .conftest import FAR, open_stacks

pytestmark = pytest.mark.anyio

#: Small buffers, so that a "clogged" stream (send_all would block) is quick to make.
SMALL = StackConfig(tcp=TcpConfig(send_buffer=16 * 1024, receive_buffer=16 * 1024))
StreamPair = tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def socket_stream_pair(near: AnyioStack, far: AnyioStack) -> tuple[
    trio.SocketStream, trio.SocketStream
]:  # fmt: skip
    with far.as_trio_network():
        listeners = await trio.open_tcp_listeners(0, host=FAR)
    port = listeners[0].socket.getsockname()[1]
    with near.as_trio_network():
        client = await trio.open_tcp_stream(FAR, port)
    server = await listeners[0].accept()
    await listeners[0].aclose()
    return client, server


async def clog(pairs: list[tuple[trio.abc.SendStream, Any]]) -> None:
    """Fill send buffers and peer windows until no ``send_all`` could go on (quiescent)."""
    for _ in range(1000):
        progressed = False
        for stream, connection in pairs:
            if free := connection.send_buffer_free:
                await stream.send_all(b"x" * free)
                progressed = True
        await trio.testing.wait_all_tasks_blocked()
        if not progressed and not any(c.send_buffer_free for _, c in pairs):
            return
    raise AssertionError("the streams never clogged")


def makers(
    pair: Callable[[], Awaitable[StreamPair]], connection_of: Callable[[object], object]
) -> tuple[Callable[[], Awaitable[StreamPair]], Callable[[], Awaitable[StreamPair]]]:
    async def clogged() -> StreamPair:
        """Both directions clogged (check_two_way_stream also uses it flipped)."""
        one, other = await pair()
        await clog([(one, connection_of(one)), (other, connection_of(other))])
        return one, other

    return pair, clogged


async def test_trio_socket_stream_passes_trios_suite() -> None:
    async with open_stacks(SMALL) as (near, far):

        async def pair() -> StreamPair:
            return await socket_stream_pair(near, far)

        def connection_of(stream: object) -> object:
            assert isinstance(stream, trio.SocketStream)
            return stream.socket._endpoint.connection  # type: ignore[attr-defined]

        with anyio.fail_after(60):
            await trio.testing.check_half_closeable_stream(*makers(pair, connection_of))


class AnyioAsTrio(trio.abc.HalfCloseableStream):
    """An anyio byte stream seen as a trio ``HalfCloseableStream`` (exceptions mapped)."""

    def __init__(self, stream: StackSocketStream) -> None:
        self.stream = stream
        self._sending = False

    @contextmanager
    def _send_guard(self) -> Iterator[None]:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            yield
        finally:
            self._sending = False

    @staticmethod
    @contextmanager
    def _translate() -> Iterator[None]:
        try:
            yield
        except anyio.ClosedResourceError as error:
            raise trio.ClosedResourceError(str(error)) from error
        except anyio.BrokenResourceError as error:
            raise trio.BrokenResourceError(str(error)) from error
        except anyio.BusyResourceError as error:
            raise trio.BusyResourceError(str(error)) from error
        except OSError as error:  # from wait_writable(): EBADF once closed
            if error.errno == errno.EBADF:
                raise trio.ClosedResourceError(str(error)) from error
            raise trio.BrokenResourceError(str(error)) from error

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_guard(), self._translate():
            await self.stream.send(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_guard(), self._translate():
            connection = self.stream._endpoint
            if connection.closed:
                raise anyio.ClosedResourceError
            await connection.wait_writable()

    async def send_eof(self) -> None:
        with self._send_guard(), self._translate():
            await self.stream.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        with self._translate():
            try:
                return await self.stream.receive(65536 if max_bytes is None else max_bytes)
            except anyio.EndOfStream:
                return b""

    async def aclose(self) -> None:
        await self.stream.aclose()


async def test_anyio_stream_passes_trios_suite() -> None:
    async with open_stacks(SMALL) as (near, far):

        async def pair() -> StreamPair:
            listener = await far.create_tcp_listener(local_port=0)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            client = await near.connect_tcp(FAR, port)
            server = await listener.accept()
            await listener.aclose()
            assert isinstance(client, StackSocketStream)
            return AnyioAsTrio(client), AnyioAsTrio(server)

        def connection_of(stream: object) -> object:
            assert isinstance(stream, AnyioAsTrio)
            return stream.stream.extra(StackAttribute.connection)

        with anyio.fail_after(60):
            await trio.testing.check_half_closeable_stream(*makers(pair, connection_of))

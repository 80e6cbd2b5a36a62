"""The anyio faces and unmodified trio code against the Linux kernel over a real TUN.

Each test runs in a network namespace of its own (the ``netns`` fixture, entered
by the test's thread before anyio's runner starts), with the kernel at
198.18.0.1 and the stack at 198.18.0.2. Kernel-side peers are blocking-socket
threads started by the test (so they live in its namespace), subprocesses
(``tests/tun/kernel_peer.py``, ``python -m http.server``) and curl. Every
blocking call is bounded by a socket timeout and every await by ``fail_after``.
"""

from __future__ import annotations

import hashlib
import random
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from aionetstack import TunLink
from aionetstack.anyio import AnyioStack
from aionetstack.testing.netns import Namespace

pytestmark = [pytest.mark.anyio, pytest.mark.tun]

KERNEL = "198.18.0.1"
STACK = "198.18.0.2"
KERNEL6 = "2001:2::1"
STACK6 = "2001:2::2"
PEER_SCRIPT = Path(__file__).resolve().parent.parent / "tun" / "kernel_peer.py"
WAIT = 30.0
FIVE_MB = 5 * 1024 * 1024


@pytest.fixture
def tun(netns: Namespace) -> Namespace:
    """The test's own namespace (the TUN is made inside the test, on its loop)."""
    return netns


@asynccontextmanager
async def tun_stack() -> AsyncIterator[AnyioStack]:
    link = TunLink("aionsa0", kernel_address=f"{KERNEL}/24")
    async with AnyioStack(link, address=f"{STACK}/24", seed=3) as stack:
        yield stack


# -- kernel-side peers: blocking sockets in threads -----------------------------------


@contextmanager
def kernel_thread(target: Callable[..., None], *args: Any) -> Iterator[dict[str, Any]]:
    """Run ``target(result, *args)`` in a thread (it inherits the namespace); join it."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            target(result, *args)
        except BaseException as error:  # reported by the test, not lost in the thread
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        thread.join(WAIT)
        assert not thread.is_alive(), "the kernel-side thread did not finish"
    if "error" in result:
        raise result["error"]


def listening_socket(kind: socket.SocketKind = socket.SOCK_STREAM) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.settimeout(WAIT)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((KERNEL, 0))
    if kind == socket.SOCK_STREAM:
        sock.listen(8)
    return sock


def echo_server(result: dict[str, Any], listener: socket.socket) -> None:
    """Accept one connection, echo until EOF, then half-close (sha256 of what came)."""
    connection, _ = listener.accept()
    connection.settimeout(WAIT)
    digest = hashlib.sha256()
    with connection:
        while data := connection.recv(1 << 20):
            digest.update(data)
            connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
    result["sha256"] = digest.hexdigest()
    listener.close()


def count_then_reply(result: dict[str, Any], listener: socket.socket) -> None:
    """Read to EOF, then send how many bytes came, then close (half-close peer)."""
    connection, _ = listener.accept()
    connection.settimeout(WAIT)
    total = 0
    with connection:
        while data := connection.recv(65536):
            total += len(data)
        connection.sendall(b"got %d bytes" % total)
    listener.close()


def reset_server(result: dict[str, Any], listener: socket.socket) -> None:
    """Accept, then close with SO_LINGER 0: the kernel sends RST."""
    connection, _ = listener.accept()
    connection.recv(100)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()
    listener.close()


def udp_echo(result: dict[str, Any], sock: socket.socket, count: int) -> None:
    with sock:
        for _ in range(count):
            data, source = sock.recvfrom(65536)
            sock.sendto(data, source)


async def run_kernel_process(argv: list[str]) -> bytes:
    """Run ``argv`` to completion and return its stdout (exit status 0 required).

    Started with ``subprocess.Popen`` from the test's own thread, which is in the
    namespace: trio's ``run_process`` forks from a worker thread that may have
    been made before the namespace existed (and so would live outside it).
    """
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        with anyio.fail_after(WAIT * 2):
            while process.poll() is None:  # bounded by fail_after
                await anyio.sleep(0.02)
        out, err = process.communicate()
    assert process.returncode == 0, err.decode()
    return out


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def send_then_eof(stream: anyio.abc.ByteSendStream, data: bytes) -> None:
    for offset in range(0, len(data), 1 << 16):
        await stream.send(data[offset : offset + (1 << 16)])
    await stream.send_eof()


async def receive_all(stream: anyio.abc.ByteReceiveStream) -> bytes:
    received = bytearray()
    try:
        while True:
            received += await stream.receive()
    except anyio.EndOfStream:
        return bytes(received)


# -- anyio faces, both backends ------------------------------------------------------------


async def test_stack_client_5_megabytes_both_ways_with_kernel_echo(tun: Namespace) -> None:
    data = payload(FIVE_MB, 1)
    async with tun_stack() as stack:
        listener = listening_socket()
        port = listener.getsockname()[1]
        with kernel_thread(echo_server, listener) as result:
            with anyio.fail_after(WAIT):
                stream = await stack.connect_tcp(KERNEL, port)
                echoed: list[bytes] = []
                async with anyio.create_task_group() as group:
                    group.start_soon(send_then_eof, stream, data)
                    echoed.append(await receive_all(stream))
                await stream.aclose()
    assert result["sha256"] == hashlib.sha256(data).hexdigest()  # the kernel got it exact
    assert echoed[0] == data  # and we got it back exact


async def test_kernel_client_5_megabytes_both_ways_with_stack_echo(tun: Namespace) -> None:
    async def echo(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                while True:
                    await stream.send(await stream.receive(1 << 20))
            except anyio.EndOfStream:
                await stream.send_eof()

    async with tun_stack() as stack:
        listener = await stack.create_tcp_listener(local_port=7)
        with anyio.fail_after(WAIT * 2):
            async with anyio.create_task_group() as group:
                group.start_soon(listener.serve, echo, group)
                out = await run_kernel_process(
                    [sys.executable, str(PEER_SCRIPT), "echo-client", STACK, "7", "5", "1"]
                )
                group.cancel_scope.cancel()
        await listener.aclose()
    sent, received, count = out.decode().split()
    assert int(count) == FIVE_MB
    assert sent == received


async def test_half_close_with_the_kernel(tun: Namespace) -> None:
    async with tun_stack() as stack:
        listener = listening_socket()
        port = listener.getsockname()[1]
        with kernel_thread(count_then_reply, listener):
            with anyio.fail_after(WAIT):
                stream = await stack.connect_tcp(KERNEL, port)
                await send_then_eof(stream, b"q" * 100_000)  # our FIN; reading stays open
                assert await receive_all(stream) == b"got 100000 bytes"
                await stream.aclose()


async def test_refused_and_reset_by_the_kernel(tun: Namespace) -> None:
    async with tun_stack() as stack:
        closed_port = listening_socket()
        port = closed_port.getsockname()[1]
        closed_port.close()  # nobody listens there now: the kernel answers RST
        listener = listening_socket()
        with anyio.fail_after(WAIT), pytest.raises(ConnectionRefusedError):
            await stack.connect_tcp(KERNEL, port)
        with kernel_thread(reset_server, listener):
            with anyio.fail_after(WAIT):
                stream = await stack.connect_tcp(KERNEL, listener.getsockname()[1])
                await stream.send(b"hello")
                with pytest.raises(anyio.BrokenResourceError) as caught:
                    await stream.receive()
                assert isinstance(caught.value.__cause__, ConnectionResetError)
                await stream.aclose()


async def test_udp_echo_with_the_kernel(tun: Namespace) -> None:
    sizes = [1, 100, 512, 1400, 1472, 7, 1000] * 10
    async with tun_stack() as stack:
        sock = listening_socket(socket.SOCK_DGRAM)
        port = sock.getsockname()[1]
        with kernel_thread(udp_echo, sock, len(sizes)):
            udp = await stack.create_connected_udp_socket(KERNEL, port)
            with anyio.fail_after(WAIT):
                for number, size in enumerate(sizes):
                    datagram = payload(size, number)
                    await udp.send(datagram)
                    assert await udp.receive() == datagram
            await udp.aclose()


async def test_ping_the_kernel(tun: Namespace) -> None:
    async with tun_stack() as stack:
        assert 0 < await stack.ping(KERNEL, timeout=WAIT) < WAIT


async def test_ipv6_with_the_kernel(tun: Namespace) -> None:
    """TCP and ping over IPv6 through the TUN (the kernel side at 2001:2::1)."""
    link = TunLink("aionsa6", kernel_address=f"{KERNEL}/24")
    subprocess.run(["ip", "-6", "addr", "add", f"{KERNEL6}/64", "dev", "aionsa6", "nodad"],
                   check=True)  # fmt: skip
    data = payload(1 << 20, 6)
    async with AnyioStack(link, address=[f"{STACK}/24", f"{STACK6}/64"], seed=4) as stack:
        assert 0 < await stack.ping(KERNEL6, timeout=WAIT) < WAIT
        listener = socket.socket(socket.AF_INET6)
        listener.settimeout(WAIT)
        listener.bind((KERNEL6, 0))
        listener.listen(1)
        with kernel_thread(echo_server, listener) as result, anyio.fail_after(WAIT):
            stream = await stack.connect_tcp(KERNEL6, listener.getsockname()[1])
            assert stream.extra(anyio.abc.SocketAttribute.family) == socket.AF_INET6
            echoed: list[bytes] = []
            async with anyio.create_task_group() as group:
                group.start_soon(send_then_eof, stream, data)
                echoed.append(await receive_all(stream))
            await stream.aclose()
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert echoed[0] == data


async def test_tap_with_the_kernel(tun: Namespace) -> None:
    """On an Ethernet segment (TapLink: ARP, neighbour discovery) against the kernel."""
    from aionetstack import TapLink

    link = TapLink("aionsat0", kernel_address="198.18.1.1/24", mac="02:00:5e:10:00:03")
    data = payload(1 << 20, 7)
    async with AnyioStack(link, address="198.18.1.2/24", seed=5) as stack:
        assert 0 < await stack.ping("198.18.1.1", timeout=WAIT) < WAIT  # ARP first
        listener = socket.socket()
        listener.settimeout(WAIT)
        listener.bind(("198.18.1.1", 0))
        listener.listen(1)
        with kernel_thread(echo_server, listener) as result, anyio.fail_after(WAIT):
            stream = await stack.connect_tcp("198.18.1.1", listener.getsockname()[1])
            echoed: list[bytes] = []
            async with anyio.create_task_group() as group:
                group.start_soon(send_then_eof, stream, data)
                echoed.append(await receive_all(stream))
            await stream.aclose()
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert echoed[0] == data


# -- unmodified trio -----------------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_open_tcp_stream_5_megabytes_and_errors(
    anyio_backend: str, tun: Namespace
) -> None:
    import trio

    data = payload(FIVE_MB, 2)
    async with tun_stack() as stack:
        listener = listening_socket()
        port = listener.getsockname()[1]
        with stack.as_trio_network():
            with kernel_thread(echo_server, listener) as result, trio.fail_after(WAIT):
                stream = await trio.open_tcp_stream(KERNEL, port)
                echoed = bytearray()

                async def send() -> None:
                    await stream.send_all(data)
                    await stream.send_eof()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send)
                    while chunk := await stream.receive_some():
                        echoed += chunk
                await stream.aclose()
            assert result["sha256"] == hashlib.sha256(data).hexdigest()
            assert echoed == data
            with trio.fail_after(WAIT), pytest.raises(OSError, match="all attempts"):
                await trio.open_tcp_stream(KERNEL, port)  # refused: nobody listens now
            resetting = listening_socket()
            with kernel_thread(reset_server, resetting), trio.fail_after(WAIT):
                stream = await trio.open_tcp_stream(KERNEL, resetting.getsockname()[1])
                await stream.send_all(b"hello")
                with pytest.raises(trio.BrokenResourceError):
                    await stream.receive_some()
                await stream.aclose()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_serve_tcp_for_a_kernel_client(anyio_backend: str, tun: Namespace) -> None:
    import trio

    async def echo(stream: trio.SocketStream) -> None:
        async with stream:
            async for chunk in stream:
                await stream.send_all(chunk)

    async with tun_stack() as stack, trio.open_nursery() as nursery:
        with stack.as_trio_network():
            await nursery.start(partial(trio.serve_tcp, echo, 7, host=STACK))
        out = await run_kernel_process(
            [sys.executable, str(PEER_SCRIPT), "echo-client", STACK, "7", "5", "3"]
        )
        nursery.cancel_scope.cancel()
    sent, received, count = out.decode().split()
    assert (int(count), sent) == (FIVE_MB, received)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_httpx_under_trio_fetches_from_a_kernel_server(
    anyio_backend: str, tun: Namespace, tmp_path: Path
) -> None:
    """httpx/httpcore pick their trio backend, which calls trio.open_tcp_stream: the stack's."""
    import httpx
    import trio

    blob = payload(3 * 1024 * 1024, 4)
    (tmp_path / "blob.bin").write_bytes(blob)
    async with tun_stack() as stack:
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", "8080", "--bind", KERNEL,
             "--directory", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with stack.as_trio_network(), trio.fail_after(WAIT):
                async with httpx.AsyncClient() as client:
                    for _ in range(200):  # the server needs a moment to listen (bounded)
                        try:
                            response = await client.get(f"http://{KERNEL}:8080/blob.bin")
                            break
                        except httpx.ConnectError:
                            await trio.sleep(0.05)
                    else:
                        raise AssertionError("the kernel-side HTTP server never listened")
                    assert response.status_code == 200
                    assert response.content == blob
                    again = await client.get(f"http://{KERNEL}:8080/blob.bin")  # pooled
                    assert again.content == blob
        finally:
            server.terminate()
            server.wait(WAIT)


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI app: the request path and body, upper-cased."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    reply = b"hello from hypercorn on trio on aionetstack: " + scope["path"].encode() + b" " + body
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
    await send({"type": "http.response.body", "body": reply.upper()})


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_hypercorn_under_trio_serves_curl(anyio_backend: str, tun: Namespace) -> None:
    """hypercorn's trio TCPServer on listeners from trio.open_tcp_listeners (the stack's).

    ``hypercorn.trio.serve()`` binds kernel sockets itself (``from_stdlib_socket``),
    so the test serves the stack's listeners the way its ``worker_serve`` serves its
    own: ``trio.serve_listeners(partial(TCPServer, app, config, context, state), ...)``.
    """
    import trio
    from hypercorn.config import Config
    from hypercorn.trio.tcp_server import TCPServer
    from hypercorn.trio.worker_context import WorkerContext
    from hypercorn.typing import ConnectionState
    from hypercorn.utils import wrap_app

    config = Config()
    app = wrap_app(hello_app, config.wsgi_max_body_size, "asgi")
    async with tun_stack() as stack, trio.open_nursery() as nursery:
        with stack.as_trio_network():
            listeners = await trio.open_tcp_listeners(8000, host=STACK)
        handler = partial(TCPServer, app, config, WorkerContext(None), ConnectionState({}))
        nursery.start_soon(partial(trio.serve_listeners, handler, listeners,
                                   handler_nursery=nursery))  # fmt: skip
        first = await run_kernel_process(
            ["curl", "-s", "--max-time", "10", f"http://{STACK}:8000/path"]
        )
        second = await run_kernel_process(
            ["curl", "-s", "--max-time", "10", "--data-binary", "posted body",
             f"http://{STACK}:8000/post"]
        )  # fmt: skip
        nursery.cancel_scope.cancel()
    assert first == b"HELLO FROM HYPERCORN ON TRIO ON AIONETSTACK: /PATH "
    assert second == b"HELLO FROM HYPERCORN ON TRIO ON AIONETSTACK: /POST POSTED BODY"

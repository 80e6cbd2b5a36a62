"""Unmodified asyncio libraries through ``loop_factory`` over a real TUN, against real servers
started in the test's namespace on the kernel side (198.18.0.1); names from dnsmasq.

Each test proves the traffic went through the stack: the server sees the stack's
address (198.18.0.2), and the stack's link counters moved.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

import aionetstack
from aionetstack import TunLink
from aionetstack.aio.loop import StackEventLoop
from aionetstack.testing.netns import Namespace

from .kernel_services import KernelLoop, dnsmasq, postgres_server, redis_server

pytestmark = pytest.mark.tun

KERNEL = "198.18.0.1"
STACK = "198.18.0.2"
NAMES = {"web.test": [KERNEL], "redis.test": [KERNEL], "ws.test": [KERNEL], "pg.test": [KERNEL]}


@pytest.fixture
def kernel(netns: Namespace, tmp_path: Path) -> Iterator[KernelLoop]:
    """The TUN is made first (dnsmasq binds to its address), then dnsmasq and a kernel loop."""
    link = TunLink("aionsl0", kernel_address=f"{KERNEL}/24")
    with dnsmasq(tmp_path, KERNEL, NAMES), KernelLoop() as loop:
        loop.link = link  # type: ignore[attr-defined]
        yield loop


def run_on_stack(kernel: KernelLoop, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``main()`` with asyncio.Runner on a loop_factory loop over the TUN."""
    factory = aionetstack.loop_factory(
        kernel.link,  # type: ignore[attr-defined]
        address=f"{STACK}/24", nameservers=[KERNEL],
    )  # fmt: skip
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


def link_packets() -> tuple[int, int]:
    """Bytes the stack's link sent and received (packets would depend on offloads)."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, StackEventLoop)
    link = loop.stack.statistics()["link"]
    sent, received = link["sent_bytes"], link["received_bytes"]
    assert isinstance(sent, int) and isinstance(received, int)
    return sent, received


def test_aiohttp_client_get_and_post_keep_alive_by_name(kernel: KernelLoop) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    web = pytest.importorskip("aiohttp.web")
    peers: list[tuple[str, int]] = []

    async def handler(request: Any) -> Any:
        peers.append(request.transport.get_extra_info("peername"))
        body = await request.read()
        return web.Response(text=f"{request.method} {len(body)} from {request.remote}")

    async def serve() -> Any:
        app = web.Application()
        app.router.add_route("*", "/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, KERNEL, 8080).start()
        return runner

    runner = kernel.run(serve())

    async def main() -> None:
        before = link_packets()
        async with aiohttp.ClientSession() as session:
            async with session.get("http://web.test:8080/") as response:
                assert await response.text() == f"GET 0 from {STACK}"
            async with session.post("http://web.test:8080/", data=b"p" * 100_000) as response:
                assert await response.text() == f"POST 100000 from {STACK}"
        after = link_packets()
        assert after[0] > before[0] + 100_000 and after[1] > before[1] + 200

    try:
        run_on_stack(kernel, main)
    finally:
        kernel.run(runner.cleanup())
    assert len(peers) == 2 and peers[0] == peers[1]  # one kept-alive connection
    assert peers[0][0] == STACK


def test_redis_asyncio_client_against_redis_server(kernel: KernelLoop, tmp_path: Path) -> None:
    redis_asyncio = pytest.importorskip("redis.asyncio")

    async def main() -> str:
        before = link_packets()
        client = redis_asyncio.Redis(host="redis.test", port=6379)
        try:
            assert await client.set("greeting", "hello") is True
            assert await client.get("greeting") == b"hello"
            async with client.pipeline() as pipe:
                results = await pipe.incr("n").incr("n").get("n").execute()
            assert results == [1, 2, b"2"]
            clients = await client.client_list()
        finally:
            await client.aclose()
        after = link_packets()
        assert after[0] > before[0] and after[1] > before[1]
        return str(clients[0]["addr"])

    with redis_server(tmp_path, KERNEL):
        address = run_on_stack(kernel, main)
    assert address.startswith(f"{STACK}:")  # redis saw the stack's address


def test_asyncpg_against_postgresql(kernel: KernelLoop) -> None:
    asyncpg = pytest.importorskip("asyncpg")

    async def main() -> str:
        before = link_packets()
        connection = await asyncpg.connect(host="pg.test", port=5432, user="postgres",
                                           database="postgres")  # fmt: skip
        try:
            await connection.execute("CREATE TABLE t (n int, s text)")
            await connection.executemany("INSERT INTO t VALUES ($1, $2)",
                                         [(i, f"row {i}") for i in range(100)])  # fmt: skip
            assert await connection.fetchval("SELECT sum(n) FROM t") == 4950
            rows = await connection.fetch("SELECT s FROM t WHERE n < $1 ORDER BY n", 3)
            assert [r["s"] for r in rows] == ["row 0", "row 1", "row 2"]
            client = str(await connection.fetchval("SELECT inet_client_addr()"))
        finally:
            await connection.close()
        after = link_packets()
        assert after[0] > before[0] + 5 and after[1] > before[1] + 5
        return client

    with postgres_server(KERNEL):
        assert run_on_stack(kernel, main) == STACK  # PostgreSQL saw the stack's address


def test_websockets_client_and_server(kernel: KernelLoop) -> None:
    ws_server = pytest.importorskip("websockets.asyncio.server")
    ws_client = pytest.importorskip("websockets.asyncio.client")
    seen: list[str] = []

    async def echo(connection: Any) -> None:
        seen.append(connection.remote_address[0])
        async for message in connection:
            await connection.send(f"echo {message}")

    async def start_kernel_server() -> Any:
        return await ws_server.serve(echo, KERNEL, 8765)

    kernel_server = kernel.run(start_kernel_server())

    async def kernel_client(port: int) -> str:
        async with ws_client.connect(f"ws://{STACK}:{port}") as connection:
            await connection.send("from the kernel")
            return str(await connection.recv())

    async def main() -> None:
        before = link_packets()
        # Client: by name, to the kernel's server.
        async with ws_client.connect("ws://ws.test:8765") as connection:
            await connection.send("from the stack")
            assert await connection.recv() == "echo from the stack"
        # Server: on the stack (host None: every stack address); a kernel client dials it.
        async with ws_server.serve(echo, None, 0) as server:
            port = server.sockets[0].getsockname()[1]
            reply = await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(kernel_client(port), kernel.loop)
            )
            assert reply == "echo from the kernel"
        after = link_packets()
        assert after[0] > before[0] + 200 and after[1] > before[1] + 200

    try:
        run_on_stack(kernel, main)
    finally:
        kernel_server.close()
        kernel.run(kernel_server.wait_closed())
    assert seen == [STACK, KERNEL]  # each server saw the other side's address


def test_names_and_loopback_under_the_loop(kernel: KernelLoop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert await loop.getaddrinfo("web.test", 80, type=socket.SOCK_STREAM) == [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (KERNEL, 80))
        ]
        with pytest.raises(socket.gaierror) as caught:
            await loop.getaddrinfo("nowhere.test", 80)
        assert caught.value.errno == socket.EAI_NONAME
        # Loopback stays on the kernel (the default dial policy).
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("localhost", port)
        writer.close()
        server.close()

    run_on_stack(kernel, main)


def test_aiohttp_by_name_prefers_ipv6_on_a_dual_stack(netns: Namespace, tmp_path: Path) -> None:
    """dnsmasq answers A and AAAA; the stack has both families, so Happy Eyeballs tries
    IPv6 first and the kernel's dual-stack server sees the stack's IPv6 address."""
    aiohttp = pytest.importorskip("aiohttp")
    web = pytest.importorskip("aiohttp.web")
    link = TunLink("aionsl6", kernel_address=f"{KERNEL}/24")
    netns.run(["ip", "-6", "addr", "add", "2001:2::1/64", "dev", "aionsl6", "nodad"])
    remotes: list[str] = []

    async def handler(request: Any) -> Any:
        remotes.append(request.remote)
        return web.Response(text="dual")

    async def serve() -> Any:
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "::", 8080).start()  # dual-stack listener
        return runner

    async def main() -> None:
        async with aiohttp.ClientSession() as session, session.get(
            "http://dual.test:8080/"
        ) as response:
            assert await response.text() == "dual"

    with dnsmasq(tmp_path, KERNEL, {"dual.test": [KERNEL, "2001:2::1"]}), KernelLoop() as kernel:
        runner = kernel.run(serve())
        factory = aionetstack.loop_factory(
            link, address=[f"{STACK}/24", "2001:2::2/64"], nameservers=[KERNEL]
        )
        try:
            with asyncio.Runner(loop_factory=factory) as stack_runner:
                stack_runner.run(main())
        finally:
            kernel.run(runner.cleanup())
    assert remotes == ["2001:2::2"]

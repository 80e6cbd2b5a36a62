"""aiohttp's web server running on the stack, unmodified.

``web.AppRunner`` gives the server (``runner.server``), which is an asyncio
protocol factory; ``stack.create_server`` serves it. Clients: the kernel's
curl over a TUN, and httpx on a second stack over a memory link.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aionetstack import Stack

web = pytest.importorskip("aiohttp.web", reason="aiohttp is not installed")

KERNEL = "198.18.0.1"
STACK = "198.18.0.2"
PORT = 8080
#: A body large enough to need many windows' worth of segments.
BIG = random.Random(20240501).randbytes(8 * 1024 * 1024 + 123)


class App:
    """The web app under test; it records which client ports its requests came from."""

    def __init__(self) -> None:
        self.client_ports: list[int] = []
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/", self.hello)
        self.app.router.add_get("/big", self.big)
        self.app.router.add_post("/digest", self.digest)

    def _note(self, request: Any) -> None:
        peer = request.transport.get_extra_info("peername")
        self.client_ports.append(peer[1])

    async def hello(self, request: Any) -> Any:
        self._note(request)
        return web.Response(text=f"hello {request.remote}\n")

    async def big(self, request: Any) -> Any:
        self._note(request)
        return web.Response(body=BIG, content_type="application/octet-stream")

    async def digest(self, request: Any) -> Any:
        """Stream the request body and answer its length and SHA-256."""
        self._note(request)
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        return web.Response(text=f"{size} {digest.hexdigest()}\n")


@pytest.fixture
async def served_on() -> AsyncIterator[Any]:
    """``serve(stack, ssl=None) -> App``: the app listening on ``stack`` port 8080."""
    runners: list[Any] = []

    async def serve(stack: Stack, ssl: Any = None) -> App:
        app = App()
        runner = web.AppRunner(app.app, handle_signals=False)
        await runner.setup()
        runners.append(runner)
        await stack.create_server(runner.server, STACK, PORT, ssl=ssl)
        return app

    yield serve
    for runner in runners:
        await runner.cleanup()


async def curl(*args: str, timeout: float = 60) -> str:
    """Run the kernel-side curl (in the test's namespace); return its stdout."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    process = await asyncio.create_subprocess_exec(
        "curl", "--silent", "--show-error", "--max-time", str(int(timeout)), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout + 5)
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.tun
async def test_curl_fetches_pages_and_a_large_body_over_one_keepalive_connection(
    tun_stack: Stack, served_on: Any, tmp_path: Path
) -> None:
    app = await served_on(tun_stack)
    base = f"http://{STACK}:{PORT}"
    report = await curl(
        "--write-out", "%{http_code} %{num_connects} %{size_download}\n",
        "-o", str(tmp_path / "1"), f"{base}/",
        "-o", str(tmp_path / "2"), f"{base}/big",
        "-o", str(tmp_path / "3"), f"{base}/",
    )  # fmt: skip
    hello = f"hello {KERNEL}\n"
    assert report.splitlines() == [
        f"200 1 {len(hello)}",
        f"200 0 {len(BIG)}",  # num_connects 0: the connection was reused
        f"200 0 {len(hello)}",
    ]
    assert (tmp_path / "1").read_text() == hello
    assert (tmp_path / "2").read_bytes() == BIG
    assert len(app.client_ports) == 3
    assert len(set(app.client_ports)) == 1, "keep-alive: every request on one connection"


@pytest.mark.tun
async def test_curl_uploads_a_large_body(tun_stack: Stack, served_on: Any, tmp_path: Path) -> None:
    await served_on(tun_stack)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(BIG)
    answer = await curl("--data-binary", f"@{upload}", f"http://{STACK}:{PORT}/digest")
    assert answer == f"{len(BIG)} {hashlib.sha256(BIG).hexdigest()}\n"


@pytest.mark.tun
async def test_curl_over_https(
    tun_stack: Stack, served_on: Any, certificate: Any, tmp_path: Path
) -> None:
    await served_on(tun_stack, ssl=certificate.server_context())
    report = await curl(
        "--cacert", str(certificate.cert_path),
        "--write-out", "%{http_code} %{ssl_verify_result}\n",
        "-o", str(tmp_path / "big"), f"https://{STACK}:{PORT}/big",
    )  # fmt: skip
    assert report == "200 0\n"
    assert (tmp_path / "big").read_bytes() == BIG


async def test_httpx_on_a_peer_stack_over_memory(
    memory_stacks: tuple[Stack, Stack], served_on: Any, stack_httpx: Any
) -> None:
    stack, peer = memory_stacks
    app = await served_on(stack)
    base = f"http://{STACK}:{PORT}"
    async with stack_httpx(peer) as client:
        first = await client.get(f"{base}/")
        big = await client.get(f"{base}/big")
        posted = await client.post(f"{base}/digest", content=BIG[:3_000_000])
        again = await client.get(f"{base}/")
    assert first.status_code == again.status_code == 200
    assert first.text == again.text == f"hello {KERNEL}\n"
    assert big.content == BIG
    assert posted.text == f"3000000 {hashlib.sha256(BIG[:3_000_000]).hexdigest()}\n"
    assert len(set(app.client_ports)) == 1, "httpx reuses its keep-alive connection"


async def test_https_with_httpx_on_a_peer_stack_over_memory(
    memory_stacks: tuple[Stack, Stack], served_on: Any, stack_httpx: Any, certificate: Any
) -> None:
    stack, peer = memory_stacks
    await served_on(stack, ssl=certificate.server_context())
    async with stack_httpx(peer, verify=certificate.client_context()) as client:
        response = await client.get(f"https://{STACK}:{PORT}/big")
    assert response.status_code == 200
    assert response.content == BIG


@pytest.mark.tun
async def test_curl_reading_slowly_gets_every_byte(
    tun_stack: Stack, served_on: Any, tmp_path: Path
) -> None:
    """A rate-limited reader: aiohttp waits on drain() while the kernel's window closes."""
    await served_on(tun_stack)
    report = await curl(
        "--limit-rate", "8M", "--write-out", "%{http_code}\n",
        "-o", str(tmp_path / "big"), f"http://{STACK}:{PORT}/big",
    )  # fmt: skip
    assert report == "200\n"
    assert (tmp_path / "big").read_bytes() == BIG


async def test_download_over_a_lossy_reordering_memory_link(served_on: Any) -> None:
    """The same app and body over 2% loss and 2% reordering each way: byte-exact."""
    from aionetstack import Impairment, MemoryLink

    impairment = Impairment(loss=0.02, reorder=0.02, seed=7)
    ours, theirs = MemoryLink.pair(mtu=1500, impairment=impairment)
    async with (
        Stack(theirs, address=f"{KERNEL}/24", seed=2) as peer,
        Stack(ours, address=f"{STACK}/24", seed=1) as stack,
    ):
        await served_on(stack)
        reader, writer = await peer.open_connection(STACK, PORT)
        writer.write(f"GET /big HTTP/1.1\r\nHost: {STACK}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert f"Content-Length: {len(BIG)}\r\n".encode() in head
        body = await asyncio.wait_for(reader.readexactly(len(BIG)), 60)
        writer.close()
    assert body == BIG


async def test_a_client_that_resets_mid_response_leaves_the_server_serving(
    memory_stacks: tuple[Stack, Stack], served_on: Any
) -> None:
    stack, peer = memory_stacks
    app = await served_on(stack)
    reader, writer = await peer.open_connection(STACK, PORT)
    writer.write(f"GET /big HTTP/1.1\r\nHost: {STACK}\r\n\r\n".encode())
    await reader.readexactly(100_000)
    writer.transport.abort()  # RST while the server still has megabytes to send
    reader, writer = await peer.open_connection(STACK, PORT)
    writer.write(f"GET / HTTP/1.1\r\nHost: {STACK}\r\nConnection: close\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 10)
    assert answer.endswith(f"\r\n\r\nhello {KERNEL}\n".encode())
    assert len(app.client_ports) == 2


async def test_runner_cleanup_closes_idle_keepalive_connections(
    memory_stacks: tuple[Stack, Stack],
) -> None:
    """Graceful shutdown: ``runner.cleanup()`` ends connections the stack accepted."""
    stack, peer = memory_stacks
    app = App()
    runner = web.AppRunner(app.app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    server = await stack.create_server(runner.server, STACK, PORT)
    reader, writer = await peer.open_connection(STACK, PORT)
    writer.write(f"GET / HTTP/1.1\r\nHost: {STACK}\r\n\r\n".encode())
    await reader.readuntil(f"hello {KERNEL}\n".encode())
    server.close()
    await asyncio.wait_for(runner.cleanup(), 10)
    assert await asyncio.wait_for(reader.read(), 10) == b"", "the idle connection is closed"
    writer.close()

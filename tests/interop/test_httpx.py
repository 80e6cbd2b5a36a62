"""httpx on the stack: an httpcore network backend that dials with ``stack.open_connection``.

The backend (``StackNetworkBackend`` in conftest.py) is the whole adapter:
httpcore's connection pool, HTTP/1.1 and TLS (``start_tls`` on the stream)
run unmodified over the stack's transports. The servers are aiohttp sites on
kernel sockets at 198.18.0.1, in the same loop.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aionetstack import Stack

httpx = pytest.importorskip("httpx", reason="httpx is not installed")
web = pytest.importorskip("aiohttp.web", reason="the kernel-side server is aiohttp")

KERNEL = "198.18.0.1"
HTTP_PORT = 8080
HTTPS_PORT = 8443
BODY = random.Random(80).randbytes(6 * 1024 * 1024 + 1)


async def download(request: Any) -> Any:
    return web.Response(body=BODY)


async def upload(request: Any) -> Any:
    return web.Response(text=hashlib.sha256(await request.read()).hexdigest())


@pytest.fixture
async def kernel_site(tun_stack: Stack, certificate: Any) -> AsyncIterator[None]:
    """aiohttp on kernel sockets: plain HTTP on 8080 and HTTPS on 8443 at 198.18.0.1."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_get("/body", download)
    app.router.add_put("/body", upload)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, KERNEL, HTTP_PORT).start()
    await web.TCPSite(runner, KERNEL, HTTPS_PORT, ssl_context=certificate.server_context()).start()
    yield
    await runner.cleanup()


@pytest.mark.tun
async def test_httpx_downloads_and_uploads_over_http(
    tun_stack: Stack, kernel_site: None, stack_httpx: Any
) -> None:
    async with stack_httpx(tun_stack) as client:
        got = await client.get(f"http://{KERNEL}:{HTTP_PORT}/body")
        put = await client.put(f"http://{KERNEL}:{HTTP_PORT}/body", content=BODY)
    assert got.status_code == 200
    assert got.content == BODY
    assert put.text == hashlib.sha256(BODY).hexdigest()


@pytest.mark.tun
async def test_httpx_over_https_verifies_the_kernel_server(
    tun_stack: Stack, kernel_site: None, stack_httpx: Any, certificate: Any
) -> None:
    async with stack_httpx(tun_stack, verify=certificate.client_context()) as client:
        response = await client.get(f"https://{KERNEL}:{HTTPS_PORT}/body")
        assert response.extensions["network_stream"].get_extra_info("ssl_object") is not None
    assert response.status_code == 200
    assert response.content == BODY


@pytest.mark.tun
async def test_httpx_reports_refused_and_untrusted_as_connect_errors(
    tun_stack: Stack, kernel_site: None, stack_httpx: Any
) -> None:
    async with stack_httpx(tun_stack) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://{KERNEL}:1/")  # nothing listens: RST
        with pytest.raises(httpx.ConnectError):
            await client.get(f"https://{KERNEL}:{HTTPS_PORT}/body")  # self-signed: untrusted
        response = await client.get(f"http://{KERNEL}:{HTTP_PORT}/body")
    assert response.content == BODY

"""uvicorn's h11 HTTP protocol serving an ASGI app through ``stack.create_server``.

uvicorn's own ``Server.startup`` builds the protocol factory the same way:
``H11Protocol(config=..., server_state=..., app_state=...)`` after
``config.load()``; we hand that factory to the stack instead of the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aionetstack import Stack

uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed")
pytest.importorskip("h11", reason="uvicorn's h11 protocol needs h11")
from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402

KERNEL = "198.18.0.1"
STACK = "198.18.0.2"
PORT = 8000
#: Streamed in this many 64 KiB ``more_body`` chunks (chunked transfer encoding).
CHUNKS = 64
CHUNK = bytes(range(256)) * 256


def chunk(index: int) -> bytes:
    return CHUNK[index:] + CHUNK[:index]


STREAMED = b"".join(chunk(i) for i in range(CHUNKS))


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/stream``: 4 MiB in 64 chunks; ``/digest``: SHA-256 of the body; else who asked."""
    assert scope["type"] == "http"
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for index in range(CHUNKS):
            await send({"type": "http.response.body", "body": chunk(index), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/digest":
        digest = hashlib.sha256()
        while True:
            message = await receive()
            digest.update(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = f"{digest.hexdigest()}\n".encode()
    else:
        host, port = scope["client"]
        body = f"{scope['method']} {scope['path']} from {host}:{port}\n".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def h11_protocol_factory(state: Any = None) -> Callable[[], asyncio.Protocol]:
    """What ``uvicorn.Server.startup`` hands to ``loop.create_server``."""
    config = uvicorn.Config(asgi_app, http="h11", lifespan="off", log_level="warning")
    config.load()
    server_state = ServerState() if state is None else state
    return lambda: H11Protocol(config=config, server_state=server_state, app_state={})


async def curl(*args: str, timeout: float = 60) -> str:
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
async def test_curl_talks_to_uvicorn_on_the_stack(tun_stack: Stack, tmp_path: Path) -> None:
    server = await tun_stack.create_server(h11_protocol_factory(), STACK, PORT)
    base = f"http://{STACK}:{PORT}"
    report = await curl(
        "--write-out", "%{http_code} %{num_connects} %{local_port}\n",
        "-o", str(tmp_path / "a"), f"{base}/a",
        "-o", str(tmp_path / "stream"), f"{base}/stream",
        "-o", str(tmp_path / "b"), f"{base}/b",
    )  # fmt: skip
    lines = [line.split() for line in report.splitlines()]
    # num_connects 1 then 0, 0: one keep-alive connection carried all three
    assert [(code, connects) for code, connects, _ in lines] == [
        ("200", "1"),
        ("200", "0"),
        ("200", "0"),
    ]
    port = lines[0][2]
    assert (tmp_path / "a").read_text() == f"GET /a from {KERNEL}:{port}\n"
    assert (tmp_path / "b").read_text() == f"GET /b from {KERNEL}:{port}\n"
    assert (tmp_path / "stream").read_bytes() == STREAMED
    server.close()


@pytest.mark.tun
async def test_curl_streams_a_chunked_upload_to_uvicorn(tun_stack: Stack, tmp_path: Path) -> None:
    server = await tun_stack.create_server(h11_protocol_factory(), STACK, PORT)
    upload = tmp_path / "upload"
    upload.write_bytes(STREAMED)
    answer = await curl(
        "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{upload}",
        f"http://{STACK}:{PORT}/digest",
    )  # fmt: skip
    assert answer == f"{hashlib.sha256(STREAMED).hexdigest()}\n"
    server.close()


async def test_httpx_on_a_peer_stack_talks_to_uvicorn(
    memory_stacks: tuple[Stack, Stack], stack_httpx: Any
) -> None:
    stack, peer = memory_stacks
    server = await stack.create_server(h11_protocol_factory(), STACK, PORT)
    async with stack_httpx(peer) as client:
        hello = await client.get(f"http://{STACK}:{PORT}/hello")
        streamed = await client.get(f"http://{STACK}:{PORT}/stream")
        digest = await client.post(f"http://{STACK}:{PORT}/digest", content=STREAMED)
    assert hello.text.startswith(f"GET /hello from {KERNEL}:")
    assert streamed.headers["transfer-encoding"] == "chunked"
    assert streamed.content == STREAMED
    assert digest.text == f"{hashlib.sha256(STREAMED).hexdigest()}\n"
    server.close()


async def test_uvicorn_shutdown_closes_idle_keepalive_connections(
    memory_stacks: tuple[Stack, Stack],
) -> None:
    """What ``uvicorn.Server.shutdown`` does: ``shutdown()`` every tracked connection."""
    stack, peer = memory_stacks
    state = ServerState()
    server = await stack.create_server(h11_protocol_factory(state), STACK, PORT)
    reader, writer = await peer.open_connection(STACK, PORT)
    writer.write(f"GET /idle HTTP/1.1\r\nHost: {STACK}\r\n\r\n".encode())
    await reader.readuntil(b"GET /idle from ")
    await reader.readline()
    assert len(state.connections) == 1
    server.close()
    for connection in list(state.connections):
        connection.shutdown()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    for _ in range(500):  # connection_lost (after our FIN is acknowledged) removes it
        if not state.connections:
            break
        await asyncio.sleep(0.01)
    assert not state.connections, "uvicorn's connection_lost ran"

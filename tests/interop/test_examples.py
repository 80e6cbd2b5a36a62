"""The examples run as a user runs them: as scripts, in their own process.

Memory mode (the default) needs no privileges: each example must exit 0 and
print what its demonstration promises. ``--tun`` mode runs inside the test's
network namespace (the subprocess inherits it), talks to kernel sockets, and
must stop cleanly on Ctrl-C (SIGINT).
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import pytest

from aionetstack.testing.netns import Namespace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STACK = "198.18.0.2"
TIMEOUT = 30.0


async def run_example(name: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / name), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_echo_server_demo() -> None:
    code, out, err = await run_example("echo_server.py")
    assert code == 0, err
    assert "client: sent b'hello, stack\\n', got b'hello, stack\\n'" in out
    assert "client: sent b'bye\\n', got b'bye\\n'" in out
    assert "server: connection from 198.18.0.1:" in out
    assert err == ""


async def test_http_server_demo() -> None:
    pytest.importorskip("aiohttp", reason="the example serves an aiohttp app")
    code, out, err = await run_example("http_server.py")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "GET / -> HTTP/1.1 200 OK: Hello from aionetstack, 198.18.0.1!"
    head, _, body = lines[1].partition(": ")
    assert head == "GET /hello/world -> HTTP/1.1 200 OK"
    assert json.loads(body) == {"hello": "world", "from": "198.18.0.1"}
    assert err == ""


async def test_http_client_demo() -> None:
    code, out, err = await run_example("http_client.py")
    assert code == 0, err
    assert out.splitlines()[:3] == ["status: 200", "content-type: text/html", "content-length: 19"]
    assert "<h1>It works!</h1>" in out
    assert err == ""


async def test_http_client_rejects_https_urls() -> None:
    code, _, err = await run_example("http_client.py", "https://198.18.0.1/")
    assert code != 0
    assert "only http://" in err


async def test_udp_echo_demo() -> None:
    code, out, err = await run_example("udp_echo.py")
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("client:")] == [
        "client: sent 4 bytes, echo matches: True",
        "client: sent 14 bytes, echo matches: True",
        "client: sent 1000 bytes, echo matches: True",
    ]
    assert err == ""


# -- --tun mode, against kernel sockets in the test's namespace ------------------------


def _default_sigint() -> None:
    """In the example, before exec: Ctrl-C does what it does in a terminal. A test run
    started as a background job without job control (``cmd &`` in a script) has SIGINT
    ignored, and a child inherits that: Python then installs no handler for it, and the
    example would sleep through the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def start_tun_example(name: str) -> asyncio.subprocess.Process:
    # -X faulthandler: a SIGABRT makes it print every thread's stack (see interrupt)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-X", "faulthandler", str(EXAMPLES / name), "--tun",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=_default_sigint,
    )  # fmt: skip


async def interrupt(process: asyncio.subprocess.Process) -> tuple[str, str]:
    """Ctrl-C the example (by its pid) and expect a clean exit 0. An example still
    running after TIMEOUT is aborted, and the test fails with the stacks it was in."""
    process.send_signal(signal.SIGINT)
    communicating = asyncio.ensure_future(process.communicate())
    done, _ = await asyncio.wait({communicating}, timeout=TIMEOUT)
    if not done:
        process.send_signal(signal.SIGABRT)
        _, err = await asyncio.wait_for(communicating, TIMEOUT)
        raise AssertionError(f"the example ignored Ctrl-C for {TIMEOUT} s:\n{err.decode()}")
    out, err = communicating.result()
    assert process.returncode == 0, err.decode()
    return out.decode(), err.decode()


async def kernel_connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Until the example has made its TUN there is no route: retry, bounded."""
    for _ in range(200):
        try:
            return await asyncio.open_connection(STACK, port)
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"{STACK}:{port} never accepted")


@pytest.mark.tun
async def test_echo_server_on_a_tun(netns: Namespace) -> None:
    process = await start_tun_example("echo_server.py")
    try:
        reader, writer = await kernel_connect(7)
        writer.write(b"from the kernel\n")
        assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"from the kernel\n"
        writer.close()
    finally:
        out, _ = await interrupt(process)
    assert "echo server on 198.18.0.2:7" in out


@pytest.mark.tun
async def test_http_server_on_a_tun(netns: Namespace) -> None:
    pytest.importorskip("aiohttp", reason="the example serves an aiohttp app")
    process = await start_tun_example("http_server.py")
    try:
        reader, writer = await kernel_connect(8080)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
    finally:
        await interrupt(process)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\nHello from aionetstack, 198.18.0.1!\n")


@pytest.mark.tun
async def test_udp_echo_on_a_tun(netns: Namespace) -> None:
    process = await start_tun_example("udp_echo.py")
    try:
        assert process.stdout is not None
        banner = await asyncio.wait_for(process.stdout.readline(), TIMEOUT)
        assert banner.startswith(b"UDP echo on 198.18.0.2:7")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(1.0)
            for _ in range(5):  # UDP: a datagram sent as the link comes up may be lost
                udp.sendto(b"datagram", (STACK, 7))
                try:
                    reply = udp.recvfrom(100)
                    break
                except TimeoutError:
                    continue
            else:
                raise AssertionError("no echo in 5 tries")
        assert reply == (b"datagram", (STACK, 7))
    finally:
        await interrupt(process)


@pytest.mark.tun
async def test_http_client_on_a_tun(netns: Namespace) -> None:
    """As its docstring says: a kernel server on every address answers on 198.18.0.1."""

    async def page(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"6\r\nkernel\r\n7\r\n answer\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with await asyncio.start_server(page, "0.0.0.0", 8000):
        code, out, err = await run_example("http_client.py", "--tun")
    assert code == 0, err
    assert out.splitlines()[0] == "status: 200"
    assert "kernel answer" in out

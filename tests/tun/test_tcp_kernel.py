"""TCP between the Linux kernel and the stack over a real TUN, each test in its own namespace.

The kernel's own TCP is the peer: its clients and servers must complete every
transfer byte-exact, and a clean run must leave the kernel's counters free of
retransmissions and resets.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aionetstack import Stack, TunLink
from aionetstack.testing.netns import Namespace

pytestmark = pytest.mark.tun

KERNEL = "198.18.0.1"
STACK = "198.18.0.2"
PEER_SCRIPT = Path(__file__).with_name("kernel_peer.py")


@pytest.fixture(params=[False, True], ids=["plain", "offload"])
async def stack(netns: Namespace, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    """The stack on a TUN, without offloads and with them (partial checksums, TSO/GRO)."""
    link = TunLink("aionst0", kernel_address=f"{KERNEL}/24", offload=request.param)
    async with Stack(link, address=f"{STACK}/24") as s:
        yield s


#: The kernel counters a clean run must leave unchanged, and the one it may not:
#: a tail-loss probe (RFC 8985 §7) fires when an ACK is later than 2*SRTT + 2 ms,
#: which over a TUN only means the stack's process was not scheduled in time
#: (seen under CI load); it is counted in TcpRetransSegs without any loss.
CLEAN = ("TcpRetransSegs", "TcpOutRsts", "TcpEstabResets", "TcpExtTCPLossProbes")


def assert_clean(before: dict[str, int], after: dict[str, int]) -> None:
    """No retransmission but tail-loss probes, no reset."""
    delta = {name: after[name] - before[name] for name in CLEAN}
    probes = delta.pop("TcpExtTCPLossProbes")
    # A probe sends new data when it can (then it is no retransmission at all).
    delta["TcpRetransSegs"] = max(0, delta["TcpRetransSegs"] - probes)
    assert delta == dict.fromkeys(delta, 0), f"kernel counters moved: {delta} (+{probes} TLP)"
    assert probes <= 3, f"{probes} tail-loss probes: the stack's ACKs are late"


def kernel_counters(*names: str) -> dict[str, int]:
    """The namespace's kernel TCP counters (``nstat -az``)."""
    output = subprocess.run(
        ["nstat", "-az", *names], capture_output=True, text=True, check=True
    ).stdout
    values = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in names:
            values[parts[0]] = int(parts[1])
    assert set(values) == set(names), output
    return values


async def run_peer(*args: str, timeout: float = 120) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(PEER_SCRIPT), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1 << 20):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_kernel_client_echoes_100_megabytes_byte_exact(stack: Stack) -> None:
    server = await stack.start_server(echo_handler, None, 7)
    before = kernel_counters(*CLEAN)
    sent, received, count = (await run_peer("echo-client", STACK, "7", "100", "1")).split()
    assert int(count) == 100 * 1024 * 1024
    assert sent == received
    assert_clean(before, kernel_counters(*CLEAN))
    server.close()


async def test_stack_downloads_100_megabytes_from_kernel_http_server(
    stack: Stack, tmp_path: Path
) -> None:
    blob = tmp_path / "blob.bin"
    block = bytes(range(256)) * 4096
    with blob.open("wb") as handle:
        for index in range(100):
            handle.write(block[index:] + block[:index])
    expected = hashlib.sha256(blob.read_bytes()).hexdigest()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "http.server", "8080", "--bind", KERNEL, "--directory", str(tmp_path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        reader, writer = await connect_with_retry(stack, KERNEL, 8080)
        writer.write(b"GET /blob.bin HTTP/1.0\r\nHost: 198.18.0.1\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200"), head
        digest = hashlib.sha256()
        size = 0
        while chunk := await reader.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        writer.close()
        assert size == 100 * len(block)
        assert digest.hexdigest() == expected
    finally:
        server.terminate()
        await server.wait()


async def connect_with_retry(
    stack: Stack, host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The kernel-side server needs a moment to listen: retry refused connects, bounded."""
    for _ in range(100):
        try:
            return await stack.open_connection(host, port)
        except ConnectionRefusedError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"{host}:{port} never accepted")


async def upper_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = await reader.readline()
    writer.write(line.upper())
    await writer.drain()
    writer.close()


@pytest.mark.parametrize(("count", "concurrency"), [(1000, 1), (200, 200)])
async def test_many_kernel_connections_complete(stack: Stack, count: int, concurrency: int) -> None:
    server = await stack.start_server(upper_line, None, 9000, backlog=256)
    before = kernel_counters(*CLEAN)
    done = await run_peer("connect-many", STACK, "9000", str(count), str(concurrency))
    assert int(done) == count
    assert_clean(before, kernel_counters(*CLEAN))
    server.close()


async def test_stack_clients_to_kernel_server_sequential_and_concurrent(stack: Stack) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await upper_line(reader, writer)

    server = await asyncio.start_server(serve, KERNEL, 9100)

    async def one(number: int) -> bytes:
        reader, writer = await stack.open_connection(KERNEL, 9100)
        writer.write(b"x%d\n" % number)
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        return line

    assert [await one(n) for n in range(200)] == [b"X%d\n" % n for n in range(200)]
    results = await asyncio.gather(*(one(n) for n in range(200)))
    assert results == [b"X%d\n" % n for n in range(200)]
    server.close()
    await server.wait_closed()


async def test_half_close_from_the_kernel_side(stack: Stack) -> None:
    got_eof = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the kernel's FIN
        got_eof.set_result(data)
        writer.write(b"after your FIN: " + data)  # we may still send
        await writer.drain()
        writer.close()

    server = await stack.start_server(handle, None, 9200)
    reader, writer = await asyncio.open_connection(STACK, 9200)
    writer.write(b"question")
    writer.write_eof()
    assert await asyncio.wait_for(got_eof, 5) == b"question"
    assert await asyncio.wait_for(reader.read(), 5) == b"after your FIN: question"
    writer.close()
    server.close()


async def test_half_close_from_the_stack_side(stack: Stack) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        writer.write(data[::-1])
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, KERNEL, 9300)
    reader, writer = await stack.open_connection(KERNEL, 9300)
    writer.write(b"abcdef")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == b"fedcba"
    writer.close()
    server.close()
    await server.wait_closed()


async def test_refused_connection_raises_connection_refused(stack: Stack) -> None:
    with pytest.raises(ConnectionRefusedError):
        await stack.open_connection(KERNEL, 9)


async def test_kernel_connecting_to_a_closed_port_is_refused(stack: Stack) -> None:
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(asyncio.open_connection(STACK, 9), 5)


async def test_kernel_reset_surfaces_as_connection_reset(stack: Stack) -> None:
    listener = socket.socket()
    listener.bind((KERNEL, 9400))
    listener.listen()
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    accept_task = loop.create_task(loop.sock_accept(listener))
    reader, _writer = await stack.open_connection(KERNEL, 9400)
    connection, _ = await accept_task
    # SO_LINGER with a zero timeout makes close() send RST.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    connection.close()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 5)
    listener.close()


async def test_no_route_is_enetunreach(stack: Stack) -> None:
    with pytest.raises(OSError) as caught:
        await stack.open_connection("198.19.0.1", 80)
    assert caught.value.errno == errno.ENETUNREACH

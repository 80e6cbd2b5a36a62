"""TLS over the stack: ``ssl=`` both ways, ``start_tls`` upgrades, and a bad certificate.

Kernel-side peers are plain ``asyncio`` servers and clients on kernel sockets
in the test's namespace (same loop); on a memory link the peer stack plays them.
The certificate is self-signed for 198.18.0.1 and 198.18.0.2 and checked by
IP address (``check_hostname`` stays on).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import ssl
from typing import Any

import pytest

from aionetstack import Stack

KERNEL = "198.18.0.1"
STACK = "198.18.0.2"
PORT = 8443
PAYLOAD = random.Random(443).randbytes(4 * 1024 * 1024 + 17)


async def echo_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo everything, then close once the peer has half-closed."""
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def upgrading_echo(context: ssl.SSLContext) -> Any:
    """A STARTTLS-style handler: plain ``STARTTLS`` line, answer, upgrade, echo one line."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        assert line == b"STARTTLS\r\n"
        writer.write(b"OK go ahead\r\n")
        await writer.drain()
        await writer.start_tls(context)
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()

    return handle


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Send ``PAYLOAD`` while reading the echo; return what came back."""

    async def send() -> None:
        for start in range(0, len(PAYLOAD), 300_000):
            writer.write(PAYLOAD[start : start + 300_000])
            await writer.drain()
        # TLS transports cannot write_eof(): the reader counts bytes instead.

    sender = asyncio.ensure_future(send())
    received = await reader.readexactly(len(PAYLOAD))
    await sender
    writer.close()
    return received


@pytest.mark.tun
async def test_stack_client_to_kernel_tls_server(tun_stack: Stack, certificate: Any) -> None:
    server = await asyncio.start_server(
        echo_until_eof, KERNEL, PORT, ssl=certificate.server_context()
    )
    async with server:
        reader, writer = await tun_stack.open_connection(
            KERNEL, PORT, ssl=certificate.client_context()
        )
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
        assert writer.get_extra_info("peername") == (KERNEL, PORT)
        received = await exchange(reader, writer)
    assert hashlib.sha256(received).digest() == hashlib.sha256(PAYLOAD).digest()


@pytest.mark.tun
async def test_kernel_client_to_stack_tls_server(tun_stack: Stack, certificate: Any) -> None:
    server = await tun_stack.start_server(
        echo_until_eof, STACK, PORT, ssl=certificate.server_context()
    )
    reader, writer = await asyncio.open_connection(STACK, PORT, ssl=certificate.client_context())
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
    received = await exchange(reader, writer)
    assert received == PAYLOAD
    server.close()


@pytest.mark.tun
async def test_stack_client_upgrades_with_start_tls(tun_stack: Stack, certificate: Any) -> None:
    server = await asyncio.start_server(upgrading_echo(certificate.server_context()), KERNEL, PORT)
    async with server:
        reader, writer = await tun_stack.open_connection(KERNEL, PORT)
        writer.write(b"STARTTLS\r\n")
        assert await reader.readline() == b"OK go ahead\r\n"
        await writer.start_tls(certificate.client_context())
        writer.write(b"now encrypted\r\n")
        assert await reader.readline() == b"NOW ENCRYPTED\r\n"
        assert writer.get_extra_info("ssl_object") is not None
        writer.close()


@pytest.mark.tun
async def test_untrusted_certificate_fails_cleanly_and_the_stack_carries_on(
    tun_stack: Stack, certificate: Any
) -> None:
    server = await asyncio.start_server(
        echo_until_eof, KERNEL, PORT, ssl=certificate.server_context()
    )
    async with server:
        with pytest.raises(ssl.SSLCertVerificationError):
            await tun_stack.open_connection(KERNEL, PORT, ssl=ssl.create_default_context())
        reader, writer = await tun_stack.open_connection(
            KERNEL, PORT, ssl=certificate.client_context()
        )
        writer.write(b"still fine")
        assert await reader.readexactly(10) == b"still fine"
        writer.close()


@pytest.mark.parametrize("server_side", ["stack", "peer"])
async def test_tls_echo_over_memory(
    memory_stacks: tuple[Stack, Stack], certificate: Any, server_side: str
) -> None:
    stack, peer = memory_stacks
    listener, dialler = (stack, peer) if server_side == "stack" else (peer, stack)
    address = STACK if server_side == "stack" else KERNEL
    server = await listener.start_server(
        echo_until_eof, address, PORT, ssl=certificate.server_context()
    )
    reader, writer = await dialler.open_connection(address, PORT, ssl=certificate.client_context())
    assert await exchange(reader, writer) == PAYLOAD
    server.close()


async def test_start_tls_upgrade_over_memory(
    memory_stacks: tuple[Stack, Stack], certificate: Any
) -> None:
    stack, peer = memory_stacks
    server = await peer.start_server(upgrading_echo(certificate.server_context()), KERNEL, PORT)
    reader, writer = await stack.open_connection(KERNEL, PORT)
    writer.write(b"STARTTLS\r\n")
    assert await reader.readline() == b"OK go ahead\r\n"
    await writer.start_tls(certificate.client_context())
    writer.write(b"hello\r\n")
    assert await reader.readline() == b"HELLO\r\n"
    writer.close()
    server.close()

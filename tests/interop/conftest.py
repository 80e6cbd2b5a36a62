"""Fixtures for running real asyncio libraries on the stack.

* ``tun_stack``: the stack on a TUN (198.18.0.2) inside the test's own network
  namespace; the kernel side is 198.18.0.1, where kernel-side peers (curl, an
  ``asyncio`` server, an SSH server) live.
* ``memory_stacks``: ``(stack, peer)`` joined by a memory link: the same
  scenarios without root, the peer stack (198.18.0.1) playing the kernel.
* ``certificate``: a self-signed certificate for both addresses, made at test time.
* ``stack_httpx``: builds an ``httpx.AsyncClient`` whose connections are dialled
  through a given stack (an httpcore network backend over ``open_connection``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aionetstack import MemoryLink, Stack
from aionetstack.testing.netns import Namespace

KERNEL = "198.18.0.1"
STACK = "198.18.0.2"


@pytest.fixture
async def tun_stack(netns: Namespace) -> AsyncIterator[Stack]:
    """The stack at 198.18.0.2 on a fresh TUN whose kernel side is 198.18.0.1/24."""
    from aionetstack import TunLink

    link = TunLink("aionsi0", kernel_address=f"{KERNEL}/24")
    async with Stack(link, address=f"{STACK}/24", seed=1) as stack:
        yield stack


@pytest.fixture
async def memory_stacks() -> AsyncIterator[tuple[Stack, Stack]]:
    """``(stack, peer)``: 198.18.0.2 and 198.18.0.1 on one memory link."""
    ours, theirs = MemoryLink.pair(mtu=1500)
    async with (
        Stack(theirs, address=f"{KERNEL}/24", seed=2) as peer,
        Stack(ours, address=f"{STACK}/24", seed=1) as stack,
    ):
        yield stack, peer


@dataclass(frozen=True)
class Certificate:
    """A self-signed CA certificate valid for 198.18.0.1 and 198.18.0.2."""

    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Verifies the peer against this certificate, host name (IP SAN) included."""
        return ssl.create_default_context(cafile=str(self.cert_path))


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    pytest.importorskip("cryptography", reason="the certificate is made with 'cryptography'")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aionetstack interop")])
    now = datetime.datetime.now(datetime.UTC)
    addresses = [x509.IPAddress(ipaddress.ip_address(a)) for a in (KERNEL, STACK)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(addresses), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_path, key_path)


# -- httpx through the stack ----------------------------------------------------------


class StackNetworkStream:
    """An ``httpcore.AsyncNetworkStream`` over an asyncio stream pair from the stack."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        import httpcore

        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as error:
            raise httpcore.ReadTimeout(str(error)) from error
        except OSError as error:
            raise httpcore.ReadError(str(error)) from error

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        import httpcore

        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as error:
            raise httpcore.WriteTimeout(str(error)) from error
        except OSError as error:
            raise httpcore.WriteError(str(error)) from error

    async def aclose(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass  # a reset while closing is not the caller's problem

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> StackNetworkStream:
        import httpcore

        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as error:
            raise httpcore.ConnectTimeout(str(error)) from error
        except (OSError, ssl.SSLError) as error:
            raise httpcore.ConnectError(str(error)) from error
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Asked of idle keep-alive connections: readable then means the
            # server has closed it (anything else would break HTTP/1.1).
            return self._reader.at_eof()
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        return self._writer.get_extra_info(info)


class StackNetworkBackend:
    """An ``httpcore.AsyncNetworkBackend`` that dials with ``stack.open_connection``."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> StackNetworkStream:
        import httpcore

        local = None if local_address is None else (local_address, 0)
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await self._stack.open_connection(host, port, local_addr=local)
        except TimeoutError as error:
            raise httpcore.ConnectTimeout(str(error)) from error
        except OSError as error:
            raise httpcore.ConnectError(str(error)) from error
        return StackNetworkStream(reader, writer)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> StackNetworkStream:
        raise NotImplementedError("the stack has no UNIX sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@pytest.fixture
def stack_httpx() -> Iterator[Callable[..., Any]]:
    """``make(stack, **client_options) -> httpx.AsyncClient`` dialling through ``stack``."""
    httpx = pytest.importorskip("httpx", reason="httpx is not installed")
    httpcore = pytest.importorskip("httpcore", reason="httpcore is not installed")

    @contextlib.contextmanager
    def httpx_errors() -> Iterator[None]:
        """httpcore's exceptions as httpx's (the same names), as httpx's own transport does."""
        try:
            yield
        except httpcore.TimeoutException as error:
            raise getattr(httpx, type(error).__name__)(str(error)) from error
        except (httpcore.NetworkError, httpcore.ProtocolError) as error:
            raise getattr(httpx, type(error).__name__)(str(error)) from error

    class StackTransport(httpx.AsyncBaseTransport):  # type: ignore[misc,name-defined]
        """httpx's own transport shape: an httpcore pool, with our network backend."""

        def __init__(self, stack: Stack, verify: ssl.SSLContext | None) -> None:
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=verify, network_backend=StackNetworkBackend(stack)
            )

        async def handle_async_request(self, request: Any) -> Any:
            with httpx_errors():
                response = await self._pool.handle_async_request(
                    httpcore.Request(
                        method=request.method,
                        url=httpcore.URL(
                            scheme=request.url.raw_scheme,
                            host=request.url.raw_host,
                            port=request.url.port,
                            target=request.url.raw_path,
                        ),
                        headers=request.headers.raw,
                        content=request.stream,
                        extensions=request.extensions,
                    )
                )
            return httpx.Response(
                status_code=response.status,
                headers=response.headers,
                stream=_ResponseStream(response),
                extensions=response.extensions,
            )

        async def aclose(self) -> None:
            await self._pool.aclose()

    class _ResponseStream(httpx.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, response: Any) -> None:
            self._response = response

        async def __aiter__(self) -> AsyncIterator[bytes]:
            with httpx_errors():
                async for part in self._response.aiter_stream():
                    yield part

        async def aclose(self) -> None:
            await self._response.aclose()

    def make(stack: Stack, *, verify: ssl.SSLContext | None = None, **options: Any) -> Any:
        return httpx.AsyncClient(transport=StackTransport(stack, verify), **options)

    yield make

"""TLS over the stack: ``ssl=`` on create_connection/create_server and ``loop.start_tls``."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from aionetstack import Stack

NEAR = "198.18.0.2"
FAR = "198.18.0.1"
WAIT = 5.0


def _write_cert_with_cryptography(cert: Path, key: Path) -> bool:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return False
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aionetstack test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(FAR))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return True


def _write_cert_with_openssl(cert: Path, key: Path) -> bool:
    if shutil.which("openssl") is None:
        return False
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=aionetstack test", "-addext", f"subjectAltName=IP:{FAR}"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return True


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for FAR, made now: ``(cert.pem, key.pem)``."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not (_write_cert_with_cryptography(cert, key) or _write_cert_with_openssl(cert, key)):
        pytest.skip("neither the cryptography package nor the openssl command is available")
    return cert, key


@pytest.fixture
def contexts(certificate: tuple[Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """``(client, server)`` contexts: the client trusts exactly our certificate."""
    cert, key = certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return client, server


async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()


async def test_ssl_parameters_of_streams(
    stacks: tuple[Stack, Stack], contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    near, far = stacks
    client_context, server_context = contexts
    server = await far.start_server(upper, FAR, 8443, ssl=server_context, limit=2**20)
    reader, writer = await asyncio.wait_for(
        near.open_connection(FAR, 8443, ssl=client_context, limit=2**20), WAIT
    )
    assert writer.get_extra_info("sslcontext") is client_context
    assert writer.get_extra_info("peercert") is not None
    assert writer.get_extra_info("peername") == (FAR, 8443)
    big = b"a" * 200_000 + b"\n"
    writer.write(b"hello tls\n" + big)
    assert await asyncio.wait_for(reader.readline(), WAIT) == b"HELLO TLS\n"
    assert await asyncio.wait_for(reader.readline(), WAIT) == big.upper()
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), WAIT)
    server.close()


async def test_certificate_mismatch_fails_the_handshake(
    stacks: tuple[Stack, Stack], contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    near, far = stacks
    _, server_context = contexts
    await far.start_server(upper, FAR, 8444, ssl=server_context)
    untrusting = ssl.create_default_context()  # the system store does not know our cert
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.wait_for(near.open_connection(FAR, 8444, ssl=untrusting), WAIT)
    # The server keeps working for a client that trusts it.
    client_context, _ = contexts
    reader, writer = await asyncio.wait_for(
        near.open_connection(FAR, 8444, ssl=client_context), WAIT
    )
    writer.write(b"ok\n")
    assert await asyncio.wait_for(reader.readline(), WAIT) == b"OK\n"
    writer.close()


async def test_start_tls_upgrades_a_plain_connection(
    stacks: tuple[Stack, Stack], contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """STARTTLS: plain text first, then ``loop.start_tls`` on our transport, on both sides."""
    near, far = stacks
    client_context, server_context = contexts
    loop = asyncio.get_running_loop()
    upgraded: asyncio.Future[bytes] = loop.create_future()

    async def starttls_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"GO\n")
        await writer.drain()
        await writer.start_tls(server_context)
        upgraded.set_result(await reader.readline())
        writer.write(b"secret received\n")
        await writer.drain()
        writer.close()

    await far.start_server(starttls_server, FAR, 8445)
    reader, writer = await near.open_connection(FAR, 8445)
    writer.write(b"STARTTLS\n")
    assert await asyncio.wait_for(reader.readline(), WAIT) == b"GO\n"
    await asyncio.wait_for(writer.start_tls(client_context, server_hostname=FAR), WAIT)
    assert writer.get_extra_info("ssl_object") is not None
    writer.write(b"the secret\n")
    assert await asyncio.wait_for(upgraded, WAIT) == b"the secret\n"
    assert await asyncio.wait_for(reader.readline(), WAIT) == b"secret received\n"
    writer.close()


async def test_loop_start_tls_on_a_raw_transport(
    stacks: tuple[Stack, Stack], contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    near, far = stacks
    client_context, server_context = contexts
    await far.start_server(upper, FAR, 8446, ssl=server_context)
    transport, protocol = await near.create_connection(asyncio.Protocol, FAR, 8446)
    loop = asyncio.get_running_loop()
    tls_transport = await asyncio.wait_for(
        loop.start_tls(transport, protocol, client_context, server_hostname=FAR), WAIT
    )
    assert tls_transport is not None
    assert tls_transport.get_extra_info("cipher") is not None
    tls_transport.close()

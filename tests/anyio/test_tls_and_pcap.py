"""TLS through anyio's TLSStream over the stack, and ``pcap=`` on an AnyioStack."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.streams.tls import TLSListener, TLSStream

from aionetstack import MemoryLink
from aionetstack.anyio import AnyioStack

from .conftest import FAR, NEAR, Stacks, with_stacks

pytestmark = pytest.mark.anyio

WAIT = 10.0


def certificate(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) for a self-signed certificate naming FAR."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aionetstack anyio")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(FAR))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


@with_stacks
async def test_connect_tcp_with_tls_to_a_tls_listener(stacks: Stacks, tmp_path: Path) -> None:
    near, far = stacks
    server_context, client_context = certificate(tmp_path)
    listener = TLSListener(await far.create_tcp_listener(local_port=7443), server_context)

    async def upper(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            await stream.send((await stream.receive()).upper())

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, upper, group)
            stream = await near.connect_tcp(FAR, 7443, ssl_context=client_context)
            assert isinstance(stream, TLSStream)
            await stream.send(b"over tls")
            assert await stream.receive() == b"OVER TLS"
            await stream.aclose()
            group.cancel_scope.cancel()
    await listener.aclose()


async def test_pcap_records_both_directions(tmp_path: Path) -> None:
    dpkt = pytest.importorskip("dpkt")
    trace = tmp_path / "trace.pcap"
    near_link, far_link = MemoryLink.pair()
    async with (
        AnyioStack(far_link, address=f"{FAR}/24", seed=2),
        AnyioStack(near_link, address=f"{NEAR}/24", seed=1, pcap=trace) as near,
    ):
        await near.ping(FAR, timeout=WAIT)
    with trace.open("rb") as handle:
        packets = [dpkt.ip.IP(data) for _, data in dpkt.pcap.Reader(handle)]
    sources = {str(ipaddress.ip_address(packet.src)) for packet in packets}
    assert sources == {NEAR, FAR}  # the request and the reply

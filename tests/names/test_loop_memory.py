"""``loop_factory`` over a memory link: unmodified aiohttp and asyncio code, the server
on a peer stack that runs on the same loop.

The loop sends the kernel only loopback traffic; each test still runs in a network
namespace of its own (the ``netns`` fixture), so that a regression that sent
198.18.0.0/15 traffic to the kernel could reach nothing."""

from __future__ import annotations

import asyncio
import datetime
import errno
import socket
import ssl
from typing import Any

import pytest

import aionetstack
from aionetstack import MemoryLink, Stack
from aionetstack.aio.loop import StackEventLoop, default_dial_policy
from aionetstack.testing.netns import Namespace

from .dns_server import Zone, serve_on_stack

aiohttp = pytest.importorskip("aiohttp")
web = pytest.importorskip("aiohttp.web")

FAR = "198.18.0.1"
NEAR = "198.18.0.2"


def run_with_peer(main: Any) -> Any:
    """Run ``main(far_stack)`` on a loop_factory loop; the far stack shares the loop."""
    near_link, far_link = MemoryLink.pair(mtu=1500)
    factory = aionetstack.loop_factory(near_link, address=f"{NEAR}/24", nameservers=[FAR],
                                       hosts={"hosts.test": FAR}, seed=1)  # fmt: skip

    async def wrapper() -> Any:
        async with Stack(far_link, address=f"{FAR}/24", seed=2) as far:
            zone = Zone(addresses={"web.test": [FAR]})
            await serve_on_stack(far, zone, FAR)
            return await main(far)

    # asyncio.run(main(), loop_factory=factory) on Python 3.12+; asyncio.Runner on 3.11 too.
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(wrapper())


def test_asyncio_open_connection_and_start_server_by_name(netns: Namespace) -> None:
    async def main(far: Stack) -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()

        await far.start_server(echo, FAR, 7)
        reader, writer = await asyncio.open_connection("web.test", 7)
        assert writer.get_extra_info("peername") == (FAR, 7)
        writer.write(b"ping")
        assert await reader.read(100) == b"ping"
        writer.close()
        loop = asyncio.get_running_loop()
        assert isinstance(loop, StackEventLoop)
        names = loop.stack.statistics()["names"]
        assert (names["udp_sent"], names["answers"]) == (2, 2)  # A, and AAAA (NODATA)
        assert names["cache_answers"] == 2  # create_connection found what the policy check asked

    run_with_peer(main)


def test_aiohttp_client_get_and_post_with_keep_alive_by_name(netns: Namespace) -> None:
    async def main(far: Stack) -> None:
        peers: list[tuple[str, int]] = []

        async def hello(request: Any) -> Any:
            peers.append(request.transport.get_extra_info("peername"))
            body = await request.read()
            return web.Response(text=f"{request.method} {len(body)}")

        app = web.Application()
        app.router.add_route("*", "/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        server = await far.create_server(runner.server, FAR, 8080)
        async with aiohttp.ClientSession() as session:
            async with session.get("http://web.test:8080/") as response:
                assert await response.text() == "GET 0"
            async with session.post("http://web.test:8080/", data=b"x" * 5000) as response:
                assert await response.text() == "POST 5000"
        assert len(peers) == 2 and peers[0] == peers[1]  # one connection, kept alive
        assert peers[0][0] == NEAR
        server.close()
        await runner.cleanup()

    run_with_peer(main)


def test_loopback_stays_on_the_kernel(netns: Namespace) -> None:
    async def main(far: Stack) -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        assert isinstance(server, asyncio.Server)  # a kernel server
        _, writer = await asyncio.open_connection("localhost", port)
        assert writer.get_extra_info("socket").fileno() >= 0  # a kernel socket
        writer.close()
        server.close()
        assert await asyncio.get_running_loop().getaddrinfo(
            "localhost", 80, family=socket.AF_INET, type=socket.SOCK_STREAM
        ) == [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))]

    run_with_peer(main)


def test_sock_connect_then_sock_recv_and_sendall(netns: Namespace) -> None:
    async def main(far: Stack) -> None:
        async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write((await reader.read(100)).upper())
            await writer.drain()
            writer.close()

        await far.start_server(upper, FAR, 9)
        loop = asyncio.get_running_loop()
        with socket.socket() as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, (FAR, 9))
            await loop.sock_sendall(sock, b"quiet")
            assert await loop.sock_recv(sock, 100) == b"QUIET"
            assert await loop.sock_recv(sock, 100) == b""

    run_with_peer(main)


def test_the_stack_closes_with_the_loop() -> None:
    near_link, _ = MemoryLink.pair(mtu=1500)
    factory = aionetstack.loop_factory(near_link, address=f"{NEAR}/24")

    async def first_use() -> Stack:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, StackEventLoop)
        return loop.stack

    with asyncio.Runner(loop_factory=factory) as runner:
        stack = runner.run(first_use())
        assert not stack.closed
    assert stack.closed


def test_the_default_dial_policy() -> None:
    assert default_dial_policy("198.18.0.1") and default_dial_policy("2001:2::1")
    assert not default_dial_policy("127.0.0.1") and not default_dial_policy("::1")
    assert not default_dial_policy("0.0.0.0") and not default_dial_policy("::ffff:127.0.0.1")


def test_anyio_listener_and_connect_tcp(netns: Namespace) -> None:
    anyio = pytest.importorskip("anyio")

    async def main(far: Stack) -> None:
        accepted: list[tuple[str, int]] = []

        async def handle(stream: Any) -> None:
            async with stream:
                accepted.append(stream.extra(anyio.abc.SocketAttribute.remote_address))
                await stream.send((await stream.receive()).upper())

        # anyio makes kernel sockets for 0.0.0.0 and :: and accepts with loop.sock_accept:
        # the loop serves the port on the stack.
        listener = await anyio.create_tcp_listener(local_port=7007)
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, handle)
            # The stack listens from the first sock_accept on (it cannot see listen()).
            await anyio.wait_all_tasks_blocked()
            reader, writer = await far.open_connection(NEAR, 7007)
            writer.write(b"anyio")
            assert await reader.read(100) == b"ANYIO"
            writer.close()
            # anyio's client: loop.create_connection, by name.
            async with await anyio.connect_tcp("web.test", 7008) as stream:
                await stream.send(b"x")
                assert await stream.receive() == b"X!"
            group.cancel_scope.cancel()
        assert accepted and accepted[0][0] == FAR

    async def with_upper_server(far: Stack) -> None:
        async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write((await reader.read(100)).upper() + b"!")
            await writer.drain()
            writer.close()

        await far.start_server(upper, FAR, 7008)
        await main(far)

    run_with_peer(with_upper_server)


def tls_contexts(tmp_path: Any) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for web.test: (server context, client context)."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("web.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return server, ssl.create_default_context(cafile=str(cert_path))


def test_aiohttp_https_by_name_through_a_parked_socket(netns: Namespace, tmp_path: Any) -> None:
    server_context, client_context = tls_contexts(tmp_path)

    async def main(far: Stack) -> None:
        async def hello(request: Any) -> Any:
            return web.Response(text=f"secure {request.remote}")

        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        await far.create_server(runner.server, FAR, 8443, ssl=server_context)
        connector = aiohttp.TCPConnector(ssl=client_context)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get("https://web.test:8443/") as response,
        ):
            assert await response.text() == f"secure {NEAR}"
        await runner.cleanup()

    run_with_peer(main)


def test_datagram_endpoints_through_the_loop_dnspython_asyncquery(netns: Namespace) -> None:
    """dnspython's own asyncio client (loop.create_datagram_endpoint) asks the peer's server."""
    import dns.asyncquery
    import dns.message

    async def main(far: Stack) -> None:
        query = dns.message.make_query("web.test", "A")
        response = await dns.asyncquery.udp(query, FAR, timeout=5)
        assert [rrset.to_text() for rrset in response.answer] == ["web.test. 300 IN A " + FAR]
        loop = asyncio.get_running_loop()
        assert isinstance(loop, StackEventLoop)
        assert loop.stack.statistics()["link"]["sent_packets"] >= 1  # through the stack
        assert await loop.getnameinfo((FAR, 80)) == ("hosts.test", "http")
        # AI_ADDRCONFIG asks about the stack's addresses (this namespace's kernel has only lo).
        for host in ("web.test", FAR):
            infos = await loop.getaddrinfo(host, 80, type=socket.SOCK_STREAM,
                                           flags=socket.AI_ADDRCONFIG)  # fmt: skip
            assert infos == [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (FAR, 80))]

    run_with_peer(main)


def test_a_dial_policy_keeps_destinations_on_the_kernel(netns: Namespace) -> None:
    """Nothing through the stack: 198.18.0.1 goes to the namespace's kernel, which has no
    route to it (so nothing can leave)."""
    near_link, _ = MemoryLink.pair(mtu=1500)
    factory = aionetstack.loop_factory(near_link, address=f"{NEAR}/24",
                                       hosts={"web.test": FAR}, dial_policy=lambda a: False)

    async def main() -> None:
        with pytest.raises(OSError) as caught:
            await asyncio.open_connection("web.test", 7)
        assert caught.value.errno == errno.ENETUNREACH  # the kernel's answer, not the stack's
        loop = asyncio.get_running_loop()
        assert isinstance(loop, StackEventLoop)
        assert loop.stack.statistics()["link"]["sent_packets"] == 0

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())

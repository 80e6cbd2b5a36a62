"""Intercept mode against the real kernel over a TUN, each test in its own namespace.

Clients in the namespace (curl, blocking sockets) dial addresses in
198.19.0.0/16, which the namespace routes into the TUN; the stack intercepts
them and relays with the proxy's ``--direct`` logic (``SO_MARK`` 1, see
conftest.py) to kernel servers that see the very address the client dialled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import hashlib
import random
import shutil
import socket
import struct
import subprocess
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aionetstack import InterceptConfig, Stack, StackConfig, TcpConfig, TcpFlow, TunLink, UdpFlow
from aionetstack.proxy import DirectUpstream, Relay
from aionetstack.testing.kernel_servers import (
    KERNEL,
    MARK,
    STACK,
    TUN,
    KernelServers,
    route_intercepted,
)
from aionetstack.testing.netns import Namespace
from aionetstack.wire.tcp import SYN, build_tcp

pytestmark = pytest.mark.tun


class Recording(Relay):
    """The relay, remembering the destinations its flows were intercepted for."""

    def __init__(self, upstream: DirectUpstream) -> None:
        super().__init__(upstream)
        self.tcp_destinations: list[tuple[str, int]] = []
        self.udp_destinations: list[tuple[str, int]] = []
        #: While set: every flow waits on it first, as behind an upstream that never answers.
        self.hold: asyncio.Event | None = None

    async def on_tcp(self, flow: TcpFlow) -> None:
        if self.hold is not None:
            await self.hold.wait()
            if flow.state != "pending":
                return  # timed out meanwhile: the client was already reset
        self.tcp_destinations.append(flow.destination)
        await super().on_tcp(flow)

    async def on_udp(self, flow: UdpFlow) -> None:
        self.udp_destinations.append(flow.destination)
        await super().on_udp(flow)


@pytest.fixture
async def proxy(
    netns: Namespace, kernel_servers: KernelServers
) -> AsyncIterator[tuple[Stack, Recording]]:
    link = TunLink(TUN, kernel_address=f"{KERNEL}/24", offload=True)
    config = StackConfig(
        tcp=TcpConfig(msl=0.1),
        intercept=InterceptConfig(pending_timeout=1.0, max_pending_tcp=256),
    )
    async with Stack(link, address=f"{STACK}/24", config=config) as stack:
        route_intercepted()
        relay = Recording(DirectUpstream(mark=MARK, connect_timeout=2.0))
        await stack.intercept(tcp=relay.on_tcp, udp=relay.on_udp, networks=["198.19.0.0/16"])
        yield stack, relay


async def curl(*args: str) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "30", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out, err


async def wait_until_empty(stack: Stack, relay: Relay) -> dict[str, int]:
    """Poll (bounded) until the intercept and TCP tables are empty; return the counters."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        stats = stack.statistics()
        intercept = stats["intercept"]
        empty = (
            intercept["tcp_pending_current"] == 0
            and intercept["udp_flows_current"] == 0
            and stats["tcp"]["connections_current"] == 0
            and relay.stats.tcp_active == 0
        )
        if empty or loop.time() > deadline:
            assert empty, (stats["tcp"]["connections_current"], intercept, relay.stats)
            return intercept
        await asyncio.sleep(0.1)


async def test_curl_reaches_kernel_server_byte_exact_at_the_dialled_address(
    proxy: tuple[Stack, Recording], kernel_servers: KernelServers, tmp_path: Path
) -> None:
    stack, relay = proxy
    out = tmp_path / "body"
    url = f"http://198.19.1.2:{kernel_servers.http_port}/"
    code, headers, err = await curl("-D", "-", "-o", str(out), url)
    assert code == 0, err
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(kernel_servers.body).digest()
    assert f"X-Reached: 198.19.1.2:{kernel_servers.http_port}".encode() in headers
    assert relay.tcp_destinations == [("198.19.1.2", kernel_servers.http_port)]
    assert relay.stats.bytes_down >= len(kernel_servers.body)
    await wait_until_empty(stack, relay)


async def test_refused_port_gives_curl_connection_refused_at_once(
    proxy: tuple[Stack, Recording], kernel_servers: KernelServers
) -> None:
    stack, relay = proxy
    closed = socket.socket()
    closed.bind(("0.0.0.0", 0))
    port = closed.getsockname()[1]
    closed.close()  # a port nothing listens on
    code, _, err = await curl(f"http://198.19.3.4:{port}/")
    assert code == 7, err  # curl: "Failed to connect" (connection refused)
    assert b"refused" in err.lower() or b"couldn't connect" in err.lower(), err
    intercept = stack.statistics()["intercept"]
    # At once: the first SYN was answered (no retransmission reached the stack).
    assert intercept.get("tcp_flows_rejected") == 1, (intercept, relay.stats)
    assert intercept.get("tcp_syn_retransmits_absorbed", 0) == 0
    assert relay.stats.tcp_refused == 1


async def test_udp_client_datagrams_are_relayed_and_answered_from_the_destination(
    proxy: tuple[Stack, Recording], kernel_servers: KernelServers
) -> None:
    _, relay = proxy
    port = kernel_servers.udp_port
    loop = asyncio.get_running_loop()

    def exchange() -> list[tuple[bytes, tuple[str, int]]]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            answers = []
            for index in range(5):
                client.sendto(b"datagram %d" % index, ("198.19.9.9", port))
                answers.append(client.recvfrom(2048))
            return answers

    answers = await loop.run_in_executor(None, exchange)
    assert answers == [(b"datagram %d" % i, ("198.19.9.9", port)) for i in range(5)]
    assert relay.udp_destinations == [("198.19.9.9", port)]
    assert kernel_servers.udp_seen == [("198.19.9.9", port)] * 5


async def test_a_thousand_flows_churned_leave_nothing_behind(
    proxy: tuple[Stack, Recording], kernel_servers: KernelServers
) -> None:
    stack, relay = proxy
    port = kernel_servers.echo_port
    rng = random.Random(1000)
    targets = [(f"198.19.{rng.randrange(256)}.{rng.randrange(1, 255)}", port) for _ in range(1000)]

    def one(target: tuple[str, int]) -> bytes:
        with socket.create_connection(target, timeout=20) as client:
            message = f"hello {target}".encode()
            client.sendall(message)
            client.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := client.recv(4096):
                data += chunk
            assert data == message
            return data

    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = await asyncio.gather(*(loop.run_in_executor(pool, one, t) for t in targets))
    assert len(results) == 1000
    intercept = await wait_until_empty(stack, relay)
    assert intercept["tcp_flows_accepted"] == 1000
    assert sorted(relay.tcp_destinations) == sorted(targets)
    assert relay.stats.tcp_relayed == 1000


def _raw_syns(count: int, seed: int) -> list[tuple[bytes, str]]:
    """``count`` SYNs from the kernel side to random addresses and ports in 198.19/16."""
    rng = random.Random(seed)
    source = socket.inet_aton(KERNEL)
    packets = []
    for _ in range(count):
        destination = bytes([198, 19, rng.randrange(256), rng.randrange(1, 255)])
        segment = build_tcp(
            rng.randrange(1024, 65536), rng.randrange(1, 65536), rng.getrandbits(32), 0, SYN,
            65535, source=source, destination=destination,
        )  # fmt: skip
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 0, 0, 64, 6, 0, source, destination
        )
        packets.append((header + segment, socket.inet_ntoa(destination)))
    return packets


async def test_syn_flood_keeps_the_pending_bound_and_the_proxy_serves_after(
    proxy: tuple[Stack, Recording], kernel_servers: KernelServers, tmp_path: Path
) -> None:
    """Twice 5,000 SYNs from a raw socket to random addresses and ports while the
    relay's upstream does not answer: the pending table stays at its bound (256) and
    drops the rest, the held SYNs time out, the second flood leaves Python's memory
    where the first left it, and the proxy serves afterwards."""
    stack, relay = proxy

    async def flood(seed: int) -> int:
        """One flood; returns the highest pending count seen."""
        relay.hold = asyncio.Event()
        high_water = 0

        def sample() -> None:
            nonlocal high_water
            current = stack.statistics()["intercept"]["tcp_pending_current"]
            high_water = max(high_water, current)

        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
            raw.setblocking(False)
            for index, (packet, destination) in enumerate(_raw_syns(5000, seed)):
                while True:
                    try:
                        raw.sendto(packet, (destination, 0))
                        break
                    except BlockingIOError:
                        await asyncio.sleep(0.001)
                if index % 100 == 99:
                    await asyncio.sleep(0)  # let the stack read the TUN
                    sample()
        await asyncio.sleep(0.1)
        sample()
        # The held SYNs time out (1 s) and are reset; then the upstream "answers".
        await wait_until_empty(stack, relay)
        relay.hold.set()
        relay.hold = None
        for _ in range(100):  # bounded: let the released handlers return
            await asyncio.sleep(0)
        return high_water

    tracemalloc.start()
    try:
        first = await flood(seed=5)
        gc.collect()  # flows and their faces form reference cycles
        middle = tracemalloc.get_traced_memory()[0]
        second = await flood(seed=6)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert first == second == 256
    intercept = stack.statistics()["intercept"]
    assert intercept["tcp_syns_dropped_pending_full"] > 5000
    assert intercept["tcp_pending_timed_out"] == intercept["tcp_flows_intercepted"]
    # What may grow: hash tables keeping the capacity of their peak (the handler-task
    # set, asyncio's task registry, the bounded address cache), ~260 KB measured.
    assert after - middle < 500_000, after - middle
    out = tmp_path / "body"
    code, _, err = await curl("-o", str(out), f"http://198.19.1.2:{kernel_servers.http_port}/")
    assert code == 0, err
    assert out.read_bytes() == kernel_servers.body


async def test_own_dial_coming_back_is_refused_not_looped(netns: Namespace) -> None:
    """Without the fwmark rule the relay's upstream SYN re-enters the TUN: it is
    recognised as the relay's own and refused, and the client hears "refused"."""
    link = TunLink(TUN, kernel_address=f"{KERNEL}/24", offload=True)
    async with Stack(link, address=f"{STACK}/24") as stack:
        route_intercepted()
        relay = Relay(DirectUpstream(connect_timeout=2.0))  # no mark: upstream routes to the TUN
        await stack.intercept(tcp=relay.on_tcp, networks=["198.19.0.0/16"])
        code, _, err = await curl("http://198.19.1.1:80/")
        assert code == 7, err
        assert relay.stats.tcp_loops_refused == 1
        assert relay.stats.tcp_refused == 1


async def test_ipv6_connection_to_an_intercepted_address(netns: Namespace) -> None:
    """curl over IPv6 to an address in 2001:2:1::/48 routed into the TUN."""
    link = TunLink(TUN, kernel_address=f"{KERNEL}/24", offload=True)
    async with Stack(link, address=[f"{STACK}/24", "2001:2::2/64"]) as stack:
        for command in (
            ["ip", "-6", "addr", "add", "2001:2::1/64", "dev", TUN, "nodad"],
            ["ip", "-6", "route", "replace", "2001:2:1::/48", "dev", TUN],
        ):
            subprocess.run(command, check=True)
        seen: list[tuple[object, object]] = []

        async def on_tcp(flow: TcpFlow) -> None:
            reader, writer = await flow.accept()
            seen.append((flow.destination, writer.get_extra_info("sockname")[:2]))
            await reader.readuntil(b"\r\n\r\n")
            body = repr(flow.destination).encode()
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            writer.close()

        await stack.intercept(tcp=on_tcp, networks=["2001:2:1::/48"])
        code, out, err = await curl("-g", "http://[2001:2:1::5]:8080/")
        assert code == 0, err
        assert out == b"('2001:2:1::5', 8080)"
        assert seen == [(("2001:2:1::5", 8080), ("2001:2:1::5", 8080))]


async def test_ssh_through_the_intercept(proxy: tuple[Stack, Recording], tmp_path: Path) -> None:
    """OpenSSH's client reaches an SSH server (asyncssh on kernel sockets) at the
    address it dialled, through the relay."""
    asyncssh = pytest.importorskip("asyncssh")
    if shutil.which("ssh") is None:
        pytest.skip("no ssh client")
    _, relay = proxy
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path / "id_ed25519"
    client_key.write_private_key(str(key_file))
    key_file.chmod(0o600)

    def answer(process: Any) -> None:
        local = process.get_extra_info("sockname")
        process.stdout.write(f"{process.command} reached {local[0]}:{local[1]}\n")
        process.exit(0)

    server = await asyncssh.create_server(
        asyncssh.SSHServer, "0.0.0.0", 0, server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(
            client_key.export_public_key().decode()),
        process_factory=answer,
    )  # fmt: skip
    port = server.sockets[0].getsockname()[1]
    try:
        process = await asyncio.create_subprocess_exec(
            "ssh", "-i", str(key_file), "-p", str(port), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "tester@198.19.1.2", "hello",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        server.close()
        await server.wait_closed()
    assert process.returncode == 0, err
    assert out == f"hello reached 198.19.1.2:{port}\n".encode()
    assert relay.tcp_destinations == [("198.19.1.2", port)]


async def test_intercept_over_a_tap_link(netns: Namespace) -> None:
    """Over Ethernet the kernel routes the intercepted network via the stack's address
    (the stack answers ARP for its own addresses only); curl reaches the handler."""
    from aionetstack import TapLink

    link = TapLink("aionstapi0", kernel_address="198.18.1.1/24")
    async with Stack(link, address="198.18.1.2/24") as stack:
        subprocess.run(
            ["ip", "route", "replace", "198.19.0.0/16", "via", "198.18.1.2", "dev", "aionstapi0"],
            check=True,
        )

        async def on_tcp(flow: TcpFlow) -> None:
            reader, writer = await flow.accept()
            await reader.readuntil(b"\r\n\r\n")
            body = repr(flow.destination).encode()
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            writer.close()

        await stack.intercept(tcp=on_tcp, networks=["198.19.0.0/16"])
        code, out, err = await curl("http://198.19.3.3:8080/")
        assert code == 0, err
        assert out == b"('198.19.3.3', 8080)"

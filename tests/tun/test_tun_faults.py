"""Hostile and faulty conditions over a real TUN, each test in its own namespace.

Floods are hand-built packets written into the TUN from the kernel side through an
AF_PACKET socket (no scapy), addressed only inside the namespace (198.18.0.0/24).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import subprocess
from collections.abc import AsyncIterator

import pytest

from aionetstack import Stack, TunLink
from aionetstack.core.tcp import TcpConnection
from aionetstack.testing.netns import Namespace
from aionetstack.wire import icmpv4, ipv4
from aionetstack.wire.tcp import ACK, RST, build_tcp

pytestmark = pytest.mark.tun

TUN = "aionsf0"
KERNEL = "198.18.0.1"
STACK = "198.18.0.2"
ETH_P_IP = 0x0800


def inject(packets: list[bytes]) -> None:
    """Write raw IP packets into the TUN from the kernel side, bypassing its IP stack."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP)) as raw:
        for packet in packets:
            raw.sendto(packet, (TUN, ETH_P_IP))


def tcp_packet(sport: int, dport: int, seq: int, ack: int, flags: int) -> bytes:
    source, destination = socket.inet_aton(KERNEL), socket.inet_aton(STACK)
    segment = build_tcp(
        sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, 502,
        source=source, destination=destination,
    )  # fmt: skip
    return ipv4.build_ipv4(ipv4.IPv4Header(source, destination, ipv4.PROTO_TCP), segment)


@pytest.fixture
async def stack(netns: Namespace) -> AsyncIterator[Stack]:
    link = TunLink(TUN, kernel_address=f"{KERNEL}/24")
    async with Stack(link, address=f"{STACK}/24") as s:
        yield s


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        return  # the link was deleted under it (the test checks the error elsewhere)
    writer.close()


async def kernel_client(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (STACK, port))
    return sock


async def round_trip(sock: socket.socket, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, data)
    got = b""
    while len(got) < len(data):
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 10)
        assert chunk
        got += chunk
    return got


def the_connection(stack: Stack, kernel_port: int) -> TcpConnection:
    (connection,) = [c for c in stack.core.tcp.connections if c.remote_port == kernel_port]
    return connection


async def test_floods_of_invalid_segments_draw_rate_limited_replies(stack: Stack) -> None:
    """1,000 out-of-window ACKs and 1,000 in-window RSTs to one connection: at most a few
    replies each (tcp_invalid_ratelimit, RFC 5961 §7 per connection); the connection
    still echoes; 2 ICMP errors quoting sequence numbers outside [una, nxt] are ignored."""
    await stack.start_server(echo, port=7)
    sock = await kernel_client(7)
    assert await round_trip(sock, b"before") == b"before"
    kernel_port = sock.getsockname()[1]
    connection = the_connection(stack, kernel_port)
    rcv_nxt = connection._rcv_nxt
    una = (connection._iss + connection._una) & 0xFFFFFFFF
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(
        None, inject, [tcp_packet(kernel_port, 7, rcv_nxt + 50_000_000, una, ACK)] * 1000
    )
    await loop.run_in_executor(
        None, inject, [tcp_packet(kernel_port, 7, rcv_nxt + 100, 0, RST)] * 1000
    )
    # ICMP port unreachable quoting a segment of ours whose sequence number lies outside
    # [SND.UNA, SND.NXT] (RFC 5927 §4.1): below it, and far above it.
    errors = []
    for seq in (una - 1000, una + 1_000_000):
        ours = ipv4.build_ipv4(
            ipv4.IPv4Header(socket.inet_aton(STACK), socket.inet_aton(KERNEL), ipv4.PROTO_TCP),
            build_tcp(7, kernel_port, seq & 0xFFFFFFFF, 0, ACK, 502),
        )
        message = icmpv4.build_error(3, 3, ours)
        header = ipv4.IPv4Header(socket.inet_aton(KERNEL), socket.inet_aton(STACK), 1)
        errors.append(ipv4.build_ipv4(header, message))
    await loop.run_in_executor(None, inject, errors)
    assert await round_trip(sock, b"after") == b"after"  # alive, and ordered after the floods
    tcp = stack.statistics()["tcp"]
    assert tcp["drops_out_of_window"] >= 1000
    assert tcp["replies_rate_limited_out_of_window"] >= 990
    assert tcp["replies_rate_limited_challenge_rst"] >= 990
    assert tcp["icmp_errors_out_of_window"] == 2
    assert connection.soft_error is None
    sock.close()


async def test_tun_down_then_up_and_then_deleted(stack: Stack) -> None:
    """Down: the stack's writes are refused by the kernel (EIO), dropped and counted;
    up again: TCP retransmits and the echo completes. Deleted while in use: every
    connection fails with ENETDOWN, and the loop keeps running."""
    await stack.start_server(echo, port=7)
    sock = await kernel_client(7)
    assert await round_trip(sock, b"x" * 1000) == b"x" * 1000
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, b"y" * 1000)
    subprocess.run(["ip", "link", "set", TUN, "down"], check=True)
    await asyncio.sleep(0.5)  # the echo's answer meets a downed link
    subprocess.run(["ip", "link", "set", TUN, "up"], check=True)
    subprocess.run(["ip", "route", "replace", "198.18.0.0/24", "dev", TUN], check=True)
    got = b""
    while len(got) < 1000:
        got += await asyncio.wait_for(loop.sock_recv(sock, 65536), 30)
    assert got == b"y" * 1000
    assert stack.statistics()["link"]["send_link_down"] >= 1
    held = list(stack.core.tcp.connections)
    assert held
    subprocess.run(["ip", "link", "del", TUN], check=True)
    # The deleted device's fd polls POLLERR: the driver's next read finds EBADFD.
    for _ in range(100):
        if stack.statistics()["driver"]["link_errors"]:
            break
        await asyncio.sleep(0.05)
    assert stack.statistics()["driver"]["link_errors"] == 1
    assert stack.statistics()["tcp"]["connections_current"] == 0
    with pytest.raises(OSError) as refused:
        await stack.open_connection(KERNEL, 9)
    assert refused.value.errno == errno.ENETDOWN
    sock.close()


async def test_bare_acks_to_a_listener_without_a_flood_get_resets_unchecked(
    stack: Stack,
) -> None:
    """gVisor packetdrill reset_for_ack_when_no_syn_cookies_in_use: 500 forged bare ACKs
    to a listening port, no SYN flood: no cookie is checked, each is answered with RST
    (the kernel sees them), and nothing is accepted."""
    accepted: list[object] = []

    async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    await stack.start_server(take, port=80)
    forged = [
        tcp_packet(30000 + index, 80, 1000 + index, 7919 * index, ACK) for index in range(500)
    ]
    await asyncio.get_running_loop().run_in_executor(None, inject, forged)
    sock = await kernel_client(80)  # a real connection after them: ordered behind the ACKs
    sock.close()
    tcp = stack.statistics()["tcp"]
    assert tcp["syn_cookies_not_recent"] == 500
    assert tcp.get("syn_cookies_failed", 0) == 0
    assert tcp["resets_no_owner"] >= 500
    assert len(accepted) <= 1

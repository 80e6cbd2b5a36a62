"""Path MTU discovery in virtual time (RFC 1191, RFC 8201): two StackCores, a narrow router.

The router between them passes packets up to its far side's MTU (1280) and
answers larger ones with ICMPv6 packet too big or ICMP fragmentation needed, as
a real router does. The sender's TCP must shrink its segments and deliver
every byte.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random

import pytest

from aionetstack.core.pmtu import PathMtuCache
from aionetstack.core.stack import StackCore
from aionetstack.wire import icmpv4, icmpv6, ipv4, ipv6

ROUTER_MTU = 1280
ROUTER6 = ipaddress.IPv6Address("2001:2::fe").packed
ROUTER4 = bytes([198, 18, 0, 254])


def _router_error(packet: bytes) -> bytes:
    """What a router with a 1280-byte next hop answers a larger packet with."""
    if packet[0] >> 4 == 6:
        sender = packet[8:24]
        error = icmpv6.build_error(
            icmpv6.TYPE_PACKET_TOO_BIG, 0, packet, ROUTER6, sender, body=ROUTER_MTU
        )
        return ipv6.build_ipv6(ipv6.IPv6Header(ROUTER6, sender, icmpv6.PROTO_ICMPV6), error)
    sender = packet[12:16]
    error = icmpv4.build_error(
        icmpv4.TYPE_DESTINATION_UNREACHABLE, icmpv4.CODE_FRAGMENTATION_NEEDED, packet,
        next_hop_mtu=ROUTER_MTU,
    )  # fmt: skip
    return ipv4.build_ipv4(ipv4.IPv4Header(ROUTER4, sender, ipv4.PROTO_ICMP), error)


def _run(near: StackCore, far: StackCore, now: float, stats: dict[str, int]) -> float:
    """Move packets until nothing is left to do now; return the next deadline (or now)."""
    for _ in range(100000):
        moved = False
        for packet in near.packets_to_send(now):
            raw = packet if isinstance(packet, bytes) else packet.packet
            moved = True
            if len(raw) > ROUTER_MTU:
                df = raw[0] >> 4 == 6 or raw[6] & 0x40
                if df:
                    stats["too_big"] += 1
                    near.receive_packet(_router_error(raw), now)
                    continue
                stats["fragmented_by_router"] += 1
            far.receive_packet(raw, now)
        for packet in far.packets_to_send(now):
            raw = packet if isinstance(packet, bytes) else packet.packet
            moved = True
            near.receive_packet(raw, now)
        if not moved:
            break
    deadlines = [d for d in (near.get_timer(), far.get_timer()) if d is not None]
    return min(deadlines) if deadlines else now


@pytest.mark.parametrize("family", [4, 6])
def test_tcp_follows_the_path_mtu_byte_exact(family: int) -> None:
    if family == 6:
        near = StackCore(["2001:2::2/64"], rng=random.Random(1))
        far = StackCore(["2001:2::1/64"], rng=random.Random(2))
        near_address, far_address = (
            near.routes.interfaces[0].address,
            far.routes.interfaces[0].address,
        )
    else:
        near = StackCore(["198.18.0.2/24"], rng=random.Random(1))
        far = StackCore(["198.18.0.1/24"], rng=random.Random(2))
        near_address, far_address = bytes([198, 18, 0, 2]), bytes([198, 18, 0, 1])
    listener = far.tcp.listen(None, 7000)
    now = 0.0
    client = near.tcp.connect(near_address, far_address, 7000, now)
    stats: dict[str, int] = {"too_big": 0, "fragmented_by_router": 0}
    data = random.Random(5).randbytes(2_000_000)
    sent = 0
    received = bytearray()
    server = None
    for _ in range(20000):
        if server is None:
            server = listener.accept()
        if client.state.name == "ESTABLISHED" and sent < len(data):
            sent += client.send(data[sent : sent + 262144])
            if sent == len(data):
                client.shutdown_write()
        if server is not None:
            received += server.receive()
        next_deadline = _run(near, far, now, stats)
        if server is not None:
            received += server.receive()
        if len(received) == len(data):
            break
        if next_deadline <= now:
            continue
        now = next_deadline
        near.handle_timer(now)
        far.handle_timer(now)
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
    limit = ROUTER_MTU - (40 if family == 6 else 20) - 20 - 12  # IP, TCP, timestamps
    assert client.snd_mss == limit
    assert near.path_mtu(far_address) == ROUTER_MTU
    assert 1 <= stats["too_big"] <= 40  # the flight in progress when the MTU fell
    assert stats["fragmented_by_router"] == 0
    assert near.statistics()["tcp"]["pmtu_mss_lowered"] == 1
    assert now < 5.0  # no retransmission timeout was needed to recover


def test_reports_above_the_current_estimate_or_below_the_floor() -> None:
    cache = PathMtuCache(1500)
    v4 = bytes(4)
    v6 = bytes(16)
    assert cache.lower(v4, 100, 0.0) == 552
    assert cache.lower(v6, 100, 0.0) == 1280
    assert cache.lower(v4, 1400, 1.0) is None  # never raised by a report
    assert cache.get(v4, 599.0) == 552
    assert cache.get(v4, 600.0) == 1500  # RFC 1191 §6.3: ten minutes
    assert cache.stats["pmtu_expired"] == 1


def test_frag_needed_with_an_implausible_mtu_is_ignored() -> None:
    core = StackCore(["198.18.0.2/24"], rng=random.Random(1))
    peer = bytes([198, 18, 0, 1])
    core.send_echo_request(peer, 1, 1, bytes(900))
    [sent] = core.packets_to_send(1.0)
    error = icmpv4.build_error(3, 4, sent, next_hop_mtu=1400)  # above the 928-byte packet
    core.receive_packet(ipv4.build_ipv4(ipv4.IPv4Header(peer, sent[12:16], 1), error), 1.0)
    assert core.path_mtu(peer) == 1500
    assert core.statistics()["pmtu"]["pmtu_reports_implausible"] == 1

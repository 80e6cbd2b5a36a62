"""The stack's resolver over a real TUN against kernel-side DNS servers in the test's namespace:
Debian's dnsmasq, and a dnspython server that truncates and forges."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aionetstack import Stack, TunLink
from aionetstack.config import ResolverConfig, StackConfig
from aionetstack.testing.netns import Namespace

from .dns_server import KernelDnsServer, Zone
from .kernel_services import dnsmasq

pytestmark = pytest.mark.tun

KERNEL = "198.18.0.1"
STACK = "198.18.0.2"
MANY = [f"198.18.1.{i}" for i in range(1, 41)]  # 40 A records: over 512 bytes


@pytest.fixture
async def stack(netns: Namespace) -> AsyncIterator[Stack]:
    link = TunLink("aionsn0", kernel_address=f"{KERNEL}/24")
    config = StackConfig(resolver=ResolverConfig(timeout=1.0))
    async with Stack(link, address=f"{STACK}/24", config=config, nameservers=[KERNEL],
                     hosts={"hosts.test": KERNEL}) as s:  # fmt: skip
        yield s


async def test_dnsmasq_answers_both_families_nxdomain_and_truncation(
    stack: Stack, tmp_path: Path
) -> None:
    names = {"web.test": [KERNEL, "2001:2::1"], "many.test": MANY}
    with dnsmasq(tmp_path, KERNEL, names) as server:
        infos = await stack.getaddrinfo("web.test", 80, type=socket.SOCK_STREAM)
        assert infos == [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (KERNEL, 80)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:2::1", 80, 0, 0)),
        ]
        with pytest.raises(socket.gaierror) as caught:
            await stack.getaddrinfo("nowhere.test", 80)
        assert caught.value.errno == socket.EAI_NONAME
        many = await stack.getaddrinfo("many.test", 80, family=socket.AF_INET,
                                       type=socket.SOCK_STREAM)  # fmt: skip
        assert sorted(info[4][0] for info in many) == sorted(MANY)
        assert await stack.getaddrinfo("hosts.test", 7, type=socket.SOCK_STREAM) == [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (KERNEL, 7))
        ]
        assert await stack.ping("web.test") > 0
        names_stats = stack.statistics()["names"]
        assert names_stats["truncated"] == 1 and names_stats["tcp_sent"] == 1
        assert names_stats["nxdomain"] == 2  # A and AAAA of nowhere.test
    log = server.stdout.read().decode() if server.stdout else ""
    assert f"query[A] web.test from {STACK}" in log  # dnsmasq saw the stack's address
    assert "hosts.test" not in log  # the hosts table answered without a query


async def test_a_server_that_truncates_and_forges(stack: Stack) -> None:
    zone = Zone(addresses={"many.test": MANY, "web.test": [KERNEL]}, udp_limit=5,
                servfail={"broken.test"}, silent={"silent.test"})  # fmt: skip
    server = KernelDnsServer(zone, KERNEL)
    try:
        many = await stack.getaddrinfo("many.test", 80, family=socket.AF_INET,
                                       type=socket.SOCK_STREAM)  # fmt: skip
        assert len(many) == 40
        assert zone.seen == [("udp", "many.test", "A"), ("tcp", "many.test", "A")]
        zone.forgeries = ["id", "question", "loop", "junk"]
        web = await stack.getaddrinfo("web.test", 80, family=socket.AF_INET,
                                      type=socket.SOCK_STREAM)  # fmt: skip
        assert [info[4][0] for info in web] == [KERNEL]
        stats = stack.statistics()["names"]
        assert (stats["wrong_id"], stats["wrong_question"], stats["malformed"]) == (1, 1, 2)
        for name, code in (("broken.test", socket.EAI_AGAIN), ("silent.test", socket.EAI_AGAIN)):
            with pytest.raises(socket.gaierror) as caught:
                await stack.getaddrinfo(name, 80, family=socket.AF_INET)
            assert caught.value.errno == code
        assert {source[0] for source in server.sources} == {STACK}
        assert stack.statistics()["names"]["timeouts"] == 2  # silent.test: 1 server x 2
    finally:
        server.close()

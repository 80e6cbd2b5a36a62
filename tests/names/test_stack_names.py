"""Names over a memory link: the near stack asks a dnspython server on the far stack."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator

import pytest

from aionetstack import MemoryLink, Stack
from aionetstack.aio.happy_eyeballs import interleave
from aionetstack.config import ResolverConfig, StackConfig

from .dns_server import Zone, serve_on_stack

FAR = "198.18.0.1"
FAR2 = "198.18.0.3"
NEAR = "198.18.0.2"
NOBODY = "198.18.0.9"  # on the link, but no stack answers for it


def zone() -> Zone:
    many = [f"198.18.1.{i}" for i in range(1, 41)]
    return Zone(
        addresses={
            "web.test": [FAR, "2001:2::1"],
            "v4.test": [FAR],
            "many.test": many,
            "empty.test": [],
            "spoofed.test": [FAR],
        },
        cnames={"www.test": "web.test"},
        udp_limit=10,
        servfail={"broken.test"},
        silent={"silent.test"},
    )


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Stack, Stack, Zone]]:
    near_link, far_link = MemoryLink.pair(mtu=1500)
    config = StackConfig(resolver=ResolverConfig(timeout=0.2, attempts=2))
    served = zone()
    async with (
        Stack(far_link, address=[f"{FAR}/24", f"{FAR2}/24"], seed=2,
              hosts={"far.test": FAR}) as far,
        Stack(near_link, address=f"{NEAR}/24", seed=1, config=config, nameservers=[FAR],
              hosts={"hosts.test": FAR, "Both.Test": [FAR, "2001:2::1"],
                     # In this order (a DNS answer's order is the server's choice).
                     "slow-first.test": [NOBODY, FAR], "refused-first.test": [FAR, FAR2]},
              ) as near,
    ):  # fmt: skip
        await serve_on_stack(far, served, FAR)
        yield near, far, served


async def test_getaddrinfo_has_loop_getaddrinfos_shape(pair: tuple[Stack, Stack, Zone]) -> None:
    near, _, served = pair
    infos = await near.getaddrinfo("web.test", 80)
    # The stack has only IPv4: its family comes first (RFC 6724 with AI_ADDRCONFIG-like order).
    expected = socket.getaddrinfo(FAR, 80) + socket.getaddrinfo("2001:2::1", 80)
    assert infos == expected
    assert {(p, n, t) for p, n, t in served.seen} == {("udp", "web.test", "A"),
                                                      ("udp", "web.test", "AAAA")}  # fmt: skip
    stream = await near.getaddrinfo("web.test", "http", type=socket.SOCK_STREAM,
                                    flags=socket.AI_CANONNAME | socket.AI_ADDRCONFIG)  # fmt: skip
    assert stream == [(socket.AF_INET, socket.SOCK_STREAM, 6, "web.test", (FAR, 80))]
    assert len(served.seen) == 2  # the second call came from the cache


async def test_a_cname_gives_the_canonical_name(pair: tuple[Stack, Stack, Zone]) -> None:
    near, _, _ = pair
    infos = await near.getaddrinfo("www.test", 443, family=socket.AF_INET,
                                   type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME)  # fmt: skip
    assert infos == [(socket.AF_INET, socket.SOCK_STREAM, 6, "web.test", (FAR, 443))]


async def test_the_hosts_table_and_numeric_hosts_need_no_query(
    pair: tuple[Stack, Stack, Zone],
) -> None:
    near, _, served = pair
    assert await near.getaddrinfo("HOSTS.test.", 7, type=socket.SOCK_STREAM) == [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", (FAR, 7))
    ]
    both = await near.getaddrinfo("both.test", 7, type=socket.SOCK_DGRAM)
    assert [info[4][0] for info in both] == [FAR, "2001:2::1"]
    assert await near.getaddrinfo(FAR, 7) == socket.getaddrinfo(FAR, 7)
    assert await near.getaddrinfo("2001:2::5", "7", family=socket.AF_INET6) == (
        socket.getaddrinfo("2001:2::5", "7", socket.AF_INET6)
    )
    assert served.seen == []
    assert await near.getnameinfo((FAR, 80)) == ("hosts.test", "http")
    assert await near.getnameinfo(("198.18.0.77", 80), socket.NI_NUMERICSERV) == (
        "198.18.0.77", "80",
    )  # fmt: skip
    with pytest.raises(socket.gaierror) as caught:
        await near.getnameinfo(("198.18.0.77", 80), socket.NI_NAMEREQD)
    assert caught.value.errno == socket.EAI_NONAME


@pytest.mark.parametrize(
    ("host", "kwargs", "code"),
    [
        ("nowhere.test", {}, socket.EAI_NONAME),  # NXDOMAIN
        ("empty.test", {}, socket.EAI_NONAME),  # no data of either family
        ("web.test", {"family": socket.AF_INET6, "flags": socket.AI_ADDRCONFIG}, socket.EAI_NONAME),
        ("broken.test", {}, socket.EAI_AGAIN),  # SERVFAIL
        ("silent.test", {}, socket.EAI_AGAIN),  # timeouts
        ("web.test", {"family": socket.AF_UNIX}, socket.EAI_FAMILY),
        ("web.test", {"port": "no-such-service"}, socket.EAI_SERVICE),
        ("web.test", {"flags": socket.AI_NUMERICHOST}, socket.EAI_NONAME),
    ],
)
async def test_getaddrinfo_errors(
    pair: tuple[Stack, Stack, Zone], host: str, kwargs: dict[str, int], code: int
) -> None:
    near, _, _ = pair
    port = kwargs.pop("port", 80)
    with pytest.raises(socket.gaierror) as caught:
        await near.getaddrinfo(host, port, **kwargs)
    assert caught.value.errno == code


async def test_a_name_the_socket_module_refuses_fails_the_same_way(
    pair: tuple[Stack, Stack, Zone],
) -> None:
    near, _, _ = pair
    with pytest.raises(UnicodeError):  # as loop.getaddrinfo("bad..name", 80) does
        await near.getaddrinfo("bad..name", 80)


async def test_timeouts_follow_the_attempts(pair: tuple[Stack, Stack, Zone]) -> None:
    near, _, served = pair
    with pytest.raises(socket.gaierror):
        await near.getaddrinfo("silent.test", 80, family=socket.AF_INET)
    assert served.seen == [("udp", "silent.test", "A")] * 2  # one server, two attempts
    assert near.statistics()["names"]["timeouts"] == 2


async def test_a_truncated_answer_is_fetched_over_tcp(pair: tuple[Stack, Stack, Zone]) -> None:
    near, _, served = pair
    infos = await near.getaddrinfo("many.test", 80, family=socket.AF_INET,
                                   type=socket.SOCK_STREAM)  # fmt: skip
    assert {info[4][0] for info in infos} == {f"198.18.1.{i}" for i in range(1, 41)}
    assert len(infos) == 40
    assert served.seen == [("udp", "many.test", "A"), ("tcp", "many.test", "A")]
    assert near.statistics()["names"]["truncated"] == 1


@pytest.mark.parametrize("forgery", ["id", "question", "loop", "junk", "source"])
async def test_forged_answers_are_ignored_and_counted(
    pair: tuple[Stack, Stack, Zone], forgery: str
) -> None:
    near, _, served = pair
    served.forgeries = [forgery]
    infos = await near.getaddrinfo("spoofed.test", 80, family=socket.AF_INET,
                                   type=socket.SOCK_STREAM)  # fmt: skip
    assert [info[4][0] for info in infos] == [FAR]
    counter = {"id": "wrong_id", "question": "wrong_question", "loop": "malformed",
               "junk": "malformed", "source": "wrong_source"}[forgery]  # fmt: skip
    assert near.statistics()["names"][counter] == 1


async def test_names_wherever_a_host_is_taken(pair: tuple[Stack, Stack, Zone]) -> None:
    near, far, _ = pair
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    server = await far.start_server(echo, "far.test", 7)  # the far stack's hosts table
    assert server.get_addresses() == [(FAR, 7)]
    reader, writer = await near.open_connection("web.test", 7)
    assert writer.get_extra_info("peername") == (FAR, 7)
    writer.write(b"hello")
    assert await reader.read(100) == b"hello"
    writer.close()

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            received.put_nowait(data)

    await far.create_datagram_endpoint(Sink, local_addr=("far.test", 9999))
    transport, _ = await near.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("v4.test", 9999)
    )
    assert transport.get_extra_info("peername") == (FAR, 9999)
    transport.sendto(b"datagram")
    assert await asyncio.wait_for(received.get(), 5) == b"datagram"
    assert await near.ping("hosts.test") > 0


async def test_happy_eyeballs_moves_on_from_an_address_that_does_not_answer(
    pair: tuple[Stack, Stack, Zone],
) -> None:
    near, far, _ = pair
    await far.start_server(lambda r, w: w.close(), None, 8080)
    loop = asyncio.get_running_loop()
    started = loop.time()
    _, writer = await near.open_connection("slow-first.test", 8080)
    assert writer.get_extra_info("peername") == (FAR, 8080)
    # The second attempt started after the RFC 8305 §8 delay, not after SYN timeouts.
    assert loop.time() - started >= 0.25
    assert [c.remote_address for c in near.core.tcp.connections] == [bytes([198, 18, 0, 1])]
    writer.close()


async def test_happy_eyeballs_moves_on_at_once_after_a_refusal(
    pair: tuple[Stack, Stack, Zone],
) -> None:
    near, far, _ = pair
    await far.start_server(lambda r, w: w.close(), FAR2, 8081)  # FAR:8081 answers RST
    # With a 60 s attempt delay, only the refusal can have started the second attempt.
    _, writer = await asyncio.wait_for(
        near.open_connection("refused-first.test", 8081, happy_eyeballs_delay=60), 10
    )
    assert writer.get_extra_info("peername") == (FAR2, 8081)
    writer.close()


async def test_every_address_failing_raises_as_asyncio_does(
    pair: tuple[Stack, Stack, Zone],
) -> None:
    near, _, _ = pair
    # Both refused with the same message: asyncio raises that one error.
    with pytest.raises(ConnectionRefusedError):
        await near.open_connection("refused-first.test", 8082)
    with pytest.raises(ExceptionGroup) as caught:
        await near.open_connection("refused-first.test", 8082, all_errors=True)
    assert len(caught.value.exceptions) == 2


async def test_a_family_the_stack_cannot_route_is_passed_over(
    pair: tuple[Stack, Stack, Zone],
) -> None:
    near, far, _ = pair
    await far.start_server(lambda r, w: w.close(), FAR, 8083)
    # web.test has an AAAA record; this stack has only IPv4, whose addresses come first.
    _, writer = await near.open_connection("web.test", 8083, happy_eyeballs_delay=60)
    assert writer.get_extra_info("peername") == (FAR, 8083)
    writer.close()
    with pytest.raises(OSError) as caught:
        await near.open_connection("web.test", 8083, family=socket.AF_INET6)
    assert caught.value.errno == errno.ENETUNREACH


def test_interleave_alternates_the_families() -> None:
    pairs = [(10, "a6"), (10, "b6"), (10, "c6"), (2, "a4"), (2, "b4")]
    assert interleave(pairs) == ["a6", "a4", "b6", "b4", "c6"]
    assert interleave(pairs, 2) == ["a6", "b6", "a4", "c6", "b4"]
    assert interleave([]) == []


async def test_dual_stack_happy_eyeballs_and_an_ipv6_nameserver() -> None:
    near_link, far_link = MemoryLink.pair(mtu=1500)
    served = Zone(addresses={"dual.test": [FAR, "2001:2::1"]})
    async with (
        Stack(far_link, address=[f"{FAR}/24", "2001:2::1/64"], seed=2) as far,
        Stack(near_link, address=[f"{NEAR}/24", "2001:2::2/64"], seed=1,
              nameservers=["2001:2::1"],
              hosts={"dead6-first.test": ["2001:2::99", FAR]}) as near,
    ):  # fmt: skip
        await serve_on_stack(far, served, "2001:2::1")
        await far.start_server(lambda r, w: w.close(), None, 7)
        infos = await near.getaddrinfo("dual.test", 7, type=socket.SOCK_STREAM)
        # Both families local: IPv6 first (RFC 6724's default policy).
        assert [info[0] for info in infos] == [socket.AF_INET6, socket.AF_INET]
        assert set(served.seen) == {("udp", "dual.test", "A"), ("udp", "dual.test", "AAAA")}
        _, writer = await near.open_connection("dual.test", 7)
        assert writer.get_extra_info("peername")[0] == "2001:2::1"
        writer.close()
        # The IPv6 address does not answer: IPv4 is tried after 250 ms and wins.
        loop = asyncio.get_running_loop()
        started = loop.time()
        _, writer = await near.open_connection("dead6-first.test", 7)
        assert writer.get_extra_info("peername") == (FAR, 7)
        assert loop.time() - started >= 0.25
        writer.close()


async def test_a_lookup_in_progress_fails_when_the_stack_closes(
    pair: tuple[Stack, Stack, Zone],
) -> None:
    near, _, _ = pair
    lookup = asyncio.ensure_future(near.getaddrinfo("silent.test", 80))
    await asyncio.sleep(0.05)
    assert not lookup.done()
    await near.aclose()
    with pytest.raises(ConnectionAbortedError):
        await lookup
    with pytest.raises(ConnectionAbortedError):
        await near.resolver.resolve("web.test", [1])


async def test_no_free_port_for_a_query_means_its_tries_time_out() -> None:
    near_link, _ = MemoryLink.pair(mtu=1500)
    config = StackConfig(ephemeral_ports=(40000, 40000),
                         resolver=ResolverConfig(timeout=0.05, attempts=1))  # fmt: skip
    async with Stack(near_link, address=f"{NEAR}/24", config=config, nameservers=[FAR]) as near:
        await near.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(NEAR, 40000))
        with pytest.raises(socket.gaierror) as caught:
            await near.getaddrinfo("web.test", 80, family=socket.AF_INET)
        assert caught.value.errno == socket.EAI_AGAIN
        assert near.statistics()["driver"]["internal_errors"] == 0


async def test_a_cancelled_lookup_releases_its_queries(pair: tuple[Stack, Stack, Zone]) -> None:
    near, _, served = pair
    task = asyncio.ensure_future(near.getaddrinfo("silent.test", 80))
    await asyncio.sleep(0.05)
    assert near.statistics()["names"]["in_progress"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert near.statistics()["names"]["in_progress"] == 0
    await asyncio.sleep(0.5)  # past the 0.2 s timeouts: no retry went out
    assert len(served.seen) == 2  # the first A and AAAA only

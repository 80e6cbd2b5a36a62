"""The sans-I/O stub resolver in virtual time: answers crafted with dnspython, no sockets."""

from __future__ import annotations

import ipaddress
import random
import struct

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aionetstack.config import ResolverConfig
from aionetstack.names import (
    AAAA,
    A,
    HostsTable,
    OpenStream,
    Outcome,
    Release,
    SendDatagram,
    StubResolver,
)

NS1 = ipaddress.ip_address("198.18.0.1").packed
NS2 = ipaddress.ip_address("198.18.0.53").packed


def resolver(**kwargs: object) -> StubResolver:
    kwargs.setdefault("rng", random.Random(7))
    return StubResolver(["198.18.0.1", "198.18.0.53"], **kwargs)  # type: ignore[arg-type]


def sends(machine: StubResolver) -> list[SendDatagram | OpenStream]:
    return [c for c in machine.commands() if not isinstance(c, Release)]


def query_of(command: SendDatagram | OpenStream) -> dns.message.Message:
    payload = command.payload[2:] if isinstance(command, OpenStream) else command.payload
    return dns.message.from_wire(payload)


def response(
    command: SendDatagram | OpenStream,
    *records: str,
    rcode: int = dns.rcode.NOERROR,
    soa_ttl: int | None = None,
    truncated: bool = False,
    query_id: int | None = None,
) -> bytes:
    """An answer to ``command``'s query; ``records`` in zone-file text ("name ttl IN A addr")."""
    query = query_of(command)
    answer = dns.message.make_response(query)
    answer.set_rcode(rcode)
    for text in records:  # records of one name and type join one RRset
        name, ttl, _, rdtype, data = text.split(maxsplit=4)
        rrset = dns.rrset.from_text(name, int(ttl), "IN", rdtype, data)
        answer.find_rrset(
            answer.answer, rrset.name, rrset.rdclass, rrset.rdtype, create=True
        ).update(rrset)
    if soa_ttl is not None:
        answer.authority.append(dns.rrset.from_text(
            "test.", soa_ttl, "IN", "SOA", "ns.test. admin.test. 1 3600 600 86400 60"
        ))  # fmt: skip
    if truncated:
        answer.flags |= dns.flags.TC
    if query_id is not None:
        answer.id = query_id
    return answer.to_wire()


def udp_answer(machine: StubResolver, command: SendDatagram, data: bytes, now: float) -> None:
    machine.receive_datagram(command.token, data, (command.server, command.port), now=now)


def test_the_hosts_table_answers_without_a_query() -> None:
    machine = resolver(hosts=HostsTable({"Web.Test.": ["198.18.0.1", "2001:2::1"]}))
    lookup = machine.lookup("web.test", (A, AAAA), now=0.0)
    assert lookup.done and machine.next_event() is lookup
    assert lookup.answers[A].addresses == (NS1,)
    assert lookup.answers[AAAA].addresses == (ipaddress.ip_address("2001:2::1").packed,)
    assert lookup.answers[A].source == "hosts"
    assert machine.commands() == []
    assert machine.statistics()["hosts_answers"] == 2


def test_a_and_aaaa_go_out_at_once_with_random_ids() -> None:
    machine = resolver()
    lookup = machine.lookup("web.test", (A, AAAA), now=0.0)
    first, second = sends(machine)
    assert isinstance(first, SendDatagram) and isinstance(second, SendDatagram)
    assert (first.server, first.port) == (NS1, 53) == (second.server, second.port)
    assert {query_of(first).question[0].rdtype, query_of(second).question[0].rdtype} == {
        dns.rdatatype.A, dns.rdatatype.AAAA,
    }  # fmt: skip
    assert query_of(first).id != query_of(second).id
    assert query_of(first).flags & dns.flags.RD
    udp_answer(machine, first, response(first, "web.test. 300 IN A 198.18.0.7"), 0.1)
    assert not lookup.done
    udp_answer(machine, second, response(second, soa_ttl=60), 0.1)
    assert lookup.done and machine.next_event() is lookup
    assert lookup.answers[A].addresses == (ipaddress.ip_address("198.18.0.7").packed,)
    assert lookup.answers[AAAA].outcome is Outcome.NO_DATA


def test_answers_are_cached_for_their_ttl() -> None:
    machine = resolver()
    machine.lookup("web.test", (A,), now=0.0)
    (command,) = sends(machine)
    udp_answer(machine, command, response(command, "web.test. 30 IN A 198.18.0.7"), 0.0)
    machine.next_event()
    again = machine.lookup("WEB.test", (A,), now=29.9)
    assert again.done and again.answers[A].source == "cache"
    assert sends(machine) == []
    later = machine.lookup("web.test", (A,), now=30.0)
    assert not later.done and len(sends(machine)) == 1


def test_the_cname_chain_is_followed_and_its_smallest_ttl_kept() -> None:
    machine = resolver()
    lookup = machine.lookup("www.test", (A,), now=0.0)
    (command,) = sends(machine)
    data = response(command, "www.test. 10 IN CNAME web.test.", "web.test. 300 IN A 198.18.0.7")
    udp_answer(machine, command, data, 0.0)
    assert lookup.answers[A].canonical_name == "web.test"
    assert lookup.answers[A].addresses == (ipaddress.ip_address("198.18.0.7").packed,)
    assert machine.lookup("www.test", (A,), now=9.0).done
    assert not machine.lookup("www.test", (A,), now=10.0).done


def test_a_cname_loop_is_ignored_and_counted() -> None:
    machine = resolver()
    lookup = machine.lookup("a.test", (A,), now=0.0)
    (command,) = sends(machine)
    data = response(command, "a.test. 10 IN CNAME b.test.", "b.test. 10 IN CNAME a.test.")
    udp_answer(machine, command, data, 0.0)
    assert not lookup.done and machine.statistics()["cname_loops"] == 1


def test_nxdomain_is_final_and_cached_for_the_soa_minimum() -> None:
    machine = resolver()
    lookup = machine.lookup("gone.test", (A, AAAA), now=0.0)
    first, second = sends(machine)
    # SOA TTL 120, MINIMUM 60: RFC 2308 §5 takes the smaller.
    udp_answer(machine, first, response(first, rcode=dns.rcode.NXDOMAIN, soa_ttl=120), 0.0)
    udp_answer(machine, second, response(second, rcode=dns.rcode.NXDOMAIN, soa_ttl=120), 0.0)
    assert {a.outcome for a in lookup.answers.values()} == {Outcome.NXDOMAIN}
    assert sends(machine) == []  # no other server is asked
    assert machine.lookup("gone.test", (A,), now=59.0).answers[A].outcome is Outcome.NXDOMAIN
    assert not machine.lookup("gone.test", (A,), now=60.0).done


def test_a_negative_answer_without_soa_is_not_cached() -> None:
    machine = resolver()
    machine.lookup("gone.test", (A,), now=0.0)
    (command,) = sends(machine)
    udp_answer(machine, command, response(command, rcode=dns.rcode.NXDOMAIN), 0.0)
    assert not machine.lookup("gone.test", (A,), now=1.0).done


def test_timeouts_go_round_the_servers_attempts_times() -> None:
    machine = resolver()
    lookup = machine.lookup("slow.test", (A,), now=0.0)
    times: list[tuple[float, bytes]] = []
    now = 0.0
    while not lookup.done:
        for command in sends(machine):
            times.append((now, command.server))
        timer = machine.get_timer()
        assert timer is not None
        now = timer
        machine.handle_timer(now=now)
    # resolv.conf defaults: 5 s per try, 2 attempts over both servers.
    assert times == [(0.0, NS1), (5.0, NS2), (10.0, NS1), (15.0, NS2)]
    assert now == 20.0 and lookup.answers[A].outcome is Outcome.TIMEOUT
    assert machine.get_timer() is None
    assert machine.statistics()["timeouts"] == 4


def test_servfail_moves_on_at_once_and_ends_as_server_failure() -> None:
    machine = resolver(config=ResolverConfig(attempts=1))
    lookup = machine.lookup("broken.test", (A,), now=0.0)
    (first,) = sends(machine)
    udp_answer(machine, first, response(first, rcode=dns.rcode.SERVFAIL), 0.5)
    (second,) = sends(machine)
    assert second.server == NS2
    udp_answer(machine, second, response(second, rcode=dns.rcode.REFUSED), 0.6)
    assert lookup.answers[A].outcome is Outcome.SERVER_FAILURE
    assert machine.statistics()["server_failures"] == 2
    assert not machine.lookup("broken.test", (A,), now=0.7).done  # failures are not cached


def test_a_truncated_answer_is_asked_again_over_tcp() -> None:
    machine = resolver()
    lookup = machine.lookup("big.test", (A,), now=0.0)
    (udp,) = sends(machine)
    udp_answer(machine, udp, response(udp, truncated=True), 0.1)
    commands = machine.commands()
    assert Release(udp.token) in commands
    (tcp,) = [c for c in commands if isinstance(c, OpenStream)]
    assert (tcp.server, tcp.port) == (NS1, 53)
    assert struct.unpack("!H", tcp.payload[:2])[0] == len(tcp.payload) - 2
    records = [f"big.test. 60 IN A 198.18.1.{i}" for i in range(1, 41)]
    body = response(tcp, *records)
    framed = len(body).to_bytes(2, "big") + body
    for offset in range(0, len(framed), 7):  # arrives in small pieces
        machine.receive_stream(tcp.token, framed[offset : offset + 7], now=0.2)
    assert lookup.done and len(lookup.answers[A].addresses) == 40
    assert machine.statistics()["truncated"] == 1


def test_a_failed_stream_moves_to_the_next_server() -> None:
    machine = resolver()
    lookup = machine.lookup("big.test", (A,), now=0.0)
    (udp,) = sends(machine)
    udp_answer(machine, udp, response(udp, truncated=True), 0.1)
    (tcp,) = sends(machine)
    machine.stream_closed(tcp.token, now=0.2)
    (next_try,) = sends(machine)
    assert isinstance(next_try, SendDatagram) and next_try.server == NS2
    assert not lookup.done and machine.statistics()["stream_failures"] == 1


def compression_loop(query_id: int) -> bytes:
    """A response whose question name is a pointer to itself (RFC 1035 §4.1.4 abused)."""
    header = struct.pack("!HHHHHH", query_id, 0x8180, 1, 0, 0, 0)
    return header + b"\xc0\x0c" + struct.pack("!HH", 1, 1)


def test_spoofed_and_malformed_answers_are_ignored_and_counted() -> None:
    machine = resolver()
    lookup = machine.lookup("web.test", (A,), now=0.0)
    (command,) = sends(machine)
    query_id = query_of(command).id
    good = response(command, "web.test. 60 IN A 198.18.0.7")
    wrong_id = response(command, "web.test. 60 IN A 198.18.66.6", query_id=query_id ^ 1)
    evil = dns.message.make_query("evil.test", "A", id=query_id).to_wire()
    other = SendDatagram(command.token, command.server, command.port, evil)
    wrong_question = response(other, "evil.test. 60 IN A 198.18.66.6")
    machine.receive_datagram(command.token, good, (NS2, 53), now=0.1)  # another address
    machine.receive_datagram(command.token, good, (NS1, 5353), now=0.1)  # another port
    udp_answer(machine, command, wrong_id, 0.1)
    udp_answer(machine, command, wrong_question, 0.1)
    udp_answer(machine, command, compression_loop(query_id), 0.1)
    udp_answer(machine, command, b"\x00" * 5, 0.1)
    udp_answer(machine, command, good[:-3], 0.1)  # cut short
    udp_answer(machine, command, query_of(command).to_wire(), 0.1)  # QR clear: a query
    assert not lookup.done
    stats = machine.statistics()
    assert (stats["wrong_source"], stats["wrong_id"], stats["wrong_question"]) == (2, 1, 1)
    assert (stats["malformed"], stats["not_response"]) == (3, 1)
    udp_answer(machine, command, good, 0.2)
    assert lookup.answers[A].addresses == (ipaddress.ip_address("198.18.0.7").packed,)


def test_answers_after_the_try_ended_are_counted_late() -> None:
    machine = resolver()
    machine.lookup("web.test", (A,), now=0.0)
    (first,) = sends(machine)
    machine.handle_timer(now=5.0)
    udp_answer(machine, first, response(first, "web.test. 60 IN A 198.18.0.7"), 5.1)
    assert machine.statistics()["late_answers"] == 1


def test_cancel_releases_the_sockets() -> None:
    machine = resolver()
    lookup = machine.lookup("web.test", (A, AAAA), now=0.0)
    tokens = {c.token for c in sends(machine)}
    machine.cancel(lookup)
    assert {c.token for c in machine.commands() if isinstance(c, Release)} == tokens
    assert machine.get_timer() is None and machine.statistics()["in_progress"] == 0


def test_no_nameservers_times_out_at_once() -> None:
    machine = StubResolver([], rng=random.Random(1))
    lookup = machine.lookup("web.test", (A, AAAA), now=0.0)
    assert lookup.done and lookup.answers[A].outcome is Outcome.TIMEOUT
    assert lookup.answers[AAAA].outcome is Outcome.TIMEOUT and machine.next_event() is lookup


@pytest.mark.parametrize("name", ["", "a..b", "x" * 64 + ".test", ".".join(["abc"] * 80)])
def test_names_that_cannot_be_asked_raise_value_error(name: str) -> None:
    with pytest.raises(ValueError):
        resolver().lookup(name, (A,), now=0.0)


def test_bad_nameservers_and_types_raise() -> None:
    with pytest.raises(ValueError, match="IP address"):
        StubResolver(["ns.test"], rng=random.Random(1))
    with pytest.raises(ValueError, match="port"):
        StubResolver([("198.18.0.1", 0)], rng=random.Random(1))
    with pytest.raises(ValueError, match="rdtypes"):
        resolver().lookup("web.test", (15,), now=0.0)


def test_the_cache_is_bounded() -> None:
    machine = resolver(config=ResolverConfig(cache_size=3))
    for i in range(10):
        machine.lookup(f"h{i}.test", (A,), now=0.0)
        (command,) = sends(machine)
        udp_answer(machine, command, response(command, f"h{i}.test. 60 IN A 198.18.0.{i}"), 0.0)
    assert machine.statistics()["cache_entries"] == 3
    assert machine.lookup("h9.test", (A,), now=1.0).done
    assert not machine.lookup("h0.test", (A,), now=1.0).done


@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    machine = resolver()
    lookup = machine.lookup("web.test", (A,), now=0.0)
    (command,) = sends(machine)
    udp_answer(machine, command, data, 0.0)
    machine.receive_stream(1_000_000, data, now=0.0)
    assert not lookup.done or lookup.answers[A].outcome is not Outcome.TIMEOUT


@given(st.lists(st.binary(min_size=1, max_size=40), max_size=30))
def test_arbitrary_stream_pieces_never_raise(pieces: list[bytes]) -> None:
    machine = resolver()
    lookup = machine.lookup("big.test", (A,), now=0.0)
    (udp,) = sends(machine)
    udp_answer(machine, udp, response(udp, truncated=True), 0.1)
    (tcp,) = sends(machine)
    for piece in pieces:
        machine.receive_stream(tcp.token, piece, now=0.2)
    assert not lookup.done or lookup.answers[A].outcome is not Outcome.TIMEOUT

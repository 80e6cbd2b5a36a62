"""``StubResolver``: the stub resolver as a sans-I/O machine (RFC 1035 §7, RFC 5452, RFC 7766).

No sockets, no clock, no global randomness. A driver (``aio/resolver.py``) runs it:

``lookup(name, rdtypes, now=)``
    start resolving; the hosts table, then the cache, answer at once
``commands()``
    what to do now: :class:`SendDatagram` (a fresh UDP socket on a random
    port, one datagram to the server), :class:`OpenStream` (a TCP connection
    to the server, send the length-prefixed query), :class:`Release` (that
    socket or connection is no longer wanted)
``receive_datagram(token, data, source, now=)``, ``receive_stream(token, data, now=)``,
``stream_closed(token, now=)``
    what came back on a command's socket
``get_timer()`` / ``handle_timer(now=)``
    per-try timeouts
``next_event()``
    a :class:`Lookup` that finished (its ``answers`` are all in)

Each query (one name, one type) tries the servers in order, ``attempts``
rounds, ``timeout`` seconds each (resolv.conf's defaults: 5 s, 2). A query ID
is random per try; an answer must come from the server's address and port,
carry the ID and repeat the question (RFC 5452 §9.1), or it is ignored and
counted. A truncated answer is asked again over TCP (RFC 7766 §5). Answers
are cached for their TTL; NXDOMAIN and NODATA for the SOA's negative TTL
(RFC 2308 §5). A misbehaving server never raises out of the machine.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import dns.exception
import dns.name
import dns.rdatatype

from ..config import ResolverConfig
from .answer import Answer, Outcome
from .cache import AnswerCache
from .hosts import HostsTable, normalize_name
from .messages import MAX_MESSAGE, MalformedError, MismatchError, build_query, read_response

__all__ = [
    "AAAA",
    "DNS_PORT",
    "A",
    "Lookup",
    "OpenStream",
    "Release",
    "SendDatagram",
    "StubResolver",
    "parse_nameserver",
]

A = int(dns.rdatatype.A)
AAAA = int(dns.rdatatype.AAAA)
#: RFC 1035 §4.2: servers listen on port 53, over UDP and TCP.
DNS_PORT = 53
#: The address length of each query type (an A answer is 4 bytes, AAAA 16).
_ADDRESS_LENGTH = {A: 4, AAAA: 16}
#: The counter each kind of unwanted answer goes to.
_MISMATCH_COUNTERS = {"id": "wrong_id", "question": "wrong_question",
                      "not a response": "not_response", "cname loop": "cname_loops"}  # fmt: skip


class RandomSource(Protocol):
    """The part of :class:`random.Random` the resolver uses (IDs)."""

    def getrandbits(self, k: int, /) -> int: ...


@dataclass(frozen=True, slots=True)
class SendDatagram:
    """Send ``payload`` from a new UDP socket on a random port to ``server``:``port``."""

    token: int
    server: bytes
    port: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class OpenStream:
    """Connect over TCP to ``server``:``port`` and send ``payload`` (length prefix included)."""

    token: int
    server: bytes
    port: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Release:
    """The socket or connection of ``token`` is no longer wanted: close it."""

    token: int


Command = SendDatagram | OpenStream | Release


@dataclass(eq=False, slots=True)
class Lookup:
    """One name resolved for one or more types; ``answers`` fills in as queries end."""

    name: str
    rdtypes: tuple[int, ...]
    answers: dict[int, Answer] = field(default_factory=dict)
    #: For the driver: whatever it wants to find again (a future).
    user_data: Any = None

    @property
    def done(self) -> bool:
        return len(self.answers) == len(self.rdtypes)


def parse_nameserver(server: str | tuple[str, int]) -> tuple[bytes, int]:
    """``"198.18.0.1"`` or ``("198.18.0.1", 5353)`` -> packed address and port."""
    host, port = (server, DNS_PORT) if isinstance(server, str) else server
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 0xFFFF:
        raise ValueError(f"nameserver port must be an int in 1..65535, got {port!r}")
    try:
        return ipaddress.ip_address(host).packed, port
    except ValueError:
        raise ValueError(f"a nameserver must be an IP address, got {host!r}") from None


class _Query:
    """One (name, type) asked of the servers in turn."""

    __slots__ = ("buffer", "deadline", "failed", "lookup", "name", "position", "query_id",
                 "rdtype", "stream", "token")  # fmt: skip

    def __init__(self, lookup: Lookup, name: dns.name.Name, rdtype: int) -> None:
        self.lookup = lookup
        self.name = name
        self.rdtype = rdtype
        self.position = -1  # index into the try schedule (server x attempt)
        self.token = 0
        self.query_id = 0
        self.stream = False
        self.deadline = 0.0
        self.buffer = bytearray()
        self.failed = False  # some server answered with a failure rcode


class StubResolver:
    """The stub resolver machine; see the module docstring for the verbs."""

    def __init__(
        self,
        nameservers: Iterable[str | tuple[str, int]] = (),
        *,
        hosts: HostsTable | None = None,
        config: ResolverConfig | None = None,
        rng: RandomSource,
    ) -> None:
        self.config = config or ResolverConfig()
        self.nameservers: list[tuple[bytes, int]] = [parse_nameserver(s) for s in nameservers]
        self.hosts = hosts or HostsTable()
        self.cache = AnswerCache(
            self.config.cache_size, self.config.max_ttl, self.config.max_negative_ttl
        )
        self._rng = rng
        self._queries: dict[int, _Query] = {}  # token -> query
        self._active: dict[Lookup, list[_Query]] = {}
        self._commands: list[Command] = []
        self._events: deque[Lookup] = deque()
        self._next_token = 1
        self._stats: dict[str, int] = dict.fromkeys((
            "lookups", "hosts_answers", "cache_answers", "queries", "udp_sent", "tcp_sent",
            "answers", "truncated", "timeouts", "server_failures", "nxdomain", "no_data",
            "wrong_id", "wrong_question", "wrong_source", "not_response", "malformed",
            "cname_loops", "stream_failures", "late_answers",
        ), 0)  # fmt: skip

    # -- verbs --------------------------------------------------------------------

    def lookup(self, name: str, rdtypes: Sequence[int], *, now: float) -> Lookup:
        """Start resolving ``name`` for each of ``rdtypes`` (A, AAAA).

        Raises ValueError for a name that cannot be asked (empty, a label over
        63 octets, over 255 in all) and RuntimeError past ``max_lookups``.
        """
        key = normalize_name(name)
        types = tuple(dict.fromkeys(rdtypes))
        if not types or any(t not in _ADDRESS_LENGTH for t in types):
            raise ValueError(f"rdtypes must be A and/or AAAA, got {rdtypes!r}")
        if len(self._active) >= self.config.max_lookups:
            raise RuntimeError(f"more than {self.config.max_lookups} lookups in progress")
        self._stats["lookups"] += 1
        lookup = Lookup(key, types)
        known = self.hosts.lookup(key)
        queries: list[int] = []  # the types left for the network
        for rdtype in types:
            if known is not None:
                self._stats["hosts_answers"] += 1
                found = tuple(a for a in known if len(a) == _ADDRESS_LENGTH[rdtype])
                outcome = Outcome.ADDRESSES if found else Outcome.NO_DATA
                lookup.answers[rdtype] = Answer(outcome, found, key, "hosts")
                continue
            cached = self.cache.get(key, rdtype, now)
            if cached is not None:
                self._stats["cache_answers"] += 1
                lookup.answers[rdtype] = cached
                continue
            queries.append(rdtype)
        if not queries:
            self._events.append(lookup)
            return lookup
        try:  # only now: the hosts table and the cache answer without dnspython's parse
            qname = dns.name.from_text(key)
        except dns.exception.DNSException as error:
            raise ValueError(f"not a host name: {name!r} ({error})") from None
        active = [_Query(lookup, qname, rdtype) for rdtype in queries]
        self._active[lookup] = active
        for query in list(active):  # a query may settle (and leave the list) at once
            self._stats["queries"] += 1
            self._next_try(query, now)
        return lookup

    def cancel(self, lookup: Lookup) -> None:
        """Stop a lookup (its caller went away); its sockets are released."""
        for query in self._active.pop(lookup, []):
            self._release(query)

    def in_progress(self) -> list[Lookup]:
        """The lookups still waiting for the network."""
        return list(self._active)

    def commands(self) -> list[Command]:
        """Take the commands queued so far."""
        commands, self._commands = self._commands, []
        return commands

    def next_event(self) -> Lookup | None:
        """A finished lookup, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        deadlines = [q.deadline for qs in self._active.values() for q in qs if q.token]
        return min(deadlines) if deadlines else None

    def handle_timer(self, *, now: float) -> None:
        """Every try whose deadline passed moves on to the next server."""
        for queries in list(self._active.values()):
            for query in list(queries):
                if query.token and now >= query.deadline:
                    self._stats["timeouts"] += 1
                    self._next_try(query, now)

    def receive_datagram(
        self, token: int, data: bytes, source: tuple[bytes, int], *, now: float
    ) -> None:
        """A datagram arrived on the UDP socket of ``token``, from ``source``."""
        query = self._queries.get(token)
        if query is None or query.stream:
            self._stats["late_answers"] += 1
            return
        if source != self._server(query):
            self._stats["wrong_source"] += 1  # RFC 5452 §9.1: address and port must match
            return
        self._answer(query, bytes(data), now)

    def receive_stream(self, token: int, data: bytes, *, now: float) -> None:
        """Bytes arrived on the TCP connection of ``token`` (RFC 7766 §8: 2-byte length)."""
        query = self._queries.get(token)
        if query is None or not query.stream:
            self._stats["late_answers"] += 1
            return
        query.buffer += data
        while len(query.buffer) >= 2:
            length = int.from_bytes(query.buffer[:2], "big")
            if len(query.buffer) < 2 + length:
                return
            message = bytes(query.buffer[2 : 2 + length])
            del query.buffer[: 2 + length]
            self._answer(query, message, now)
            if query.token != token:
                return  # settled, or moved on: the rest of the stream is not ours

    def stream_closed(self, token: int, *, now: float) -> None:
        """The TCP connection of ``token`` failed or ended before an answer."""
        query = self._queries.get(token)
        if query is None or not query.stream:
            return
        self._stats["stream_failures"] += 1
        self._next_try(query, now)

    def statistics(self) -> dict[str, int]:
        result = dict(self._stats)
        result["cache_entries"] = len(self.cache)
        result["in_progress"] = len(self._active)
        return result

    # -- inside -------------------------------------------------------------------

    def _server(self, query: _Query) -> tuple[bytes, int]:
        return self.nameservers[query.position % len(self.nameservers)]

    def _answer(self, query: _Query, data: bytes, now: float) -> None:
        try:
            reading = read_response(data, query.query_id, query.name, query.rdtype)
        except MalformedError:
            self._stats["malformed"] += 1
            return
        except MismatchError as mismatch:
            self._stats[_MISMATCH_COUNTERS[mismatch.reason]] += 1
            return
        self._stats["answers"] += 1
        if reading.truncated:
            if query.stream:
                self._stats["malformed"] += 1  # TC over TCP means nothing sensible
                return
            self._stats["truncated"] += 1
            self._send(query, now, stream=True)  # same server, now over TCP
            return
        if reading.answer is None:
            self._stats["server_failures"] += 1
            query.failed = True
            self._next_try(query, now)
            return
        answer = reading.answer
        if answer.outcome is Outcome.NXDOMAIN:
            self._stats["nxdomain"] += 1
        elif answer.outcome is Outcome.NO_DATA:
            self._stats["no_data"] += 1
        self.cache.put(query.lookup.name, query.rdtype, answer, reading.ttl, now)
        self._settle(query, answer)

    def _next_try(self, query: _Query, now: float) -> None:
        self._release(query)
        query.position += 1
        tries = len(self.nameservers) * self.config.attempts
        if query.position >= tries:
            outcome = Outcome.SERVER_FAILURE if query.failed else Outcome.TIMEOUT
            self._settle(query, Answer(outcome, (), query.lookup.name))
            return
        self._send(query, now, stream=False)

    def _send(self, query: _Query, now: float, *, stream: bool) -> None:
        self._release(query)
        token = self._next_token
        self._next_token += 1
        query.token = token
        query.stream = stream
        query.buffer.clear()
        query.query_id = self._rng.getrandbits(16)  # RFC 5452 §9.2: unpredictable IDs
        query.deadline = now + self.config.timeout
        self._queries[token] = query
        payload = build_query(query.name, query.rdtype, query.query_id)
        server, port = self._server(query)
        if stream:
            self._stats["tcp_sent"] += 1
            prefix = len(payload).to_bytes(2, "big")
            assert len(payload) <= MAX_MESSAGE
            self._commands.append(OpenStream(token, server, port, prefix + payload))
        else:
            self._stats["udp_sent"] += 1
            self._commands.append(SendDatagram(token, server, port, payload))

    def _release(self, query: _Query) -> None:
        if query.token:
            self._queries.pop(query.token, None)
            self._commands.append(Release(query.token))
            query.token = 0

    def _settle(self, query: _Query, answer: Answer) -> None:
        self._release(query)
        lookup = query.lookup
        lookup.answers[query.rdtype] = answer
        queries = self._active.get(lookup)
        if queries is None:
            return
        queries.remove(query)
        if not queries:
            del self._active[lookup]
            self._events.append(lookup)

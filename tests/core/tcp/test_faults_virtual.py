"""Faults in virtual time: the stack's event loop stalled for 2 s, a peer that vanishes
mid-transfer, and connection churn over a lossy path that must leave nothing behind."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from aionetstack.config import TcpConfig
from aionetstack.core.tcp import TcpClosed, TcpConnection, TcpLayer, TcpListener, TcpState
from aionetstack.testing.netsim import Host, PathProfile
from aionetstack.testing.tcp_pair import TcpPair

CHURN = int(os.environ.get("AIONETSTACK_CHURN", "2000"))
DONE = frozenset({TcpState.CLOSED, TcpState.TIME_WAIT, TcpState.FIN_WAIT_2})


class StalledLayer:
    """The layer as the harness drives it, its event loop stuck from ``start`` for
    ``seconds``: arriving segments wait (in the link), timers do not run, nothing is sent;
    then everything that waited is handled at once, late, as a driver's first wake-up
    after a stall does. The layer itself is untouched (its connections still call it);
    every other attribute is the layer's."""

    def __init__(self, layer: TcpLayer, start: float, seconds: float) -> None:
        self._layer = layer
        self._start = start
        self._end = start + seconds
        self._backlog: list[tuple[bytes, bytes, bytes]] = []
        #: Segments that waited out the stall.
        self.held = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    def _stalled(self, now: float) -> bool:
        return self._start <= now < self._end

    def _catch_up(self, now: float) -> None:
        while self._backlog:
            source, destination, raw = self._backlog.pop(0)
            self._layer.receive_segment(source, destination, memoryview(raw), now)

    def receive_segment(self, source: bytes, destination: bytes, segment: Any, now: float) -> None:
        if self._stalled(now):
            self._backlog.append((source, destination, bytes(segment)))
            self.held += 1
            return
        self._catch_up(now)
        self._layer.receive_segment(source, destination, segment, now)

    def get_timer(self) -> float | None:
        deadline = self._layer.get_timer()
        if self._backlog:
            deadline = self._end if deadline is None else min(deadline, self._end)
        if deadline is not None and self._start <= deadline < self._end:
            return self._end
        return deadline

    def handle_timer(self, now: float) -> None:
        if not self._stalled(now):
            self._catch_up(now)
            self._layer.handle_timer(now)

    def flush(self, now: float) -> None:
        if not self._stalled(now):
            self._layer.flush(now)


def stall(host: Host, start: float, seconds: float) -> StalledLayer:
    """Stall ``host``'s layer (:class:`StalledLayer`) as the harness sees it."""
    stalled = StalledLayer(host.layer, start, seconds)
    host.layer = stalled  # type: ignore[assignment]  # the harness calls only its five
    return stalled


@pytest.mark.parametrize("side", ["receiver", "sender"])
def test_a_two_second_stall_mid_transfer_loses_nothing_and_aborts_nothing(side: str) -> None:
    pair = TcpPair(delay=0.01)
    client, server = pair.open()
    data = bytes(range(256)) * 32768  # 8 MiB
    sent = 0
    received = bytearray()
    stalled = stall(pair.b if side == "receiver" else pair.a, pair.now + 0.05, 2.0)

    def done() -> bool:
        nonlocal sent
        if sent < len(data):
            sent += client.send(data[sent : sent + 262_144])
        received.extend(server.receive())
        return len(received) == len(data)

    assert pair.run(done, max_time=120)
    assert bytes(received) == data
    assert stalled.held > 0  # segments did wait out the stall
    assert pair.now > 2.2
    assert client.state is TcpState.ESTABLISHED and server.state is TcpState.ESTABLISHED
    for host in (pair.a, pair.b):
        assert host.layer.statistics().get("connections_timed_out", 0) == 0


def test_a_peer_that_vanishes_mid_transfer_ends_the_connection_with_timeout_error() -> None:
    """The peer disappears (no RST, nothing at all): the sender fails with TimeoutError
    after its retries (here a 20 s user timeout), reports it once, keeps nothing."""
    pair = TcpPair(TcpConfig(user_timeout=20.0), delay=0.01)
    client, _ = pair.open()
    gone_at = pair.now + 0.05
    pair.intercept = lambda direction, segment: pair.now < gone_at
    client.send(b"v" * 1_000_000)
    pair.run(lambda: client.state is TcpState.CLOSED, max_time=120)
    closed = [e for e in pair.events_a if isinstance(e, TcpClosed)]
    assert len(closed) == 1 and isinstance(closed[0].error, TimeoutError)
    assert 20.0 <= pair.now - gone_at <= 60.0
    assert pair.a.layer.statistics()["connections_current"] == 0


def request_response(listener: TcpListener, batch: list[TcpConnection]) -> Callable[[], bool]:
    """A step function: clients send a request, servers answer and close, clients close."""
    servers: list[TcpConnection] = []
    answered: set[int] = set()
    asked: set[int] = set()

    def progress() -> bool:
        while (accepted := listener.accept()) is not None:
            servers.append(accepted)
        for server in servers:
            if id(server) not in answered and server.receive():
                answered.add(id(server))
                server.send(b"response")
                server.close()
        for client in batch:
            if client.state not in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT):
                continue
            if id(client) not in asked:
                asked.add(id(client))
                client.send(b"request")
            elif client.receive() or client.eof_received:
                client.close()
        return all(c.state in DONE for c in batch)

    return progress


def test_connection_churn_over_a_lossy_path_leaves_nothing_behind() -> None:
    """CHURN (2,000; AIONETSTACK_CHURN=10000 for the full run) request/response
    connections, 50 at a time, over 2 % loss, duplication and reordering; both sides
    close. After 2*MSL and the orphan timeouts nothing is left on either side, and
    every connection reported TcpClosed exactly once."""
    lossy = PathProfile(delay=0.005, loss=0.02, duplicate=0.01, reorder=0.02)
    config = TcpConfig(msl=5.0, fin_wait_2_timeout=10.0)
    pair = TcpPair(config, config, seed=3)
    for path in pair.network.paths.values():
        path.profile = lossy
    listener = pair.listen(80, backlog=128)
    finished = 0
    while finished < CHURN:
        batch = [pair.connect(80) for _ in range(min(50, CHURN - finished))]
        progress = request_response(listener, batch)
        assert pair.run(progress, max_time=600)
        finished += len(batch)
    pair.run_for(60.0)
    for host in (pair.a, pair.b):
        stats = host.layer.statistics()
        assert stats["connections_current"] == 0, stats
    closed_a = [e for e in pair.events_a if isinstance(e, TcpClosed)]
    assert len(closed_a) == CHURN
    assert len({id(e.connection) for e in closed_a}) == CHURN

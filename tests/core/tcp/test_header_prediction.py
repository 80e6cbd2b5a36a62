"""Header prediction: the fast path must leave exactly the state the full processing would.

Each exchange is run twice, once with prediction and once with it disabled (by
patching it to decline), and the connections' observable state is compared.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aionetstack.core.tcp import TcpConnection
from aionetstack.testing.tcp_pair import TcpPair


def _exchange(
    pair: TcpPair, client: TcpConnection, server: TcpConnection, sizes: list[int]
) -> bytes:
    """One request/response transaction per size; returns what came back."""
    echoed = bytearray()
    for number, size in enumerate(sizes):
        request = bytes([number & 0xFF]) * size
        assert client.send(request) == len(request)
        assert pair.run(_echoes(server, len(request)), max_time=30)
        assert pair.run(_collects(client, echoed, len(echoed) + len(request)), max_time=30)
    return bytes(echoed)


def _echoes(server: TcpConnection, count: int) -> Callable[[], bool]:
    """A ``pair.run`` condition: the server echoes what it reads until ``count`` bytes."""
    seen = 0

    def served() -> bool:
        nonlocal seen
        data = server.receive()
        seen += len(data)
        if data:
            server.send(data)
        return seen == count

    return served


def _collects(client: TcpConnection, into: bytearray, total: int) -> Callable[[], bool]:
    def answered() -> bool:
        into.extend(client.receive())
        return len(into) == total

    return answered


def _observable(connection: TcpConnection) -> tuple[object, ...]:
    rtt = connection._rtt
    return (
        connection.state,
        connection._una,
        connection._nxt,
        connection._rcv_nxt,
        connection._snd_wnd,
        connection._cc.cwnd,
        rtt.samples,
        rtt.srtt,
        rtt.rto,
        connection._rto_deadline,
        connection._tlp_deadline,
        connection._delack_deadline,
        connection.send_buffer_free,
    )


Result = tuple[bytes, tuple[object, ...], tuple[object, ...], int]


def _run(predict: bool, sizes: list[int], monkeypatch: pytest.MonkeyPatch) -> Result:
    with monkeypatch.context() as patch:
        if not predict:
            patch.setattr(TcpConnection, "_predicted_segment", lambda *args: False)
        pair = TcpPair(seed=3)
        client, server = pair.open()
        echoed = _exchange(pair, client, server, sizes)
        predicted = pair.b.layer.statistics().get("predicted_segments", 0)
        return echoed, _observable(client), _observable(server), predicted


@pytest.mark.parametrize(
    "sizes",
    [[1] * 40, [1 + n * 37 % 3000 for n in range(40)]],
    ids=["one-byte", "growing"],
)
@pytest.mark.interpreted  # patches a method compiled code calls directly
def test_prediction_leaves_the_state_full_processing_would(
    sizes: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _run(True, sizes, monkeypatch)
    slow = _run(False, sizes, monkeypatch)
    assert fast[:3] == slow[:3]
    assert fast[0] == b"".join(bytes([n & 0xFF]) * size for n, size in enumerate(sizes))
    assert fast[3] > 0 and slow[3] == 0


def test_one_byte_requests_acknowledging_the_answer_are_predicted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each request after the first acknowledges the whole previous answer (new data)."""
    assert _run(True, [1] * 40, monkeypatch)[3] >= 39


def test_a_request_acknowledging_part_of_the_answer_takes_the_full_path() -> None:
    """With two answer segments in flight, a request that acknowledges only the first is
    processed in full (loss detection may have work to do) and ends in the right state."""
    pair = TcpPair(seed=4)
    client, server = pair.open()
    server.set_nodelay(True)  # Nagle would hold the b's until the a's are acknowledged
    held: list[object] = []

    def hold_second_answer(direction: str, segment: object) -> bool:
        payload = getattr(segment, "payload", b"")
        if direction == "ba" and payload and not held and payload[:1] == b"b":
            held.append(segment)
            return False
        return True

    pair.intercept = hold_second_answer
    # One MSS of a's: the client's window edge then moves by a full MSS when it reads
    # them, so its next segment advertises the same window (prediction's precondition).
    server.send(b"a" * 1460)
    pair.run(lambda: client.readable_bytes == 1460, max_time=5)
    server.send(b"b" * 1000)  # dropped once: in flight as far as the server knows
    pair.run_for(0.005)
    before = pair.b.layer.statistics().get("predicted_segments", 0)
    client.receive()
    client.send(b"q")  # acknowledges the a's only
    pair.run(lambda: server.readable_bytes == 1, max_time=5)
    assert held, "the second answer was never sent"
    assert pair.b.layer.statistics().get("predicted_segments", 0) == before
    assert server._una == 1461
    assert server.receive() == b"q"
    pair.intercept = None
    got = bytearray()
    assert pair.run(lambda: bool(got.extend(client.receive())) or len(got) == 1000)
    assert bytes(got) == b"b" * 1000


def _bulk(predict: bool, size: int, monkeypatch: pytest.MonkeyPatch) -> Result:
    """One-way transfer of ``size`` bytes: the sender sees pure ACKs."""
    with monkeypatch.context() as patch:
        if not predict:
            patch.setattr(TcpConnection, "_predicted_ack", lambda *args: False)
        pair = TcpPair(seed=5)
        client, server = pair.open()
        data = bytes(range(256)) * (size // 256)
        sent = 0
        received = bytearray()

        def step() -> bool:
            nonlocal sent
            if sent < len(data):
                sent += client.send(data[sent:])
            received.extend(server.receive())
            return len(received) == len(data) and client._una == client._nxt

        assert pair.run(step, max_time=60)
        assert bytes(received) == data
        predicted = pair.a.layer.statistics().get("predicted_acks", 0)
        return bytes(received), _observable(client), _observable(server), predicted


@pytest.mark.interpreted  # patches a method compiled code calls directly
def test_pure_ack_prediction_leaves_the_state_full_processing_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = _bulk(True, 2_000_000, monkeypatch)
    slow = _bulk(False, 2_000_000, monkeypatch)
    assert fast[:3] == slow[:3]
    assert fast[3] > 0 and slow[3] == 0


def _count_outputs(patch: pytest.MonkeyPatch, connection: TcpConnection) -> list[int]:
    """Patch ``output`` to count its calls for ``connection`` (counted work, not time)."""
    calls = [0]
    original = TcpConnection.output

    def counting(self: TcpConnection, now: float) -> None:
        if self is connection:
            calls[0] += 1
        original(self, now)

    patch.setattr(TcpConnection, "output", counting)
    return calls


@pytest.mark.interpreted  # counts calls of a method compiled code calls directly
def test_a_predicted_request_with_nothing_to_send_skips_the_output_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A predicted data segment that owes no ACK yet and lets nothing out costs no
    ``output`` call; its delayed ACK still leaves at the deadline."""
    pair = TcpPair(seed=6)
    client, server = pair.open()
    with monkeypatch.context() as patch:
        calls = _count_outputs(patch, server)
        before = pair.b.layer.statistics().get("predicted_segments", 0)
        client.send(b"q")
        pair.run_for(0.002)  # delivered (1 ms path), well before the 40 ms delayed ACK
        assert pair.b.layer.statistics()["predicted_segments"] == before + 1
        assert server.readable_bytes == 1
        assert calls[0] == 0
        assert server._delack_deadline is not None
        acked_at = server._delack_deadline
        pair.run(lambda: client._una == client._nxt, max_time=1)
    assert pair.now == pytest.approx(acked_at + 0.001)  # the ACK, sent at the deadline


def test_a_predicted_request_lets_out_the_answer_nagle_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request that acknowledges the whole answer in flight releases the small answer
    Nagle was holding behind it in the same pass, not at the delayed-ACK deadline."""
    pair = TcpPair(seed=7)
    client, server = pair.open()
    server.send(b"a")
    pair.run_for(0.0005)  # in flight: Nagle holds the next small write behind it
    server.send(b"b")
    assert server._nxt - server._una == 1
    pair.run(lambda: client.readable_bytes == 1, max_time=1)
    assert client.receive() == b"a"
    before = pair.b.layer.statistics().get("predicted_segments", 0)
    client.send(b"q")  # its ACK field acknowledges the "a": everything in flight
    sent_at = pair.now
    pair.run(lambda: client.readable_bytes == 1, max_time=1)
    assert pair.b.layer.statistics()["predicted_segments"] == before + 1
    assert client.receive() == b"b"
    assert pair.now == pytest.approx(sent_at + 0.002)  # one path delay each way


@pytest.mark.interpreted  # counts calls of a method compiled code calls directly
def test_a_predicted_second_full_segment_is_acknowledged_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RFC 5681 §4.2: the second full-sized segment owes an ACK at once; the predicted
    path still asks for the output pass that sends it (no delayed-ACK wait)."""
    pair = TcpPair(seed=8)
    client, server = pair.open()
    client.send(b"w")  # a first exchange, so the data segments below are predicted
    pair.run(lambda: server.readable_bytes == 1, max_time=1)
    server.receive()
    pair.run(lambda: client._una == client._nxt, max_time=1)
    with monkeypatch.context() as patch:
        calls = _count_outputs(patch, server)
        before = pair.b.layer.statistics().get("predicted_segments", 0)
        data = bytes(2 * client._snd_mss)
        sent_at = pair.now
        assert client.send(data) == len(data)
        assert pair.run(lambda: client._una == client._nxt, max_time=1)
        assert pair.b.layer.statistics()["predicted_segments"] == before + 2
        assert calls[0] == 1  # the second segment's pass, which sent the ACK
    assert pair.now == pytest.approx(sent_at + 0.002)  # one path delay each way

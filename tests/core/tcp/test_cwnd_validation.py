"""No cwnd growth while application-limited (RFC 9438 §5.8; Linux ``tcp_is_cwnd_limited``):
a sender the application keeps short of its window does not grow cwnd; one that fills it
does."""

from __future__ import annotations

from aionetstack.testing.tcp_pair import TcpPair


def test_request_response_leaves_cwnd_where_it_started() -> None:
    pair = TcpPair(seed=3)
    client, server = pair.open()
    start = server._cc.cwnd
    for _ in range(200):  # 200 one-byte exchanges: the server never has more than 1 in flight
        client.send(b"?")
        assert pair.run(lambda: server.readable_bytes == 1, max_time=5.0)
        server.receive()
        server.send(b"!")
        assert pair.run(lambda: client.readable_bytes == 1, max_time=5.0)
        client.receive()
    assert server._cc.cwnd == start
    assert client._cc.cwnd == start


def test_a_bulk_sender_still_grows_cwnd_in_slow_start() -> None:
    pair = TcpPair(seed=3)
    client, server = pair.open()
    start = client._cc.cwnd
    data = bytes(2_000_000)
    sent = client.send(data)
    received = 0

    def drained() -> bool:
        nonlocal received
        received += len(server.receive())
        return received == sent

    assert pair.run(drained, max_time=60.0)
    assert client._cc.cwnd >= 8 * start

"""The TCP events' value semantics: equal when of one class about the same object,
hashed alike then, and shown by their fields (they are plain classes, compiled)."""

from __future__ import annotations

from typing import Any, cast

from aionetstack.core.tcp.events import (
    TcpAccepted,
    TcpClosed,
    TcpConnected,
    TcpEofReceived,
    TcpReadable,
    TcpWritable,
)


class _Endpoint:
    def __repr__(self) -> str:
        return "<endpoint>"


def test_events_about_the_same_connection_are_equal_only_within_a_class() -> None:
    one, other = cast(Any, _Endpoint()), cast(Any, _Endpoint())
    for kind in (TcpConnected, TcpReadable, TcpWritable, TcpEofReceived):
        assert kind(one) == kind(one) and hash(kind(one)) == hash(kind(one))
        assert kind(one) != kind(other)
        assert kind(one).connection is one
        assert repr(kind(one)) == f"{kind.__name__}(connection=<endpoint>)"
    assert TcpReadable(one) != TcpWritable(one)
    assert TcpAccepted(one) == TcpAccepted(one) != TcpAccepted(other)
    assert hash(TcpAccepted(one)) == hash(TcpAccepted(one))
    assert repr(TcpAccepted(one)) == "TcpAccepted(listener=<endpoint>)"


def test_a_closed_event_holds_its_error() -> None:
    endpoint = cast(Any, _Endpoint())
    error = ConnectionResetError("reset")
    closed = TcpClosed(endpoint, error)
    assert (closed.connection, closed.error) == (endpoint, error)
    assert closed == TcpClosed(endpoint, error) != TcpClosed(endpoint, None)
    assert closed != TcpReadable(endpoint)
    assert hash(closed) == hash(TcpClosed(endpoint, None))
    assert repr(TcpClosed(endpoint, None)) == "TcpClosed(connection=<endpoint>, error=None)"

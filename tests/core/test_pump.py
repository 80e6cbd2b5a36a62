"""The pump's event dispatch: an :class:`EventHandlers` table sends each of the core's
events to the handler of its exact class, in order; other events are dropped, and a
handler that raises is reported and counted without losing the events after it."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any, cast

from aionetstack.core.pump import EventHandlers, Pump
from aionetstack.core.stack import StackCore
from aionetstack.core.tcp.events import TcpEofReceived, TcpReadable, TcpWritable


def test_a_table_calls_the_handler_of_the_events_exact_class_only() -> None:
    seen: list[tuple[str, object]] = []
    table = EventHandlers({
        TcpReadable: lambda event: seen.append(("readable", event)),
        TcpWritable: lambda event: seen.append(("writable", event)),
    })  # fmt: skip
    endpoint = cast(Any, object())
    readable, writable = TcpReadable(endpoint), TcpWritable(endpoint)
    for event in (readable, TcpEofReceived(endpoint), "other", writable):
        table(event)
    assert seen == [("readable", readable), ("writable", writable)]


def test_the_pump_delivers_through_a_table_and_survives_a_failing_handler() -> None:
    core = StackCore(["198.18.0.2/24"], rng=random.Random(1))
    delivered: list[object] = []
    reports: list[str] = []

    def fail(event: object) -> None:
        raise RuntimeError("a bug in a handler")

    sent: list[object] = []
    link = cast(Any, SimpleNamespace(send=sent.append, send_offloaded=sent.append))
    pump = Pump(
        core, link, EventHandlers({TcpReadable: delivered.append, TcpWritable: fail}),
        lambda doing, error: reports.append(f"{doing}: {error}"),
    )  # fmt: skip
    endpoint = cast(Any, object())
    events = [TcpReadable(endpoint), TcpWritable(endpoint), "dropped", TcpReadable(endpoint)]
    core.events.extend(events)
    pump.process(0.0)
    assert delivered == [events[0], events[3]]
    assert reports == ["delivering TcpWritable: a bug in a handler"]
    assert pump.internal_errors == 1
    assert not core.events and not sent

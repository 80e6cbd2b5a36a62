"""A finished connection's last bytes reach a protocol that pauses reading while they
are handed over (aio/transport.py ``on_closed``): what is left waits for
``resume_reading()``, then ``connection_lost``."""

from __future__ import annotations

import asyncio

from aionetstack.aio.transport import TcpTransport

from .test_tcp_transport import (
    WAIT,
    Listening,
    Recorder,
    connect,
    pattern,
    stack_pair,
    transport_of,
    until,
)


class PausesOnSecondDelivery(Recorder):
    def data_received(self, data: bytes) -> None:
        assert "connection_lost" not in self.calls
        super().data_received(data)
        if self.calls.count("data_received") == 2:
            transport_of(self).pause_reading()


async def test_a_pause_while_a_finished_connection_is_drained_keeps_the_rest() -> None:
    async with stack_pair() as (near, far):
        listening = Listening(lambda: PausesOnSecondDelivery(pause_on_connect=True))
        client, server, _ = await connect(near, far, server=listening)
        payload = pattern(1_000_000, seed=5)
        transport_of(client).write(payload)
        (connection,) = [c for c in far.core.tcp.connections if c.remote_port != 0]
        await until(lambda: connection.readable_bytes == len(payload))  # all held, unread
        transport = transport_of(server)
        assert isinstance(transport, TcpTransport)
        transport.resume_reading()  # delivery scheduled: reading is on, nothing delivered
        # The stack's end event now, every byte still unread: the drain delivers, the
        # protocol pauses at its second delivery, and the rest must wait, not be lost.
        transport.on_closed(None)
        assert server.calls.count("data_received") == 2
        assert "connection_lost" not in server.calls
        transport.resume_reading()
        assert await asyncio.wait_for(server.lost, WAIT) is None
        assert server.data == payload

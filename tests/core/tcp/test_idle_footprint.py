"""What an idle connection keeps: no out-of-order queue, no SYN options, and a transport
without a write queue, address tuples or socket stand-in until something asks for them."""

from __future__ import annotations

import asyncio
import socket

from aionetstack import MemoryLink, Stack
from aionetstack.aio.transport import TcpTransport
from aionetstack.config import StackConfig, TcpConfig

NEAR, FAR = "198.18.0.2", "198.18.0.1"


async def _connected(config: StackConfig | None = None) -> tuple[Stack, Stack]:
    near_link, far_link = MemoryLink.pair(mtu=1500)
    far = Stack(far_link, address=f"{FAR}/24", seed=2, config=config)
    near = Stack(near_link, address=f"{NEAR}/24", seed=1, config=config)
    return near, far


async def test_an_idle_connection_and_its_transport_hold_only_their_fixed_fields() -> None:
    near, far = await _connected()
    async with far, near:
        server = await far.create_server(asyncio.Protocol, None, 7000)
        transport, _ = await near.create_connection(asyncio.Protocol, FAR, 7000)
        assert isinstance(transport, TcpTransport)
        assert not hasattr(transport, "__dict__")
        connection = transport._connection
        # Every mixin of TcpConnection has empty __slots__: no per-instance dict.
        assert not hasattr(connection, "__dict__")
        assert connection._ooo is None and connection._syn_options is None
        assert connection._retx_queue is None  # made at the first retransmission
        assert transport._pending is None and transport._socket is None
        assert transport.get_extra_info("peername") == (FAR, 7000)
        assert transport.get_extra_info("sockname")[0] == NEAR
        sock = transport.get_extra_info("socket")
        assert sock is transport.get_extra_info("socket")  # options set on it persist
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert (
            transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            == 1
        )
        assert transport.get_extra_info("no such thing", "default") == "default"
        transport.close()
        server.close()


async def test_writes_beyond_the_send_buffer_queue_then_drain_and_free_the_queue() -> None:
    config = StackConfig(tcp=TcpConfig(send_buffer=4096))
    near, far = await _connected(config)
    async with far, near:
        received = bytearray()
        done = asyncio.get_running_loop().create_future()

        class Sink(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                received.extend(data)
                if len(received) == 50_000 and not done.done():
                    done.set_result(None)

        server = await far.create_server(Sink, None, 7001)
        transport, _ = await near.create_connection(asyncio.Protocol, FAR, 7001)
        assert isinstance(transport, TcpTransport)
        payload = bytes(range(250)) * 200
        transport.write(payload)
        assert transport._pending is not None and transport.get_write_buffer_size() > 0
        await asyncio.wait_for(done, 10)
        assert bytes(received) == payload
        assert transport._pending is None and transport.get_write_buffer_size() == 0
        transport.close()
        server.close()

"""The relay: intercept handlers that join each flow to an upstream connection.

TCP: the upstream connection is made first, while the client's SYN is held;
only then is the flow accepted, so an unreachable or refusing destination
reaches the client as "connection refused" (RST) at once, the pattern of
Tailscale and gVisor's forwarder. Bytes are pumped both ways; an EOF is passed
on as a half-close; a reset or error on either side aborts both.

UDP: one upstream datagram path per flow, both directions pumped until the
flow ends (idle, or closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, fields

from ..aio.intercept import TcpFlow, UdpFlow
from .upstream import Upstream, UpstreamError

__all__ = ["ProxyStatistics", "Relay"]

logger = logging.getLogger("aionetstack.proxy")

#: Bytes read per step of a pump.
_CHUNK = 256 * 1024


@dataclass
class ProxyStatistics:
    """Counters of a :class:`Relay` (all since it started, but ``*_active``)."""

    tcp_active: int = 0
    tcp_relayed: int = 0
    tcp_refused: int = 0
    tcp_loops_refused: int = 0
    udp_active: int = 0
    udp_relayed: int = 0
    udp_refused: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    datagrams_up: int = 0
    datagrams_down: int = 0

    def line(self) -> str:
        """One line for a log: ``name=value`` pairs."""
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


class Relay:
    """``tcp``/``udp`` handlers for ``Stack.intercept`` that relay to ``upstream``."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.stats = ProxyStatistics()

    async def on_tcp(self, flow: TcpFlow) -> None:
        """Dial the destination, then accept; refuse when the dial fails."""
        stats = self.stats
        if self.upstream.is_own("tcp", flow.source, flow.destination):
            stats.tcp_loops_refused += 1
            logger.warning("refusing %r: our own upstream connection came back (a loop)", flow)
            flow.reject()
            return
        try:
            up_reader, up_writer = await self.upstream.open_tcp(*flow.destination)
        except UpstreamError as error:
            stats.tcp_refused += 1
            logger.debug("refused %r: %s", flow, error)
            flow.reject()
            return
        try:
            reader, writer = await flow.accept()
        except (OSError, RuntimeError):
            up_writer.transport.abort()
            return
        stats.tcp_relayed += 1
        stats.tcp_active += 1
        try:
            await _join(reader, writer, up_reader, up_writer, stats)
        finally:
            stats.tcp_active -= 1

    async def on_udp(self, flow: UdpFlow) -> None:
        """Open a datagram path to the destination and pump until the flow ends."""
        stats = self.stats
        if self.upstream.is_own("udp", flow.source, flow.destination):
            stats.udp_refused += 1
            return
        try:
            path = await self.upstream.open_udp(*flow.destination)
        except UpstreamError as error:
            stats.udp_refused += 1
            logger.debug("UDP %r: %s", flow, error)
            return
        stats.udp_relayed += 1
        stats.udp_active += 1

        async def back() -> None:
            while (data := await path.receive()) is not None:
                stats.datagrams_down += 1
                flow.send(data)

        returning = asyncio.get_running_loop().create_task(back())
        try:
            async for datagram in flow:
                stats.datagrams_up += 1
                path.send(datagram)
                if returning.done():
                    break
        finally:
            stats.udp_active -= 1
            returning.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await returning
            path.close()


async def _join(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
    stats: ProxyStatistics,
) -> None:
    """Pump both ways until both directions ended; abort both on an error."""
    up = asyncio.ensure_future(_pump(reader, up_writer, stats, "bytes_up"))
    down = asyncio.ensure_future(_pump(up_reader, writer, stats, "bytes_down"))
    try:
        done, _ = await asyncio.wait((up, down), return_when=asyncio.FIRST_EXCEPTION)
        if any(task.exception() is not None for task in done):
            writer.transport.abort()
            up_writer.transport.abort()
        await asyncio.gather(up, down, return_exceptions=True)
    finally:
        for task in (up, down):
            task.cancel()
        for side in (writer, up_writer):
            side.close()


async def _pump(
    source: asyncio.StreamReader,
    sink: asyncio.StreamWriter,
    stats: ProxyStatistics,
    counter: str,
) -> None:
    """Copy until EOF, then half-close the sink."""
    while data := await source.read(_CHUNK):
        sink.write(data)
        setattr(stats, counter, getattr(stats, counter) + len(data))
        await sink.drain()
    if sink.can_write_eof() and not sink.is_closing():
        sink.write_eof()

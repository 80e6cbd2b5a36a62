"""Intercept mode on asyncio: ``Stack.intercept`` and the flows it hands to handlers.

Each new flow runs its handler as a task: ``on_tcp(TcpFlow)`` decides with
``await flow.accept()`` (the handshake completes; asyncio streams whose
``sockname`` is the original destination) or ``flow.reject()``; ``on_udp(UdpFlow)``
reads with ``await flow.receive()`` and answers with ``flow.send()``. A handler
that raises resets its flow (counted under ``intercept.handler_errors`` and
logged on the ``aionetstack.intercept`` logger); the stack goes on. A TCP
handler that returns without deciding rejects its flow; a UDP flow ends when
its handler returns (the client's next datagram starts a new flow).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..core.intercept import REJECT_ICMP, Interceptor, InterceptRule, PendingTcpFlow
from ..core.intercept import UdpFlow as CoreUdpFlow

if TYPE_CHECKING:
    from ..core.tcp import TcpEndpoint

__all__ = ["InterceptOwner", "Interception", "TcpFlow", "UdpFlow"]

logger = logging.getLogger("aionetstack.intercept")


class InterceptOwner(Protocol):
    """What intercept needs from the stack that runs it (``Stack`` satisfies it)."""

    def request_flush(self) -> None:
        """Put what became sendable on the link soon."""

    def streams_for(
        self, connection: TcpEndpoint, limit: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Wrap an established connection in asyncio streams."""


def _endpoint(address: bytes, port: int) -> tuple[str, int]:
    return (str(ipaddress.ip_address(address)), port)


class TcpFlow:
    """A TCP connection attempt to an intercepted address, held until decided.

    ``source`` and ``destination`` are ``(host, port)`` as the client sent
    them. Nothing has been answered yet: :meth:`accept` completes the
    handshake, :meth:`reject` refuses. Undecided flows are rejected after
    ``InterceptConfig.pending_timeout`` (5 s by default).
    """

    __slots__ = ("_core", "_flow", "_owner", "_writer", "destination", "source")

    def __init__(self, owner: InterceptOwner, core: Interceptor, flow: PendingTcpFlow) -> None:
        self._owner = owner
        self._core = core
        self._flow = flow
        self._writer: asyncio.StreamWriter | None = None
        self.source = _endpoint(flow.remote, flow.remote_port)
        self.destination = _endpoint(flow.local, flow.local_port)

    def __repr__(self) -> str:
        return f"<TcpFlow {self.source} -> {self.destination} {self._flow.state}>"

    @property
    def state(self) -> str:
        """``pending``, ``accepted``, ``rejected``, ``timed_out`` or ``cancelled``."""
        return self._flow.state

    async def accept(
        self, *, limit: int = 2**16
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Complete the handshake and return the connection's streams.

        The writer's ``get_extra_info('sockname')`` is the original destination,
        ``'peername'`` the client. Raises ``TimeoutError`` when the flow was not
        decided in time (it was rejected), ``ConnectionResetError`` when the
        client gave up first or the handshake failed, ``RuntimeError`` when
        it was already accepted or rejected.
        """
        self._check_pending()
        loop = asyncio.get_running_loop()
        connection: Any = self._core.accept(self._flow, loop.time())
        waiter: asyncio.Future[None] = loop.create_future()
        connection.user_data = waiter
        self._owner.request_flush()
        try:
            await waiter
        except asyncio.CancelledError:
            connection.abort()
            self._owner.request_flush()
            raise
        except ConnectionRefusedError as error:  # RST to our SYN-ACK: the client went away
            raise ConnectionResetError(error.errno, "the client reset the connection") from None
        reader, writer = self._owner.streams_for(connection, limit)
        self._writer = writer
        return reader, writer

    def reject(self, *, icmp: str | None = None) -> None:
        """Refuse the connection: RST ("connection refused"), or with ``icmp`` set to
        ``"port-unreachable"`` or ``"admin-prohibited"`` an ICMP destination
        unreachable. Does nothing if the flow already ended (timed out, cancelled,
        rejected); ``RuntimeError`` once accepted.
        """
        state = self._flow.state
        if state == "accepted":
            raise RuntimeError("the flow was already accepted")
        if icmp is not None and icmp not in REJECT_ICMP:
            raise ValueError(f"icmp must be one of {sorted(REJECT_ICMP)} or None, got {icmp!r}")
        if state != "pending":
            return
        self._core.reject(self._flow, asyncio.get_running_loop().time(), icmp=icmp)
        self._owner.request_flush()

    def _check_pending(self) -> None:
        state = self._flow.state
        if state == "timed_out":
            raise TimeoutError("the intercepted SYN was not accepted in time (it was reset)")
        if state == "cancelled":
            raise ConnectionResetError("the client gave up (RST) or the interception closed")
        if state != "pending":
            raise RuntimeError(f"the flow was already {state}")

    def _reset(self) -> None:
        """The handler failed: refuse a pending flow, abort an accepted one."""
        if self._flow.state == "pending":
            self._core.reject(self._flow, asyncio.get_running_loop().time())
        elif self._writer is not None:
            self._writer.transport.abort()
        self._owner.request_flush()


class UdpFlow:
    """Datagrams between one client and one intercepted ``(host, port)``.

    ``source`` is the client, ``destination`` the address it sent to; replies
    sent with :meth:`send` leave from ``destination``. The flow ends when its
    handler returns, on :meth:`close`, or after ``udp_idle_timeout`` (60 s)
    without a datagram either way.
    """

    __slots__ = ("_core", "_flow", "_owner", "_waiter", "destination", "source")

    def __init__(self, owner: InterceptOwner, core: Interceptor, flow: CoreUdpFlow) -> None:
        self._owner = owner
        self._core = core
        self._flow = flow
        self._waiter: asyncio.Future[None] | None = None
        self.source = _endpoint(flow.remote, flow.remote_port)
        self.destination = _endpoint(flow.local, flow.local_port)

    def __repr__(self) -> str:
        return f"<UdpFlow {self.source} -> {self.destination}{' closed' if self.closed else ''}>"

    @property
    def closed(self) -> bool:
        return self._flow.closed

    async def receive(self) -> bytes:
        """The next datagram from the client. ``ConnectionAbortedError`` once the
        flow has ended (and its queue is empty)."""
        while True:
            data = self._flow.receive()
            if data is not None:
                return data
            if self._flow.closed:
                raise ConnectionAbortedError("the UDP flow is closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        """Datagrams until the flow ends (then the iteration stops)."""
        while True:
            try:
                yield await self.receive()
            except ConnectionAbortedError:
                return

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Send one datagram to the client from ``destination``.

        ``OSError(EBADF)`` once closed; ``OSError(EMSGSIZE)`` when too large.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
        self._flow.send(data, asyncio.get_running_loop().time())
        self._owner.request_flush()

    def close(self) -> None:
        """End the flow; datagrams the client sends later start a new one. Idempotent."""
        self._flow.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


TcpHandler = Callable[[TcpFlow], Awaitable[Any]]
UdpHandler = Callable[[UdpFlow], Awaitable[Any]]


class Interception:
    """What ``Stack.intercept`` returns: :meth:`close` stops intercepting.

    Pending SYNs are then reset and UDP flows end; accepted connections and
    running handlers go on (as ``asyncio.Server.close`` leaves its clients).
    """

    def __init__(
        self,
        owner: InterceptOwner,
        core: Interceptor,
        rule: InterceptRule,
        tcp: TcpHandler | None,
        udp: UdpHandler | None,
    ) -> None:
        self._owner = owner
        self._core = core
        self._rule = rule
        self._tcp = tcp
        self._udp = udp
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.get_running_loop()
        rule.user_data = self

    def __repr__(self) -> str:
        state = "closed" if self._rule.closed else "open"
        return f"<Interception {self.networks} {state}>"

    @property
    def networks(self) -> list[str]:
        return [str(network) for network in self._rule.networks]

    @property
    def is_open(self) -> bool:
        return not self._rule.closed

    def close(self) -> None:
        """Stop intercepting these networks. Idempotent."""
        if self._rule.closed:
            return
        self._core.remove(self._rule, self._loop.time())
        self._owner.request_flush()

    async def __aenter__(self) -> Interception:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def cancel_handlers(self) -> None:
        """Cancel every running handler task (the stack does this when it closes)."""
        for task in list(self._tasks):
            if not task.done():
                task.cancel()

    # -- called by the stack on core events ----------------------------------------

    def on_tcp(self, flow: PendingTcpFlow) -> None:
        if self._tcp is None:  # cannot happen: the core takes TCP only with a handler
            self._core.reject(flow, asyncio.get_running_loop().time())
            return
        face = TcpFlow(self._owner, self._core, flow)
        flow.user_data = face
        self._spawn(self._run_tcp(self._tcp, face))

    def on_udp(self, flow: CoreUdpFlow) -> None:
        if self._udp is None:
            flow.close()
            return
        face = UdpFlow(self._owner, self._core, flow)
        flow.user_data = face
        self._spawn(self._run_udp(self._udp, face))

    @staticmethod
    def on_udp_readable(flow: CoreUdpFlow) -> None:
        face = flow.user_data
        if isinstance(face, UdpFlow):
            face._wake()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_tcp(self, handler: TcpHandler, flow: TcpFlow) -> None:
        try:
            await handler(flow)
        except asyncio.CancelledError:
            flow._reset()
            raise
        except Exception:
            self._core.count("handler_errors")
            logger.exception("intercept TCP handler failed for %r; the flow is reset", flow)
            flow._reset()
            return
        if flow.state == "pending":
            self._core.count("tcp_handler_undecided")
            flow.reject()

    async def _run_udp(self, handler: UdpHandler, flow: UdpFlow) -> None:
        try:
            await handler(flow)
        except asyncio.CancelledError:
            flow.close()
            raise
        except Exception:
            self._core.count("handler_errors")
            logger.exception("intercept UDP handler failed for %r; the flow is closed", flow)
        flow.close()


def add_interception(
    owner: InterceptOwner,
    core: Interceptor,
    *,
    tcp: TcpHandler | None,
    udp: UdpHandler | None,
    networks: Sequence[str],
    icmp_echo: bool,
) -> Interception:
    """Validate the arguments, add the core rule and return its :class:`Interception`."""
    for name, handler in (("tcp", tcp), ("udp", udp)):
        if handler is not None and not callable(handler):
            raise TypeError(f"{name} must be an async function taking the flow, or None")
    if tcp is None and udp is None:
        raise ValueError("give a tcp or a udp handler (or both)")
    rule = core.add(networks, tcp=tcp is not None, udp=udp is not None, echo=icmp_echo)
    return Interception(owner, core, rule, tcp, udp)

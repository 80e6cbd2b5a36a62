"""``asyncio.Transport`` over a core TCP connection.

The contract is asyncio's own (``selector_events._SelectorSocketTransport``):
``connection_made``, then ``data_received``* (or ``get_buffer``/``buffer_updated``
for a ``BufferedProtocol``), then ``eof_received`` at most once, then
``connection_lost`` exactly once. ``pause_writing`` is called when the bytes
the transport holds go strictly above the high-water mark and
``resume_writing`` when they fall to the low one or below. The TCP send
buffer plays the kernel's ``SO_SNDBUF``: only what it cannot take counts as
the transport's buffer.

Reading is pulled: bytes stay in the connection until delivered, so while
``pause_reading()`` is in force the receive window really closes.

The ``on_tcp_*`` functions are the stack's handlers of the core's TCP events for
the connections a transport owns. Compiled by mypyc (``aionetstack/compiled.py``),
as an ordinary Python class (it derives from ``asyncio.Transport``) whose methods
are C functions: every received segment and every write runs through here.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ..core.tcp.events import TcpClosed, TcpEofReceived, TcpReadable, TcpWritable
from .addresses import SocketAddress, socket_address

if TYPE_CHECKING:
    from ..core.tcp import TcpEndpoint
    from .driver import AsyncioDriver

__all__ = [
    "StackSocket",
    "TcpTransport",
    "on_tcp_closed",
    "on_tcp_eof",
    "on_tcp_readable",
    "on_tcp_writable",
]

logger = logging.getLogger("aionetstack")

#: asyncio's defaults (``transports._FlowControlMixin``): 64 KiB high, high // 4 low.
DEFAULT_HIGH_WATER = 64 * 1024
DEFAULT_LOW_WATER = DEFAULT_HIGH_WATER // 4  # one int object, not one per transport
#: Bytes handed to ``data_received`` at most per call (asyncio reads 256 KiB at a time);
#: stream protocols get whole received chunks until they hold at least this many.
MAX_READ = 256 * 1024
#: What ``write`` and ``sendto`` take, as the tuple ``isinstance`` checks fastest (a
#: ``bytes | bytearray | memoryview`` union is built anew at every call: 300 ns here).
BYTES_LIKE: Final = (bytes, bytearray, memoryview)
#: Writes to a lost connection are dropped silently this many times before each further
#: one logs a warning (asyncio's ``constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES``).
LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5
#: The ``extra`` of every transport made without one, shared (never written to).
_NO_EXTRA: dict[str, Any] = {}


#: ``include/uapi/linux/tcp.h`` TCP_USER_TIMEOUT (socket.TCP_USER_TIMEOUT where defined).
TCP_USER_TIMEOUT: Final = getattr(socket, "TCP_USER_TIMEOUT", 18)


class StackSocket:
    """What ``get_extra_info('socket')`` returns: the socket-shaped facts of a connection.

    Like asyncio's ``TransportSocket`` it refuses I/O; it answers the queries
    libraries make (``getsockname``, ``getpeername``, ``family``) and maps
    ``TCP_NODELAY``, ``SO_KEEPALIVE`` and ``TCP_USER_TIMEOUT`` onto the connection.
    """

    __slots__ = ("_connection", "_options", "_request_flush", "_sockname")

    type = socket.SOCK_STREAM
    proto = socket.IPPROTO_TCP

    def __init__(
        self,
        connection: TcpEndpoint | None,
        sockname: SocketAddress,
        request_flush: Callable[[], None] | None = None,
    ) -> None:
        self._connection = connection
        self._options: dict[tuple[int, int], int] = {}
        self._sockname = sockname
        #: Asks the driver for a pass (which re-arms the loop's timer after a new deadline).
        self._request_flush = request_flush

    @property
    def family(self) -> socket.AddressFamily:
        """``AF_INET6`` for an IPv6 connection (its names are 4-tuples), else ``AF_INET``."""
        return socket.AF_INET6 if len(self._sockname) == 4 else socket.AF_INET

    def fileno(self) -> int:
        return -1

    def getsockname(self) -> SocketAddress:
        return self._sockname

    def getpeername(self) -> SocketAddress:
        connection = self._connection
        if connection is None:
            raise OSError(107, "Transport endpoint is not connected")
        return socket_address(connection.remote_address, connection.remote_port)

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        flag = int.from_bytes(value, "little") if isinstance(value, bytes) else int(value)
        self._options[(level, option)] = flag
        if self._connection is None:
            return
        if (level, option) == (socket.IPPROTO_TCP, socket.TCP_NODELAY):
            self._connection.set_nodelay(bool(flag))
        elif (level, option) == (socket.SOL_SOCKET, socket.SO_KEEPALIVE):
            self._connection.set_keepalive(bool(flag))
            if self._request_flush is not None:
                self._request_flush()  # a pass re-arms the loop's timer for the probes
        elif (level, option) == (socket.IPPROTO_TCP, TCP_USER_TIMEOUT):
            if flag < 0:
                raise ValueError(f"TCP_USER_TIMEOUT must be >= 0 ms, got {flag}")
            self._connection.set_user_timeout(flag / 1000)  # milliseconds, as Linux

    def getsockopt(self, level: int, option: int, buflen: int | None = None) -> int:
        if (level, option) == (socket.IPPROTO_TCP, TCP_USER_TIMEOUT) and self._connection:
            return round(self._connection.user_timeout * 1000)
        if (level, option) == (
            socket.IPPROTO_TCP,
            socket.TCP_NODELAY,
        ) and self._connection is not None:
            return int(self._connection.nodelay)
        return self._options.get((level, option), 0)

    def __repr__(self) -> str:
        return f"<aionetstack StackSocket {self._sockname}>"


#: How received bytes reach a protocol: ``data_received(bytes)``; ``get_buffer`` and
#: ``buffer_updated``; or, for asyncio's ``StreamReaderProtocol`` (which copies what it is
#: given at once), ``data_received`` of each received chunk as it is (``bytes``,
#: ``bytearray`` or ``memoryview``), saving the join of the chunks into one ``bytes``.
_BYTES: Final = "bytes"
_BUFFERED: Final = "buffered"
_CHUNKS: Final = "chunks"


def _delivery_for(protocol: asyncio.BaseProtocol) -> str:
    if type(protocol) is asyncio.StreamReaderProtocol:
        return _CHUNKS
    return _BUFFERED if isinstance(protocol, asyncio.BufferedProtocol) else _BYTES


class TcpTransport(asyncio.Transport):
    """One TCP connection of the stack as an asyncio transport."""

    _start_tls_compatible = True  # loop.start_tls() accepts us (base_events.start_tls)

    # Slots, and nothing made before it is needed (the write queue, the address tuples,
    # the socket stand-in): an idle connection's transport stays small.
    __slots__ = (
        "_closed_while_paused",
        "_closing",
        "_connection",
        "_delivery",
        "_driver",
        "_dropped_writes",
        "_eof_delivered",
        "_eof_received",
        "_eof_requested",
        "_high_water",
        "_loop",
        "_lost",
        "_lost_called",
        "_low_water",
        "_on_lost",
        "_pending",
        "_pending_size",
        "_protocol",
        "_protocol_paused",
        "_reading_paused",
        "_socket",
    )
    _extra: dict[str, Any]  # BaseTransport's slot: the ``extra`` given to the constructor

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        driver: AsyncioDriver,
        connection: TcpEndpoint,
        protocol: asyncio.BaseProtocol,
        *,
        extra: dict[str, Any] | None = None,
        on_lost: Callable[[TcpTransport], None] | None = None,
    ) -> None:
        super().__init__(_NO_EXTRA if extra is None else extra)
        # asyncio turns Nagle off on every TCP transport (base_events._set_nodelay), and
        # asyncio code is written for that: small writes go out at once.
        connection.set_nodelay(True)
        self._loop = loop
        self._driver = driver
        self._connection = connection
        self._protocol = protocol
        self._delivery = _delivery_for(protocol)
        #: Bytes the connection's send buffer could not take yet (made when first needed).
        self._pending: collections.deque[bytes] | None = None
        self._pending_size = 0
        self._high_water = DEFAULT_HIGH_WATER
        self._low_water = DEFAULT_LOW_WATER
        self._protocol_paused = False
        self._reading_paused = False
        self._closing = False
        self._eof_requested = False  # write_eof() called
        self._eof_received = False  # peer FIN waiting to be delivered
        self._eof_delivered = False
        #: ``connection_lost`` is scheduled or done: nothing else reaches the protocol.
        self._lost = False
        self._lost_called = False
        #: The connection ended cleanly while reading was paused with bytes undelivered.
        self._closed_while_paused = False
        self._dropped_writes = 0
        self._on_lost = on_lost
        self._socket: StackSocket | None = None
        connection.user_data = self

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return f"<TcpTransport {self._sockname()} -> {self._peername()} {state}>"

    # -- BaseTransport --------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``peername``/``sockname`` as ``(host, port)``; ``socket`` a :class:`StackSocket`."""
        if name == "peername":
            return self._peername()
        if name == "sockname":
            return self._sockname()
        if name == "socket":
            if self._socket is None:
                self._socket = StackSocket(
                    self._connection, self._sockname(), self._driver.request_flush
                )
            return self._socket
        return self._extra.get(name, default)

    def _sockname(self) -> SocketAddress:
        connection = self._connection
        return socket_address(connection.local_address, connection.local_port)

    def _peername(self) -> SocketAddress:
        connection = self._connection
        return socket_address(connection.remote_address, connection.remote_port)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._delivery = _delivery_for(protocol)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Send what is buffered, then FIN; ``connection_lost(None)`` follows.

        The connection finishes its FIN handshake and TIME-WAIT inside the
        stack, as an orphan, like a kernel socket after ``close()``.
        """
        if self._closing:
            return
        self._closing = True
        self._reading_paused = True
        if not self._pending and not self._lost:
            self._connection.close()
            self._driver.request_flush()
            self._schedule_connection_lost(None)

    def abort(self) -> None:
        """Reset the connection (RST) and drop anything unsent; ``connection_lost(None)``."""
        self._force_close(None)

    # -- ReadTransport ----------------------------------------------------------------

    def is_reading(self) -> bool:
        return not self._reading_paused and not self._closing

    def pause_reading(self) -> None:
        """Stop delivering data; unread bytes stay in the connection and shrink its window."""
        if self._closing:
            return
        self._reading_paused = True

    def resume_reading(self) -> None:
        if self._closing or not self._reading_paused:
            return
        self._reading_paused = False
        self._loop.call_soon(self._resume_delivery)

    # -- WriteTransport ---------------------------------------------------------------

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = DEFAULT_HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low
        self._maybe_pause_protocol()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def get_write_buffer_size(self) -> int:
        return self._pending_size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, BYTES_LIKE):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._eof_requested:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        if self._lost or (self._closing and not self._pending):
            self._dropped_writes += 1
            if self._dropped_writes >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("socket.send() raised exception.")  # asyncio's wording
            return
        pending = self._pending
        if pending:
            pending.append(bytes(data))
            self._pending_size += len(data)
        else:
            try:
                accepted = self._connection.send(data)
            except OSError as error:
                self._force_close(error)
                return
            if accepted < len(data):
                rest = bytes(memoryview(data)[accepted:])
                if pending is None:
                    self._pending = pending = collections.deque()
                pending.append(rest)
                self._pending_size += len(rest)
        self._driver.request_flush()
        if self._pending_size > self._high_water:  # _maybe_pause_protocol's test, inline
            self._maybe_pause_protocol()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        """Half-close: FIN after everything written so far."""
        if self._closing or self._eof_requested:
            return
        self._eof_requested = True
        if not self._pending and not self._lost:
            self._connection.shutdown_write()
            self._driver.request_flush()

    def can_write_eof(self) -> bool:
        return True

    # -- called by the stack's event dispatch ------------------------------------------

    def on_writable(self) -> None:
        """Move transport-buffered bytes into the connection's freed send buffer."""
        if self._lost:
            return
        pending = self._pending
        connection = self._connection
        while pending:
            chunk = pending[0]
            try:
                accepted = connection.send(chunk)
            except OSError as error:
                self._force_close(error)
                return
            self._pending_size -= accepted
            if accepted < len(chunk):
                pending[0] = chunk[accepted:]
                break
            pending.popleft()
        if not pending:
            self._pending = None
            if self._closing:
                connection.close()
                self._schedule_connection_lost(None)
            elif self._eof_requested:
                connection.shutdown_write()
        self._driver.request_flush()
        self._maybe_resume_protocol()

    def on_readable(self) -> None:
        """Deliver what the connection holds (unless paused), then a pending EOF."""
        connection = self._connection
        delivered = False
        while not self._reading_paused and not self._lost and connection.readable_bytes:
            delivered = True
            if not self._deliver_chunk(connection):
                return
        if delivered:
            self._driver.request_flush()  # the window reopened: let the peer know
        if (
            self._eof_received
            and not self._lost
            and not self._eof_delivered
            and not self._reading_paused
            and not connection.readable_bytes
        ):
            self._deliver_eof()

    def on_eof(self) -> None:
        self._eof_received = True
        self.on_readable()

    def on_closed(self, error: OSError | None) -> None:
        """The connection is over inside the stack.

        After a local ``close()``/``abort()`` this changes nothing (the protocol
        already has its ``connection_lost`` coming). A clean end while reading
        is paused waits for ``resume_reading()`` to deliver the last bytes and
        the EOF first: data is never dropped on the floor.
        """
        if self._lost:
            return
        if error is not None:
            self._pending = None
            self._pending_size = 0
            self._closing = True
            self._schedule_connection_lost(error, soon=False)
            return
        if not self._reading_paused:
            self.on_readable()
        if self._reading_paused and (
            self._connection.readable_bytes or (self._eof_received and not self._eof_delivered)
        ):  # paused before, or by the protocol while we drained
            self._closed_while_paused = True
            return
        if not self._lost:
            self._closing = True
            self._schedule_connection_lost(None, soon=False)

    # -- internals --------------------------------------------------------------------

    def _resume_delivery(self) -> None:
        self.on_readable()
        if self._closed_while_paused and not self._reading_paused and not self._lost:
            self._closing = True
            self._schedule_connection_lost(None, soon=False)

    def _deliver_chunk(self, connection: TcpEndpoint) -> bool:
        protocol = self._protocol
        try:
            delivery = self._delivery
            if delivery is _CHUNKS:
                # asyncio's own stream protocol copies what it is given into its buffer at
                # once: hand it the received chunks as they are instead of joining them.
                assert isinstance(protocol, asyncio.StreamReaderProtocol)
                for chunk in connection.receive_chunks(MAX_READ):
                    # Typed bytes; StreamReader.feed_data extends a bytearray with any buffer.
                    protocol.data_received(chunk)  # type: ignore[arg-type]
            elif delivery is _BUFFERED:
                assert isinstance(protocol, asyncio.BufferedProtocol)
                buffer = memoryview(protocol.get_buffer(-1))
                if buffer.nbytes == 0:
                    raise RuntimeError("get_buffer() returned an empty buffer")
                count = connection.receive_into(buffer)
                protocol.buffer_updated(count)
            else:
                assert isinstance(protocol, asyncio.Protocol)
                protocol.data_received(connection.receive(MAX_READ))
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as error:
            self._fatal_error(error, "data_received")
            return False
        return True

    def _deliver_eof(self) -> None:
        self._eof_delivered = True
        try:
            keep_open = self._protocol.eof_received()  # type: ignore[attr-defined]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as error:
            self._fatal_error(error, "eof_received")
            return
        if not keep_open:
            self.close()

    def _force_close(self, error: BaseException | None) -> None:
        """Reset the connection; schedule ``connection_lost(error)`` (asyncio: ``_force_close``)."""
        if self._lost:
            return
        self._closing = True
        self._pending = None
        self._pending_size = 0
        self._connection.abort()
        self._driver.request_flush()
        self._schedule_connection_lost(error)

    def _schedule_connection_lost(self, error: BaseException | None, *, soon: bool = True) -> None:
        """From here on the protocol hears nothing but ``connection_lost`` (once)."""
        if self._lost:
            return
        self._lost = True
        if soon:
            self._loop.call_soon(self._call_connection_lost, error)
        else:
            self._call_connection_lost(error)

    def _call_connection_lost(self, error: BaseException | None) -> None:
        if self._lost_called:
            return
        self._lost_called = True
        if self._connection.user_data is self:
            self._connection.user_data = None
        if self._on_lost is not None:
            self._on_lost(self)
        try:
            self._protocol.connection_lost(error)  # type: ignore[arg-type]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as failure:
            self._report(failure, "connection_lost")

    def _fatal_error(self, error: BaseException, callback: str) -> None:
        """A protocol callback raised: report it and reset this connection only.

        As asyncio does, the protocol's ``connection_lost`` receives the exception.
        """
        self._report(error, callback)
        self._force_close(error)

    def _report(self, error: BaseException, callback: str) -> None:
        self._loop.call_exception_handler({
            "message": f"Fatal error in {type(self._protocol).__name__}.{callback}()",
            "exception": error, "transport": self, "protocol": self._protocol,
        })  # fmt: skip

    def _maybe_pause_protocol(self) -> None:
        if self._protocol_paused or self._pending_size <= self._high_water:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as error:
            self._report(error, "pause_writing")

    def _maybe_resume_protocol(self) -> None:
        if not self._protocol_paused or self._pending_size > self._low_water:
            return
        self._protocol_paused = False
        try:
            self._protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as error:
            self._report(error, "resume_writing")


# -- the core's TCP events, for a connection a transport owns ---------------------------


def on_tcp_readable(event: TcpReadable) -> None:
    """Deliver the bytes that arrived (``TcpTransport.on_readable``)."""
    transport = event.connection.user_data
    if isinstance(transport, TcpTransport):
        transport.on_readable()


def on_tcp_writable(event: TcpWritable) -> None:
    """Move held writes into the freed send buffer (``TcpTransport.on_writable``)."""
    transport = event.connection.user_data
    if isinstance(transport, TcpTransport):
        transport.on_writable()


def on_tcp_eof(event: TcpEofReceived) -> None:
    """The peer's FIN, after the bytes before it (``TcpTransport.on_eof``)."""
    transport = event.connection.user_data
    if isinstance(transport, TcpTransport):
        transport.on_eof()


def on_tcp_closed(event: TcpClosed) -> bool:
    """The connection is over: tell its transport (``TcpTransport.on_closed``). False
    when no transport owns it (a connection still opening: its waiter's business)."""
    transport = event.connection.user_data
    if isinstance(transport, TcpTransport):
        transport.on_closed(event.error)
        return True
    return False

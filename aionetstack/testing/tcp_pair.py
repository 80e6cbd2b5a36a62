"""Two TCP layers joined directly (no delay, no loss), for scenario tests.

A thin face over :class:`~aionetstack.testing.netsim.Network` with ideal paths,
plus a hook to drop or rewrite chosen segments (``intercept``).
"""

from __future__ import annotations

from collections.abc import Callable

from ..config import TcpConfig
from ..core.output import CallbackOutput
from ..core.tcp import TcpConnection, TcpLayer, TcpListener
from ..wire.tcp import TcpSegment, parse_tcp
from .netsim import ADDRESS_A, ADDRESS_B, Network, PathProfile

__all__ = ["TcpPair"]


class TcpPair:
    """Layer ``a`` (the client side by convention) and layer ``b``, stepped in virtual time.

    ``intercept(direction, segment) -> bool``: return False to drop a segment;
    ``direction`` is ``"ab"`` or ``"ba"``. Every delivered segment is logged in ``trace``.
    """

    def __init__(
        self,
        config_a: TcpConfig | None = None,
        config_b: TcpConfig | None = None,
        *,
        seed: int = 0,
        delay: float = 0.001,
        mtu: int = 1500,
    ) -> None:
        self.network = Network(
            PathProfile(delay=delay), config_a=config_a, config_b=config_b, seed=seed, mtu=mtu
        )
        self.a = self.network.a
        self.b = self.network.b
        self.intercept: Callable[[str, TcpSegment], bool] | None = None
        self.trace: list[tuple[float, str, TcpSegment]] = []
        #: Events each side produced, in order (the pair keeps them for assertions).
        self.events_a: list[object] = []
        self.events_b: list[object] = []
        self.a.handler = self.events_a.append
        self.b.handler = self.events_b.append
        for host, direction in ((self.a, "ab"), (self.b, "ba")):
            self._wrap(host.layer, direction)

    def _wrap(self, layer: TcpLayer, direction: str) -> None:
        inner = layer.output

        def emit(source: bytes, destination: bytes, raw: bytes) -> None:
            segment = parse_tcp(raw)
            self.trace.append((self.network.now, direction, segment))
            if self.intercept is not None and not self.intercept(direction, segment):
                return
            inner.emit(source, destination, raw)

        layer.output = CallbackOutput(emit)

    @property
    def now(self) -> float:
        return self.network.now

    def run(self, until: Callable[[], bool] | None = None, *, max_time: float = 600.0) -> bool:
        """Run until ``until()`` (or until nothing is left to do when None)."""
        if until is None:
            return self.network.run(lambda: False, max_time=self.network.now + max_time) or True
        return self.network.run(until, max_time=self.network.now + max_time)

    def run_for(self, seconds: float) -> None:
        """Process everything due within the next ``seconds`` of virtual time."""
        end = self.network.now + seconds
        self.network.settle()
        while True:
            deadline = self.network.next_deadline()
            if deadline is None or deadline > end:
                break
            self.network.step()
        self.network.now = max(self.network.now, end)

    def listen(self, port: int = 80, backlog: int = 16) -> TcpListener:
        return self.b.layer.listen(ADDRESS_B, port, backlog)

    def connect(self, port: int = 80) -> TcpConnection:
        connection = self.a.layer.connect(ADDRESS_A, ADDRESS_B, port, self.network.now)
        self.network.settle()
        return connection

    def open(self, port: int = 80) -> tuple[TcpConnection, TcpConnection]:
        """Listen on b, connect from a, complete the handshake; returns (client, server)."""
        listener = self.listen(port)
        client = self.connect(port)
        accepted: list[TcpConnection] = []

        def ready() -> bool:
            connection = listener.accept()
            if connection is not None:
                accepted.append(connection)
            return bool(accepted) and client.state.name == "ESTABLISHED"

        if not self.run(ready, max_time=10.0):
            raise AssertionError("handshake did not complete")
        return client, accepted[0]

"""A link wrapper that fails on demand, for fault-injection tests of drivers and stacks.

``FaultyLink(inner)`` behaves as ``inner`` until told otherwise:

* :meth:`FaultyLink.down` / :meth:`FaultyLink.up`: the interface is down (as ``ip link
  set ... down`` on a TUN): packets sent are dropped and counted, nothing is received;
* :meth:`FaultyLink.gone`: the device is gone for good (a TUN deleted while in use):
  every receive and send raises :class:`~aionetstack.errors.LinkGoneError`.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence

from ..errors import LinkGoneError
from ..link.base import Link

__all__ = ["FaultyLink"]


class FaultyLink:
    """Wraps a :class:`~aionetstack.link.base.Link`; see the module docstring."""

    def __init__(self, inner: Link) -> None:
        self.inner = inner
        self.mtu = inner.mtu
        self.max_packet_size = inner.max_packet_size
        self.receive_checksums_partial = inner.receive_checksums_partial
        self.transmit_offload = inner.transmit_offload
        self.is_down = False
        self.is_gone = False
        self.send_link_down = 0

    def down(self) -> None:
        self.is_down = True

    def up(self) -> None:
        self.is_down = False

    def gone(self) -> None:
        self.is_gone = True

    def _check(self) -> None:
        if self.is_gone:
            raise LinkGoneError(errno.EBADFD, "link deleted while in use (FaultyLink)")

    def fileno(self) -> int:
        return self.inner.fileno()

    def receive_batch(self, limit: int, now: float) -> Sequence[bytes | memoryview]:
        self._check()
        packets = self.inner.receive_batch(limit, now)
        return [] if self.is_down else packets

    def send(self, packet: bytes, now: float) -> None:
        self._check()
        if self.is_down:
            self.send_link_down += 1
            return
        self.inner.send(packet, now)

    def send_offloaded(
        self,
        packet: bytes,
        segment_size: int,
        now: float,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        self._check()
        if self.is_down:
            self.send_link_down += 1
            return
        self.inner.send_offloaded(packet, segment_size, now, tail)

    def get_timer(self) -> float | None:
        return self.inner.get_timer()

    def statistics(self) -> dict[str, int | str]:
        return {**self.inner.statistics(), "send_link_down": self.send_link_down}

    def close(self) -> None:
        self.inner.close()

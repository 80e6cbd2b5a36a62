"""What a driver needs from a device that moves IP packets."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Link"]


@runtime_checkable
class Link(Protocol):
    """A packet device: the only kind of object in the package that owns a file descriptor.

    Contract:

    * ``fileno()`` becomes readable when packets may be waiting; drivers watch
      it with ``add_reader``/``wait_readable``.
    * ``receive_batch(limit, now)`` never blocks: it returns up to ``limit`` IP
      packets (any link framing, such as a virtio_net_hdr, already removed) and
      an empty list when nothing is waiting.
    * ``send(packet, now)`` never blocks; a packet the device cannot take is
      dropped and counted, as a NIC queue would.
    * ``get_timer()`` is the time (on the driver's clock) at which a link that
      holds packets back (delay, rate) has more to hand over, or ``None``.
    * ``receive_checksums_partial`` is True when received transport checksums
      may hold only a pseudo-header sum (TUN checksum offload), so they must
      not be verified.
    """

    mtu: int
    receive_checksums_partial: bool

    def fileno(self) -> int: ...

    def receive_batch(self, limit: int, now: float) -> list[bytes]: ...

    def send(self, packet: bytes, now: float) -> None: ...

    def get_timer(self) -> float | None: ...

    def statistics(self) -> dict[str, int]: ...

    def close(self) -> None: ...

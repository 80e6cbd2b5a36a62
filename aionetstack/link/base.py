"""What a driver needs from a device that moves IP packets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
      an empty list when nothing is waiting. It may return fewer while more wait
      (a TUN ends a batch at 512 KiB of data): the fd then stays readable.
    * ``send(packet, now)`` never blocks; a packet the device cannot take is
      dropped and counted, as a NIC queue would.
    * ``get_timer()`` is the time (on the driver's clock) at which a link that
      holds packets back (delay, rate) has more to hand over, or ``None``.
    * ``receive_checksums_partial`` is True when received transport checksums
      may hold only a pseudo-header sum (TUN checksum offload), so they must
      not be verified.
    * ``transmit_offload`` is True when the link takes ``send_offloaded``:
      a TCP or UDP packet whose checksum field holds only the folded
      pseudo-header sum (the device completes it, like ``CHECKSUM_PARTIAL``),
      of up to ``max_packet_size`` bytes; a TCP packet longer than ``mtu`` is
      cut by the device into segments of ``segment_size`` payload bytes (TSO).
      ``tail`` holds more of the packet's bytes, to follow ``packet`` on the
      wire as they are (a gathering write, no copy).
      Without offload ``max_packet_size == mtu`` and ``send_offloaded`` is
      never called.
    * ``statistics()`` maps counter names to counts; a link may add a few
      descriptive strings (``TunLink``: ``"offload"``).
    """

    mtu: int
    max_packet_size: int
    receive_checksums_partial: bool
    transmit_offload: bool

    def fileno(self) -> int: ...

    def receive_batch(self, limit: int, now: float) -> Sequence[bytes | memoryview]: ...

    def send(self, packet: bytes, now: float) -> None: ...

    def send_offloaded(
        self,
        packet: bytes,
        segment_size: int,
        now: float,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None: ...

    def get_timer(self) -> float | None: ...

    def statistics(self) -> Mapping[str, int | str]: ...

    def close(self) -> None: ...

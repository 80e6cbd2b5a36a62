"""Packet capture to pcap files that Wireshark, tshark and tcpdump open.

:class:`PcapWriter` writes raw IP packets (no link header, ``LINKTYPE_RAW``)
through dpkt. :class:`CapturingLink` wraps any link and records every packet
received from it and sent to it, which is how ``Stack(pcap=...)`` works.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import IO, Final

import dpkt

from .base import Link

__all__ = ["LINKTYPE_ETHERNET", "LINKTYPE_RAW", "CapturingLink", "PcapWriter"]

#: tcpdump.org "Link-layer header types": raw IPv4 or IPv6, told apart by the
#: version nibble. (dpkt's ``DLT_RAW`` is the platform DLT value, 12 on Linux,
#: which is not what belongs in a file header.)
LINKTYPE_RAW: Final = 101
#: Ethernet II frames (a TAP's traffic).
LINKTYPE_ETHERNET: Final = 1
#: Longest packet recorded whole: tcpdump's default snap length, far above the
#: 64 KB segments a TUN with offloads hands over.
_SNAPLEN: Final = 262144


class PcapWriter:
    """Write IP packets to a pcap file (microsecond timestamps, LINKTYPE_RAW).

    ``destination`` is a path (created or truncated) or a binary file object
    (closed by :meth:`close`). Usable as a context manager.
    """

    __slots__ = ("_file", "_writer", "packets_written")

    def __init__(
        self, destination: str | os.PathLike[str] | IO[bytes], *, linktype: int = LINKTYPE_RAW
    ) -> None:
        if isinstance(destination, str | os.PathLike):
            self._file: IO[bytes] = open(destination, "wb")  # noqa: SIM115 - closed in close()
        elif hasattr(destination, "write"):
            self._file = destination
        else:
            kind = type(destination).__name__
            raise TypeError(f"pcap destination must be a path or a binary file, got {kind}")
        self._writer = dpkt.pcap.Writer(self._file, snaplen=_SNAPLEN, linktype=linktype)
        self.packets_written = 0

    def write(self, packet: bytes | bytearray | memoryview, timestamp: float) -> None:
        """Record one packet seen at ``timestamp`` (seconds since the Unix epoch)."""
        if self._file.closed:
            raise ValueError("write to a closed PcapWriter")
        # Round first so that the microsecond part never reaches 1_000_000.
        self._writer.writepkt_time(bytes(packet), round(timestamp, 6))
        self.packets_written += 1

    def flush(self) -> None:
        """Push buffered records to the file, so a reader sees them now."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close the file. Idempotent."""
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class CapturingLink:
    """A :class:`~aionetstack.link.base.Link` that records all traffic of another link.

    Packets are recorded as the stack sees them: received ones after the inner
    link hands them over, sent ones before the inner link takes them (so a send
    the device then drops is still in the file, as with tcpdump). Timestamps are
    the driver's ``now`` plus ``time_offset``; the default offset maps
    ``time.monotonic()`` (asyncio's clock) to wall-clock time. ``close()``
    closes the inner link and the file.
    """

    __slots__ = (
        "_offset",
        "_writer",
        "link",
        "max_packet_size",
        "mtu",
        "receive_checksums_partial",
        "transmit_offload",
    )

    def __init__(
        self,
        link: Link,
        pcap: PcapWriter | str | os.PathLike[str],
        *,
        time_offset: float | None = None,
    ) -> None:
        if not isinstance(link, Link):
            raise TypeError(f"link must be a Link, got {type(link).__name__}")
        self.link = link
        self.mtu = link.mtu
        self.receive_checksums_partial = link.receive_checksums_partial
        self.transmit_offload = link.transmit_offload
        self.max_packet_size = link.max_packet_size
        ethernet = getattr(link, "framing", "ip") == "ethernet"
        linktype = LINKTYPE_ETHERNET if ethernet else LINKTYPE_RAW
        self._writer = pcap if isinstance(pcap, PcapWriter) else PcapWriter(pcap, linktype=linktype)
        self._offset = time.time() - time.monotonic() if time_offset is None else time_offset

    @property
    def writer(self) -> PcapWriter:
        """The pcap writer this link records into."""
        return self._writer

    def fileno(self) -> int:
        return self.link.fileno()

    def receive_batch(self, limit: int, now: float) -> Sequence[bytes | memoryview]:
        packets = self.link.receive_batch(limit, now)
        if packets:
            write = self._writer.write
            stamp = now + self._offset
            for packet in packets:
                write(packet, stamp)
        return packets

    def send(self, packet: bytes, now: float) -> None:
        self._writer.write(packet, now + self._offset)
        self.link.send(packet, now)

    def send_offloaded(
        self,
        packet: bytes,
        segment_size: int,
        now: float,
        tail: tuple[bytes | memoryview, ...] = (),
    ) -> None:
        """Recorded as handed over: one super-packet, checksum partial (as tcpdump shows TSO)."""
        self._writer.write(b"".join((packet, *tail)) if tail else packet, now + self._offset)
        self.link.send_offloaded(packet, segment_size, now, tail)

    def get_timer(self) -> float | None:
        return self.link.get_timer()

    def statistics(self) -> dict[str, int | str]:
        stats = dict(self.link.statistics())
        stats["captured_packets"] = self._writer.packets_written
        return stats

    def close(self) -> None:
        """Close the inner link, then the capture file. Idempotent."""
        try:
            self.link.close()
        finally:
            self._writer.close()

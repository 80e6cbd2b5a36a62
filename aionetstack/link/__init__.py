"""Devices that move IP packets: the only code in the package touching file descriptors.

* :class:`~aionetstack.link.base.Link`: the protocol drivers rely on.
* :class:`~aionetstack.link.tun.TunLink`: a Linux TUN (python-pytun), with offloads.
* :class:`~aionetstack.link.tap.TapLink`: a Linux TAP: Ethernet frames (ARP, ND in the core).
* :class:`~aionetstack.link.memory.MemoryLink`: two ends wired in-process.
* :class:`~aionetstack.link.impair.Impairment` / :class:`~aionetstack.link.impair.ImpairedPath`:
  seeded loss, duplication, reordering, corruption, delay, jitter and rate.
* :class:`~aionetstack.link.pcap.PcapWriter` / :class:`~aionetstack.link.pcap.CapturingLink`:
  pcap capture.

Names load on first use, so that ``MemoryLink`` users never import python-pytun.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Link

if TYPE_CHECKING:
    from .impair import ImpairedPath, Impairment
    from .memory import MemoryLink
    from .pcap import CapturingLink, PcapWriter
    from .tap import TapLink
    from .tun import TunLink

_LAZY = {
    "CapturingLink": ".pcap",
    "ImpairedPath": ".impair",
    "Impairment": ".impair",
    "MemoryLink": ".memory",
    "PcapWriter": ".pcap",
    "TapLink": ".tap",
    "TunLink": ".tun",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "CapturingLink",
    "ImpairedPath",
    "Impairment",
    "Link",
    "MemoryLink",
    "PcapWriter",
    "TapLink",
    "TunLink",
]

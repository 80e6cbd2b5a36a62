"""Putting a stack together from a link: shared by both drivers' stacks.

``Stack`` (asyncio) and ``AnyioStack`` (anyio) are built the same way: the link is
checked, the random source and config chosen, a :class:`~.core.stack.StackCore` made
to the link's measure (MTU, checksum and segmentation offloads), the Ethernet layer
put in front of it when the link carries frames (a TAP), and the link wrapped for
capture when ``pcap=`` is given. :func:`assemble` is that, once.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass

from .config import StackConfig
from .core.ethernet import EthernetHost
from .core.stack import StackCore
from .link.base import Link

__all__ = ["Assembly", "assemble"]


@dataclass(frozen=True, slots=True)
class Assembly:
    """The parts of a stack: ``host`` is what the driver runs (the core, or its Ethernet
    layer on a TAP); ``link`` is the link to drive (a capturing wrapper with ``pcap=``)."""

    core: StackCore
    host: StackCore | EthernetHost
    link: Link
    rng: random.Random
    config: StackConfig


def assemble(
    link: Link,
    address: str | Sequence[str],
    *,
    gateway: str | Sequence[str] | None = None,
    config: StackConfig | None = None,
    seed: int | None = None,
    pcap: str | os.PathLike[str] | None = None,
) -> Assembly:
    """Build the parts; ``TypeError``/``ValueError`` say what was wrong with an argument.

    ``seed`` None draws from the system's random source (production); an int makes the
    stack's choices (ISNs, ports, IDs) reproducible.
    """
    if not isinstance(link, Link):
        raise TypeError(f"link must be a Link (TunLink, MemoryLink ...), got {type(link).__name__}")
    addresses = [address] if isinstance(address, str) else list(address)
    rng: random.Random = random.SystemRandom() if seed is None else random.Random(seed)
    config = config or StackConfig()
    core = StackCore(
        addresses, gateway=gateway, mtu=link.mtu, config=config, rng=rng,
        receive_checksums_partial=link.receive_checksums_partial,
        transmit_offload=link.transmit_offload, max_packet_size=link.max_packet_size,
    )  # fmt: skip
    host: StackCore | EthernetHost = core
    if getattr(link, "framing", "ip") == "ethernet":
        host = EthernetHost(core, getattr(link, "mac"))  # noqa: B009
    if pcap is not None:
        from .link.pcap import CapturingLink

        link = CapturingLink(link, os.fspath(pcap))
    return Assembly(core=core, host=host, link=link, rng=rng, config=config)

"""Which modules the build compiles with mypyc (``setup.py``), and whether they run so.

Importing this module imports nothing else of the package: ``setup.py`` reads it
before anything is installed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Final

#: A TCP connection's per-packet code: its control block and the parts built on it
#: (one line of subclasses, ``core/tcp/tcb.py``), its RTT estimator, buffers and
#: sent records; and the TCP layer that owns the connections (``TcpHost`` <- the
#: listening part <- ``TcpLayer``: demultiplexing, the dirty set, the timer heap),
#: so that a connection and its layer call each other natively; and ``StackCore``, the
#: IP layer, one line of classes too (``HostState`` <- fragments <- output <- ICMP
#: input <- ``StackCore``: ``core/host.py``); and the pump that moves a driver's packets
#: and events between the core and the link. Then what those call per segment or per
#: connection: the connection states (an enum's members read from C statics, not
#: through Python 3.11's ``EnumType.__getattr__`` hook), what the IP output hands the
#: link (``core/output.py``), the send path's IPv4 headers, sequence arithmetic, the
#: interning of shared values, the keyed hashes of each new connection, the loss-recovery
#: state and the congestion control (CUBIC's and NewReno's ACK hooks, HyStart), and the
#: events (plain classes: a dataclass's generated ``__init__`` runs interpreted even when
#: its module is compiled, which cost more than it saved); and the asyncio driver, which
#: asyncio calls at every wake-up and which calls the pump, and the asyncio transport
#: (its methods, and the handlers of the TCP events it is sent: an ordinary class, as it
#: derives from ``asyncio.Transport``); and the TUN's reads and writes
#: (``link/tun_path.py``), which the pump calls per packet, with the receive pool they
#: take their buffers from (``link/receive_pool.py``). Each compiles to an
#: extension module of the same name.
COMPILED_MODULES: Final = (
    "aionetstack.core.tcp.tcb",
    "aionetstack.core.tcp.opening",
    "aionetstack.core.tcp.timers",
    "aionetstack.core.tcp.egress",
    "aionetstack.core.tcp.send",
    "aionetstack.core.tcp.receive",
    "aionetstack.core.tcp.recovery",
    "aionetstack.core.tcp.ack",
    "aionetstack.core.tcp.ingress",
    "aionetstack.core.tcp.connection",
    "aionetstack.core.tcp.rtt",
    "aionetstack.core.tcp.send_buffer",
    "aionetstack.core.tcp.receive_buffer",
    "aionetstack.core.tcp.sent_record",
    "aionetstack.core.tcp.state",
    "aionetstack.core.tcp.host",
    "aionetstack.core.tcp.listener",
    "aionetstack.core.tcp.layer",
    "aionetstack.core.output",
    "aionetstack.core.host",
    "aionetstack.core.ip_fragments",
    "aionetstack.core.ip_output",
    "aionetstack.core.icmp_input",
    "aionetstack.core.stack",
    "aionetstack.core.pump",
    "aionetstack.wire.ipv4_send",
    "aionetstack.wire.seq",
    "aionetstack.core.tcp.shared",
    "aionetstack.core.tcp.secrets",
    "aionetstack.aio.driver",
    "aionetstack.link.tun_path",
    "aionetstack.link.receive_pool",
    "aionetstack.core.tcp.events",
    "aionetstack.core.tcp.loss_state",
    "aionetstack.core.tcp.hystart",
    "aionetstack.core.tcp.congestion.base",
    "aionetstack.core.tcp.congestion.cubic",
    "aionetstack.core.tcp.congestion.newreno",
    "aionetstack.aio.transport",
)


#: What the compiled modules may import from the package (DESIGN.md's layering rule for
#: ``core``), and so whose edits they may hold: mypyc copies the values of imported
#: ``Final`` constants into the compiled code. The asyncio driver and transport and the
#: TUN's data path are entries of their own, with what they import (the rest of ``aio``
#: and ``link`` is not compiled).
_COMPILED_CODE_READS: Final = (
    "core",
    "wire",
    "config.py",
    "errors.py",
    "aio/driver.py",
    "aio/transport.py",
    "aio/addresses.py",
    "link/tun_path.py",
    "link/tun_io.py",
    "link/receive_pool.py",
    "link/heap.py",
    "link/segmentation.py",
)


def compiled_modules() -> list[str]:
    """Those of :data:`COMPILED_MODULES` that this interpreter loads as compiled code.

    Finding them imports their parent packages, and so the whole connection: call
    :func:`load_sources_first` (if wanted) before this, never after.
    """
    return [name for name, _ in _compiled_origins()]


def stale_compiled_modules() -> list[str]:
    """In a source checkout (``setup.py`` beside the package), the compiled modules built
    before the newest edit of a ``.py`` they may read (``core/``, ``wire/``, ``config.py``,
    ``errors.py`` and the others of ``_COMPILED_CODE_READS``): edited since
    ``pip install -e .``. Empty for an installed wheel, whose
    files' times say nothing about their builds."""
    return stale_among(_compiled_origins(), Path(__file__).resolve().parent)


def stale_among(origins: list[tuple[str, str]], package: Path) -> list[str]:
    """:func:`stale_compiled_modules` for ``origins`` ((name, extension file) pairs) of
    the package in directory ``package``."""
    if not origins or not (package.parent / "setup.py").exists():
        return []
    newest = 0.0
    for entry in _COMPILED_CODE_READS:
        path = package / entry
        if not path.exists():
            continue
        sources = path.rglob("*.py") if path.is_dir() else (path,)
        for source in sources:
            newest = max(newest, source.stat().st_mtime)
    # mypyc puts the code of every compiled module in one shared library beside the
    # package; each module's own extension only loads it, and a rebuild that changed no
    # module's interface may leave those untouched.
    shared = [path.stat().st_mtime for path in package.parent.glob("*__mypyc.*")]
    built = max(shared, default=0.0)
    return [name for name, origin in origins if max(Path(origin).stat().st_mtime, built) < newest]


def _compiled_origins() -> list[tuple[str, str]]:
    """(name, extension module file) of each of :data:`COMPILED_MODULES` loaded compiled."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found = []
    for name in COMPILED_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None and spec.origin.endswith(suffixes):
            found.append((name, spec.origin))
    return found


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Finds the ``.py`` of each compiled module ahead of its extension module."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED_MODULES:
            return None
        for entry in path or ():
            source = os.path.join(entry, fullname.rsplit(".", 1)[1] + ".py")
            if os.path.exists(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def load_sources_first() -> None:
    """From now on, import :data:`COMPILED_MODULES` from their ``.py`` sources (the tests'
    ``AIONETSTACK_INTERPRETED=1``); call before anything imports them."""
    if not any(isinstance(finder, _SourcesFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourcesFirst())
